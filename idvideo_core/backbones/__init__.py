"""Backbones: how references enter, RoPE, CFG shape. One denoising loop (:mod:`idvideo_core.sampling`) serves all."""
