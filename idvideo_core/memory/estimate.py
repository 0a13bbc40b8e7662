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
    """The batched forward of one denoising step for a ``width`` × ``height`` × ``num_frames`` clip, as the family's
    spec counts it (CFG branches, text tokens in joint attention, reference frames). ``dtype_bytes``: the compute
    dtype's size (fp8-stored weights compute in it). None when the model does not say enough."""
    from ..backbones import registry

    return registry.get(family).workload(transformer, dtype_bytes, width, height, num_frames, references)


def default_workload(family: str, transformer, dtype_bytes: int) -> Workload | None:
    """The forward of the clip the loader plans for: the family's planning clip (its trained size)."""
    from ..backbones import registry

    spec = registry.get(family)
    w, h, f = spec.planning_clip(transformer)
    return workload(family, transformer, dtype_bytes, w, h, f)
