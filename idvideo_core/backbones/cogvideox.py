"""What the CogVideoX-5B-based families (ConsisID, Concat-ID-CogVideoX) share: T5 prompts (226 tokens), the VAE's
compression factors, the activation estimate of the joint text+video forward, the joint-attention kernel switch.
A plain module, not a plug-in package: the families' ``spec.py`` files use it."""
from __future__ import annotations

from ..attention import set_joint_attention


def vae_factors(vae) -> tuple[int, int]:
    """(spatial, temporal) compression of a CogVideoX VAE."""
    return 2 ** (len(vae.config.block_out_channels) - 1), int(getattr(vae.config, "temporal_compression_ratio", 4))


def encode_prompt(text_encoder, tokenizer, prompt, negative_prompt="", device=None, dtype=None):
    from ..text import encode_cogvideox_prompt

    return encode_cogvideox_prompt(text_encoder, tokenizer, prompt, negative_prompt, device=device, dtype=dtype)


def set_attention(transformer, choice, kernel=None):
    set_joint_attention(transformer.transformer_blocks, choice, kernel)


def make_workload(default_refs: int):
    """2 CFG branches in one batched forward; (video + reference frames) tokens + the text tokens (joint attention).
    ``default_refs``: reference latent frames when the caller does not say (0 for ConsisID, which has none)."""

    def workload(transformer, dtype_bytes, width, height, num_frames, references=None):
        from ..memory.estimate import Workload

        cfg = getattr(transformer, "config", None)
        try:
            dim = cfg.num_attention_heads * cfg.attention_head_dim
            ffn = transformer.transformer_blocks[0].ff.net[0].proj.out_features
            p = cfg.patch_size
            frames = (num_frames - 1) // cfg.temporal_compression_ratio + 1
            refs = default_refs if references is None else int(references)
            tokens = (frames + refs) * (height // 8 // p) * (width // 8 // p) + cfg.max_text_seq_length
        except (AttributeError, IndexError, TypeError):
            return None
        return Workload(2, tokens, dim, ffn, dtype_bytes)

    return workload
