"""Concat-ID-CogVideoX's plug-in: CogVideoX-5B T2V (SAT weights) with face references appended as latent frames."""
from __future__ import annotations

from ...lora.formats import LoraSupport
from ...preview import COGVIDEOX
from .. import cogvideox
from ..registry import BackboneSpec, ClipDefaults, register
from . import FAMILY
from .rope import MAX_REFERENCES


def _generate(model, text, req):
    from .generate import generate

    return generate(model, text, req)


def _cache_rule(num_blocks):
    from ...sampling.cache import CONSISID

    return CONSISID          # same CogVideoX-5B blocks; this family's sampler does not use a step cache (warned)


SPEC = register(BackboneSpec(
    family=FAMILY, label="Concat-ID-CogVideoX", text_family="cogvideox",
    defaults=ClipDefaults(width=720, height=480, num_frames=49, fps=8, steps=50, cfg=6.0, seed=42),
    frame_unit=8, block_path="transformer_blocks", identity="references",
    generate=_generate, encode_prompt=cogvideox.encode_prompt, workload=cogvideox.make_workload(2),
    set_attention=cogvideox.set_attention,
    cache_rule=_cache_rule, published="concatid_cogvideox", latent_rgb=COGVIDEOX,
    max_references=MAX_REFERENCES, trained_references=2,
    lora=LoraSupport("CogVideoXLoraLoaderMixin"),   # a diffusers CogVideoXTransformer3DModel: CogVideoX-5B LoRAs
    description="Concat-ID on CogVideoX-5B (SAT weights: single-identity, two-identities, pre-training): face "
                "references as extra latent frames, official SAT sampler (VP-SDE DPM++2M, CFG 6 on x0).",
))
