"""What every family's ``generate`` shares around the denoising loop: a model part on the device for a stage
(:func:`using`, through the memory manager when one is attached) and the decode progress bar
(:func:`decode_progress`). Here, not in ``runtime``, so the family packages never import the runtime."""
from __future__ import annotations

import contextlib

from .. import bridge


@contextlib.contextmanager
def using(model, part: str):
    """``model.<part>`` on the compute device for the ``with`` block (memory manager: moved in and out per plan)."""
    if model.memory is None:
        module = getattr(model, part)
        module.to(model.device)
        yield module
    else:
        with model.memory.use(part) as module:
            yield module


@contextlib.contextmanager
def decode_progress(vae, latents, *, frame_dim: int, node_id=None, enabled: bool = True):
    """A progress bar over the VAE decode, counted in latent frames.

    Why a hook: the diffusers video VAEs decode in chunks (CogVideoX: 2 latent frames, Wan: 1, times the tiles when
    tiling) inside one ``decode`` call. A forward hook on ``vae.decoder`` sees every chunk; each adds its share of the
    video (frames × tile area / full area), so the bar moves evenly with or without tiling, and every tick is a
    cancel checkpoint as on the sampler.
    """
    decoder = getattr(vae, "decoder", None)
    if not enabled or decoder is None or latents.ndim != 5:
        yield
        return
    total = int(latents.shape[frame_dim])
    full_area = float(latents.shape[-1] * latents.shape[-2])
    bar = bridge.Progress(total, "decoding", node_id)
    done = [0.0]

    def tick(_module, args, _output):
        z = args[0] if args else None
        if z is None or getattr(z, "ndim", 0) != 5:
            return
        done[0] += z.shape[2] * (z.shape[-1] * z.shape[-2]) / full_area
        step = min(int(done[0]), total) - bar.value
        if step > 0:
            bar.update(step)

    handle = decoder.register_forward_hook(tick)
    try:
        yield
    finally:
        handle.remove()
        bar.close()
    if bar.value < bar.total:
        bar.update(bar.total - bar.value)


@contextlib.contextmanager
def sampling_progress(steps: int, node_id=None, enabled: bool = True):
    """The sampler's progress bar (one tick per step, each a cancel checkpoint), or None when disabled."""
    bar = bridge.Progress(steps, "sampling", node_id) if enabled else None
    try:
        yield bar
    finally:
        if bar is not None:
            bar.close()
