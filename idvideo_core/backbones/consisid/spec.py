"""ConsisID's plug-in: CogVideoX-5B-I2V with the face latent on channels and LFE cross-attention every 2nd block."""
from __future__ import annotations

from ...attention import set_joint_attention
from ...lora.formats import LoraSupport
from ...preview import COGVIDEOX
from ..registry import BackboneSpec, ClipDefaults, register


def _generate(model, text, req):
    from .generate import generate

    return generate(model, text, req)


def _encode_prompt(text_encoder, tokenizer, prompt, negative_prompt="", device=None, dtype=None):
    from ...text import encode_cogvideox_prompt

    return encode_cogvideox_prompt(text_encoder, tokenizer, prompt, negative_prompt, device=device, dtype=dtype)


def _workload(transformer, dtype_bytes, width, height, num_frames, references=None):
    """2 CFG branches (one batched forward); video tokens + 226 text tokens in joint attention."""
    from ...memory.estimate import Workload

    cfg = getattr(transformer, "config", None)
    try:
        dim = cfg.num_attention_heads * cfg.attention_head_dim
        ffn = transformer.transformer_blocks[0].ff.net[0].proj.out_features
        p, t = cfg.patch_size, cfg.temporal_compression_ratio
        frames = (num_frames - 1) // t + 1
        tokens = frames * (height // 8 // p) * (width // 8 // p) + cfg.max_text_seq_length
    except (AttributeError, IndexError, TypeError):
        return None
    return Workload(2, tokens, dim, ffn, dtype_bytes)


def _planned_clip(transformer):
    """The trained clip from the config (49 × 480 × 720 for ConsisID-preview)."""
    cfg = getattr(transformer, "config", None)
    try:
        return cfg.sample_width * 8, cfg.sample_height * 8, cfg.sample_frames
    except (AttributeError, TypeError):
        return None


def _cache_rule(num_blocks):
    from ...sampling.cache import CONSISID

    return CONSISID


def _global_identity(model, face_rgb, width, height, kps_rgb=None):
    from .generate import encode_global_identity

    return encode_global_identity(model, face_rgb, width, height, kps_rgb)


def _trained_size(model):
    from .generate import trained_size

    return trained_size(model)


SPEC = register(BackboneSpec(
    family="consisid", label="ConsisID", text_family="cogvideox",
    defaults=ClipDefaults(width=720, height=480, num_frames=49, fps=8, steps=50, cfg=6.0, seed=42),
    frame_unit=8,                        # the CogVideoX VAE makes 8k+1 frames from an odd latent count
    block_path="transformer_blocks", identity="face",
    generate=_generate, encode_prompt=_encode_prompt, workload=_workload,
    set_attention=lambda tf, choice, kernel: set_joint_attention(tf.transformer_blocks, choice, kernel),
    cache_rule=_cache_rule, published="consisid", latent_rgb=COGVIDEOX,
    encode_global_identity=_global_identity, trained_size=_trained_size, planned_clip=_planned_clip,
    lora=LoraSupport("CogVideoXLoraLoaderMixin"),   # CogVideoX LoRAs: diffusers / PEFT or kohya names of its layers
    description="ConsisID (CogVideoX-5B-I2V): global face latent on channels + local identity cross-attention.",
))
