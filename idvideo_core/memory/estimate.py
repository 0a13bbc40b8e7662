"""How much device memory one batched DiT forward needs besides the weights (the planner's working reserve).

Measured, not guessed: the forwards of the full-size ConsisID (42 × 3072, FFN 12288) and Wan2.1-1.3B (30 × 1536,
FFN 8960) DiTs were traced on fake tensors with ``torch.distributed._tools.mem_tracker.MemTracker`` (no GPU, no
compute; the attention as the flash kernel the GPU uses, so no N² score matrix), at several clip sizes. The peak of
live activations is linear in batch × tokens, and per token it is ≈ 7.6 hidden-width tensors + 1.6 FFN-width
tensors (ConsisID 13.95 × dim, Wan 16.85 × dim). The constants below round that up (+3 %);
``tests/test_memory_estimate.py`` re-traces both models and checks the estimate stays within [1, 1.15] × traced.
"""
from __future__ import annotations

from dataclasses import dataclass

HIDDEN_COPIES = 8.0       # hidden-width activations alive at the peak, per token
FFN_COPIES = 1.6          # FFN-width activations alive at the peak, per token


def forward_activation_bytes(batch: int, tokens: int, dim: int, ffn_dim: int, dtype_bytes: int) -> int:
    """Peak activation bytes of one forward over ``batch`` × ``tokens`` (text tokens included where joint)."""
    return int(dtype_bytes * batch * tokens * (HIDDEN_COPIES * dim + FFN_COPIES * ffn_dim))


@dataclass(frozen=True)
class Workload:
    """One denoising forward: what the estimate needs."""

    batch: int            # CFG branches batched together
    tokens: int           # sequence length per branch
    dim: int
    ffn_dim: int
    dtype_bytes: int

    @property
    def activation_bytes(self) -> int:
        return forward_activation_bytes(self.batch, self.tokens, self.dim, self.ffn_dim, self.dtype_bytes)


def workload(family: str, transformer, dtype_bytes: int, width: int, height: int, num_frames: int,
             references: int | None = None) -> Workload | None:
    """The batched forward of one denoising step for a ``width`` × ``height`` × ``num_frames`` clip.

    ConsisID: 2 CFG branches, video tokens + 226 text tokens (joint attention). Wan: reference frames join the video
    frames (Concat-ID: 1 by default, 2 branches; Phantom: up to 4, 3 branches). ``dtype_bytes``: the compute
    dtype's size (fp8-stored weights compute in it). None when the model does not say enough.
    """
    if family == "consisid":
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
    base = getattr(transformer, "base", transformer)
    cfg = getattr(base, "config", None)
    try:
        conf = dict(num_attention_heads=cfg.num_attention_heads, attention_head_dim=cfg.attention_head_dim,
                    ffn_dim=cfg.ffn_dim, patch_size=tuple(cfg.patch_size))
    except (AttributeError, TypeError, ValueError):
        return None
    batch = None if getattr(transformer, "batch_branches", True) else 1
    return workload_for_config(family, conf, dtype_bytes, width, height, num_frames, references, batch)


def workload_for_config(family: str, config: dict, dtype_bytes: int, width: int, height: int, num_frames: int,
                        references: int | None = None, batch: int | None = None) -> Workload:
    """:func:`workload` for a Wan transformer known only by its config (read from a file's tensor shapes, before
    loading). ``batch``: branches per forward (None: all CFG branches batched — Phantom 3, Concat-ID/Wan 2; 1 when
    the sampler runs them one after the other). Each reference adds one latent frame of tokens (+K frames)."""
    dim = int(config["num_attention_heads"]) * int(config["attention_head_dim"])
    pt, ph, pw = config["patch_size"]
    phantom = "phantom" in family
    refs = (4 if phantom else 1) if references is None else int(references)
    tokens = ((num_frames - 1) // 4 + 1 + refs) // pt * (height // 8 // ph) * (width // 8 // pw)
    branches = (3 if phantom else 2) if batch is None else int(batch)
    return Workload(branches, tokens, dim, int(config["ffn_dim"]), dtype_bytes)


def default_workload(family: str, transformer, dtype_bytes: int) -> Workload | None:
    """The forward of the model's default clip (what the loader plans for): ConsisID its trained size (from the
    config; 49 × 480 × 720 for the published model), the Wan models 81 × 480 × 832 with their default references."""
    if family == "consisid":
        cfg = getattr(transformer, "config", None)
        try:
            w, h, f = cfg.sample_width * 8, cfg.sample_height * 8, cfg.sample_frames
        except (AttributeError, TypeError):
            return None
        return workload(family, transformer, dtype_bytes, w, h, f)
    w, h, f = getattr(transformer, "default_clip", None) or (832, 480, 81)   # set by the Wan loader (Phantom-14B)
    return workload(family, transformer, dtype_bytes, w, h, f)
