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


def check_clip(cfg: float, num_frames: int) -> int:
    """Guidance range and the frame rule (4k+1, snapped with a warning); run before loading by the CLI too."""
    from ...errors import InputError, option

    if not (1.0 <= float(cfg) <= 30.0):
        raise InputError(f"{option('cfg')} {cfg} is out of range.",
                         "Use a guidance scale between 1 and 30 (Wan default 5).")
    if num_frames < 1:
        raise InputError(f"{option('num_frames')} must be at least 1 (got {num_frames}).",
                         "Use 81 frames (the Wan default).")
    if (num_frames - 1) % 4:
        snapped = (num_frames - 1) // 4 * 4 + 1   # the Wan VAE packs 4 frames per latent frame, after the first
        log.warning("IDVideo: %d frames is not 4k+1; using %d frames.", num_frames, snapped)
        num_frames = snapped
    return num_frames


def prepare(model, text, *, width, height, num_frames, steps, cfg, seed, references=None, image_cfg=None):
    from ...errors import InputError

    if text.family != "wan":
        raise InputError("These text embeddings were made for a CogVideoX/ConsisID model.",
                         "Encode the prompt with 'IDVideo Text Encode' connected to this Wan model.")
    num_frames = check_clip(cfg, num_frames)
    method = method_of(model)
    adapter = WanAdapter(model, method, steps=steps, cfg_scale=cfg,
                         image_cfg_scale=PHANTOM_IMAGE_CFG if image_cfg is None else image_cfg, text_cfg_scale=cfg)
    generator = torch.Generator("cpu").manual_seed(int(seed))
    state = adapter.prepare(text, references or None, width, height, num_frames, generator)
    return adapter, state


def generate(model, text, *, width, height, num_frames, steps, cfg, seed, references=None, vae_tiling=True,
             node_id=None, progress=True, using=None, return_latents=False, preview=None, cache_threshold=0.0):
    from ...memory import vae_memory

    if steps < 1:
        from ...errors import InputError

        raise InputError(f"steps must be at least 1 (got {steps}).", "Use 50 steps (the reference default).")
    with using(model, "vae"):
        adapter, state = prepare(model, text, width=width, height=height, num_frames=num_frames, steps=steps,
                                 cfg=cfg, seed=seed, references=references)
    from ...sampling.cache import make_cache, wan_rule

    blocks = getattr(model.transformer, "base", model.transformer).blocks
    adapter.cache = make_cache(wan_rule(len(blocks)), len(state.scheduler.timesteps), cache_threshold)
    bar = bridge.Progress(len(state.scheduler.timesteps), "sampling", node_id) if progress else None
    try:
        with using(model, "transformer"):
            latents = denoise(_LoopAdapter(adapter, state), Stepper(state.scheduler), state.latents,
                              progress=bar, preview=preview, latent_dtype=torch.float32,
                              modules=(model.transformer,))
        if adapter.cache is not None:
            log.info("IDVideo: %s", adapter.cache.summary())
    finally:
        if bar is not None:
            bar.close()
    from ...runtime import decode_progress

    with using(model, "vae") as vae, vae_memory(vae, vae_tiling), \
            decode_progress(vae, latents, frame_dim=2, node_id=node_id, enabled=progress):
        frames = adapter.decode(state, latents)
    bridge.soft_empty_cache()
    return (frames, latents) if return_latents else frames
