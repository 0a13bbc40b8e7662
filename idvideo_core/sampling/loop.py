"""The single denoising loop.

A backbone adapter supplies ``model_output(latents, t, i)`` — the guided prediction for the current latents, with
its references, RoPE and CFG shape — and optionally ``finish(latents)``. A stepper advances the latents. The loop owns
what is common: iteration order, dtype discipline, progress (one tick per step, which is also the cancel
checkpoint), live previews, and the CPU kernels the backbone's modules run with (``cpu_kernels``).
"""
from __future__ import annotations

from typing import Callable, Optional, Protocol

from .. import bridge


class Adapter(Protocol):
    def model_output(self, latents, t, i: int): ...


def denoise(adapter: Adapter, stepper, latents, *, progress: Optional["bridge.Progress"] = None,
            preview: Optional[Callable] = None, latent_dtype=None, on_step: Optional[Callable] = None,
            modules: tuple = ()):
    """Run every timestep of ``stepper`` and return the final latents.

    ``preview(latents) -> image or None`` is called after each step when given (ComfyUI shows it live).
    ``on_step(i, t, latents)`` is a test/benchmark hook. ``modules``: the networks the adapter runs (transformer);
    their float32 CPU linears go through oneDNN for the duration of the loop (see :mod:`idvideo_core.cpu_kernels`).
    """
    import torch

    from ..cpu_kernels import onednn_linears

    latent_dtype = latent_dtype or latents.dtype
    timesteps = stepper.timesteps
    with torch.no_grad(), onednn_linears(*modules, device=latents.device):
        for i, t in enumerate(timesteps):
            bridge.check_interrupt()
            out = adapter.model_output(latents, t, i)
            latents = stepper.step(i, t, out, latents).to(latent_dtype)
            if on_step is not None:
                on_step(i, t, latents)
            if progress is not None:
                progress.update(1, preview(latents) if preview is not None else None)
    finish = getattr(adapter, "finish", None)
    return finish(latents) if finish is not None else latents
