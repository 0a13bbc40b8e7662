"""Concat-ID-CogVideoX (ML-GSAI/Concat-ID, CogVideoX-5B T2V, SAT checkpoints): one and two identities by frame
concatenation of VAE reference latents, sampled with the official SAT VP-SDE DPM++(2M) sampler.

Modules: ``keys`` (SAT ↔ diffusers names), ``checkpoint`` (safe SAT folder reading), ``loading``, ``convert``
(SAT → safetensors CLI), ``rope`` (reference positions), ``schedule`` (the SAT sampler as a stepper), ``generate``
(adapter for the shared loop, reference encoding, decoding).
"""
FAMILY = "concatid_cogvideox"
