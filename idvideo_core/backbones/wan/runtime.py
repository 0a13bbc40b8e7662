"""Wan-family generation (Concat-ID-Wan, Phantom-Wan, plain Wan) through the shared denoising loop.

The method (how references enter, the sampler, the CFG shape) comes from the family's package as a
:class:`~.method.WanMethod`; this module is the same for all of them.
"""
from __future__ import annotations

import logging

import torch

from ... import bridge
from ...errors import InputError
from ...sampling import denoise
from ...sampling.stages import decode_progress, sampling_progress, using
from ...sampling.steppers import Stepper
from .adapter import WanAdapter
from .method import WanMethod, get_method

log = logging.getLogger("idvideo")


class _LoopAdapter:
    """Adapts WanAdapter's (state, latents, t) prediction to the shared loop's ``model_output(latents, t, i)``."""

    def __init__(self, adapter: WanAdapter, state):
        self.adapter, self.state = adapter, state

    def model_output(self, latents, t, i):
        return self.adapter.predict(self.state, latents, t)


def prepare(model, text, method, *, width, height, num_frames, steps, cfg, seed, references=None, image_cfg=None,
            preset: str = "default"):
    """``preset``: "default" (the method's sampler, steps and CFG) or a step-distillation preset of
    :mod:`.distill` (its step list, shift and CFG 1 replace ``steps`` / ``cfg`` / the image guidance)."""
    method = get_method(method)
    distill = None
    if preset != "default":
        from .distill import PRESETS

        distill = PRESETS[preset]
        if (steps, cfg) != (distill.steps, distill.cfg):
            log.info("IDVideo: sampler preset %s: %d steps, CFG %g (one pass per step), shift %g; the sampler's "
                     "steps=%d / cfg=%g are not used.", preset, distill.steps, distill.cfg, distill.shift, steps, cfg)
        steps, cfg, image_cfg = distill.steps, distill.cfg, distill.cfg
    if text.family != "wan":
        raise InputError("These text embeddings were made for a CogVideoX/ConsisID model.",
                         "Encode the prompt with 'IDVideo Text Encode' connected to this Wan model.")
    if not (1.0 <= float(cfg) <= 30.0):
        raise InputError(f"cfg {cfg} is out of range.", "Use a guidance scale between 1 and 30 (Wan default 5).")
    if num_frames < 1:
        raise InputError(f"num_frames must be at least 1 (got {num_frames}).", "Use 81 frames (the Wan default).")
    if (num_frames - 1) % 4:
        snapped = (num_frames - 1) // 4 * 4 + 1   # the Wan VAE packs 4 frames per latent frame, after the first
        log.warning("IDVideo: %d frames is not 4k+1; using %d frames.", num_frames, snapped)
        num_frames = snapped
    image_cfg = method.image_cfg if image_cfg is None else image_cfg
    adapter = WanAdapter(model, method, steps=steps, cfg_scale=cfg,
                         image_cfg_scale=5.0 if image_cfg is None else image_cfg, text_cfg_scale=cfg,
                         # the loader's storage plan may run the CFG branches one at a time (memory/storage.py)
                         batch_branches=getattr(model.transformer, "batch_branches", True))
    generator = torch.Generator("cpu").manual_seed(int(seed))
    state = adapter.prepare(text, references or None, width, height, num_frames, generator)
    if distill is not None:
        from .distill import StepDistillSampler

        # fresh noise per step continues the seeded generator after the initial latents (as lightx2v's does)
        state.scheduler = adapter.scheduler = StepDistillSampler(distill.denoising_step_list, distill.shift,
                                                                 generator)
    return adapter, state


def generate(model, text, req, method):
    """The Wan specs' ``generate`` (``method``: the family's :class:`WanMethod`)."""
    from ...memory import vae_memory
    from ...sampling.cache import make_cache
    from .. import registry

    if req.steps < 1:
        raise InputError(f"steps must be at least 1 (got {req.steps}).", "Use 50 steps (the reference default).")
    with using(model, "vae"):
        adapter, state = prepare(model, text, method, width=req.width, height=req.height,
                                 num_frames=req.num_frames, steps=req.steps, cfg=req.cfg, seed=req.seed,
                                 references=req.references, preset=req.sampler_preset)
    spec = registry.spec_of(model)
    rule = spec.cache_rule(len(spec.blocks(model.transformer)))
    adapter.cache = make_cache(rule, len(state.scheduler.timesteps), req.cache_threshold)
    with sampling_progress(len(state.scheduler.timesteps), req.node_id, req.progress) as bar, \
            using(model, "transformer"):
        latents = denoise(_LoopAdapter(adapter, state), Stepper(state.scheduler), state.latents,
                          progress=bar, preview=req.preview, latent_dtype=torch.float32,
                          modules=(model.transformer,))
    if adapter.cache is not None:
        log.info("IDVideo: %s", adapter.cache.summary())
    with using(model, "vae") as vae, vae_memory(vae, req.vae_tiling), \
            decode_progress(vae, latents, frame_dim=2, node_id=req.node_id, enabled=req.progress):
        frames = adapter.decode(state, latents)
    bridge.soft_empty_cache()
    return (frames, latents) if req.return_latents else frames


def method_generate(method: WanMethod | str):
    """A spec ``generate`` bound to one method."""

    def _generate(model, text, req):
        return generate(model, text, req, method)

    return _generate
