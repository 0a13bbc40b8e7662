"""Wan-family generation (Concat-ID-Wan, Phantom-Wan, plain Wan) through the shared denoising loop."""
from __future__ import annotations

import logging

import torch

from ... import bridge
from ...sampling import denoise
from ...sampling.steppers import Stepper
from .adapter import CONCATID, PHANTOM, WanAdapter

log = logging.getLogger("idvideo")

PHANTOM_IMAGE_CFG = 5.0


class _LoopAdapter:
    """Adapts WanAdapter's (state, latents, t) prediction to the shared loop's ``model_output(latents, t, i)``."""

    def __init__(self, adapter: WanAdapter, state):
        self.adapter, self.state = adapter, state

    def model_output(self, latents, t, i):
        return self.adapter.predict(self.state, latents, t)


def method_of(model) -> str:
    return PHANTOM if model.family == "phantom_wan" else CONCATID


def prepare(model, text, *, width, height, num_frames, steps, cfg, seed, references=None, image_cfg=None):
    from ...errors import InputError

    if text.family != "wan":
        raise InputError("These text embeddings were made for a CogVideoX/ConsisID model.",
                         "Encode the prompt with 'IDVideo Text Encode' connected to this Wan model.")
    method = method_of(model)
    adapter = WanAdapter(model, method, steps=steps, cfg_scale=cfg,
                         image_cfg_scale=PHANTOM_IMAGE_CFG if image_cfg is None else image_cfg, text_cfg_scale=cfg)
    generator = torch.Generator("cpu").manual_seed(int(seed))
    state = adapter.prepare(text, references or None, width, height, num_frames, generator)
    return adapter, state


def generate(model, text, *, width, height, num_frames, steps, cfg, seed, references=None, vae_tiling=True,
             node_id=None, progress=True, using=None, return_latents=False):
    from ...memory import vae_memory

    if steps < 1:
        from ...errors import InputError

        raise InputError(f"steps must be at least 1 (got {steps}).", "Use 50 steps (the reference default).")
    with using(model, "vae"):
        adapter, state = prepare(model, text, width=width, height=height, num_frames=num_frames, steps=steps,
                                 cfg=cfg, seed=seed, references=references)
    bar = bridge.Progress(len(state.scheduler.timesteps), "sampling", node_id) if progress else None
    try:
        with using(model, "transformer"):
            latents = denoise(_LoopAdapter(adapter, state), Stepper(state.scheduler), state.latents,
                              progress=bar, latent_dtype=torch.float32)
    finally:
        if bar is not None:
            bar.close()
    with using(model, "vae") as vae, vae_memory(vae, vae_tiling):
        frames = adapter.decode(state, latents)
    bridge.soft_empty_cache()
    return (frames, latents) if return_latents else frames
