"""Concat-ID-CogVideoX's plug-in: CogVideoX-5B T2V (SAT weights) with face references appended as latent frames."""
from __future__ import annotations

from ...attention import set_joint_attention
from ...lora.formats import LoraSupport
from ...preview import COGVIDEOX
from ..registry import BackboneSpec, ClipDefaults, register
from . import FAMILY
from .rope import MAX_REFERENCES


def _generate(model, text, req):
    from .generate import generate

    return generate(model, text, req)


def _encode_prompt(text_encoder, tokenizer, prompt, negative_prompt="", device=None, dtype=None):
    """T5-XXL, 226 tokens (as ConsisID). The negative prompt is encoded but the sampler uses zeroed embeddings."""
    from ...text import encode_cogvideox_prompt

    return encode_cogvideox_prompt(text_encoder, tokenizer, prompt, negative_prompt, device=device, dtype=dtype)


def _workload(transformer, dtype_bytes, width, height, num_frames, references=None):
    """2 CFG branches in one batched forward; (video + reference frames) tokens + 226 text tokens, joint attention."""
    from ...memory.estimate import Workload

    cfg = getattr(transformer, "config", None)
    try:
        dim = cfg.num_attention_heads * cfg.attention_head_dim
        ffn = transformer.transformer_blocks[0].ff.net[0].proj.out_features
        p = cfg.patch_size
        frames = (num_frames - 1) // cfg.temporal_compression_ratio + 1
        refs = 2 if references is None else int(references)
        tokens = (frames + refs) * (height // 8 // p) * (width // 8 // p) + cfg.max_text_seq_length
    except (AttributeError, IndexError, TypeError):
        return None
    return Workload(2, tokens, dim, ffn, dtype_bytes)


def _cache_rule(num_blocks):
    from ...sampling.cache import CONSISID

    return CONSISID          # same CogVideoX-5B blocks; this family's sampler does not use a step cache (warned)


SPEC = register(BackboneSpec(
    family=FAMILY, label="Concat-ID-CogVideoX", text_family="cogvideox",
    defaults=ClipDefaults(width=720, height=480, num_frames=49, fps=8, steps=50, cfg=6.0, seed=42),
    frame_unit=8, block_path="transformer_blocks", identity="references",
    generate=_generate, encode_prompt=_encode_prompt, workload=_workload,
    set_attention=lambda tf, choice, kernel: set_joint_attention(tf.transformer_blocks, choice, kernel),
    cache_rule=_cache_rule, published="concatid_cogvideox", latent_rgb=COGVIDEOX,
    max_references=MAX_REFERENCES, trained_references=2,
    lora=LoraSupport("CogVideoXLoraLoaderMixin"),   # a diffusers CogVideoXTransformer3DModel: CogVideoX-5B LoRAs
    description="Concat-ID on CogVideoX-5B (SAT weights: single-identity, two-identities, pre-training): face "
                "references as extra latent frames, official SAT sampler (VP-SDE DPM++2M, CFG 6 on x0).",
))
