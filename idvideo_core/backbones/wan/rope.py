"""Wan 3-D RoPE at explicit (t, h, w) positions, for video tokens plus appended reference frames.

Why explicit positions: diffusers' ``WanRotaryPosEmbed`` only builds the raster grid 0..F-1 × 0..H-1 × 0..W-1. The two
reference methods place references differently:

* **Concat-ID-Wan** (``model_fn_wan_video``): reference k of K sits at time ``F + k`` (for one reference: f−1 where f
  counts the reference frame, i.e. the slot right after the last video frame), height ``0..h−1`` and width
  ``w..2w−1`` — one full frame-width to the right. Multi-reference gives each reference its own time slot (untrained).
* **Phantom-Wan**: stock RoPE over the concatenated grid — reference k at time ``F + k``, same spatial grid.

The cos/sin tables are the model's own ``rope.freqs_cos/freqs_sin`` buffers (positions 0..1023 per axis), indexed
per axis, so with zero references the result is bit-identical to the stock module.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

CONCATID = "concatid"
PHANTOM = "phantom"


@dataclass(frozen=True)
class TokenGrid:
    """Token-grid sizes after patching: ``frames`` video frames, ``refs`` reference frames, each ``height×width``."""

    frames: int
    height: int
    width: int
    refs: int = 0

    @property
    def video_tokens(self) -> int:
        return self.frames * self.height * self.width

    @property
    def ref_tokens(self) -> int:
        return self.refs * self.height * self.width


def _raster(t: torch.Tensor, h: int, w: int, w_offset: int = 0) -> torch.Tensor:
    """(len(t)·h·w, 3) int positions in (t, h, w) raster order, as patch_embedding flattens tokens."""
    tt, hh, ww = torch.meshgrid(t, torch.arange(h), torch.arange(w) + w_offset, indexing="ij")
    return torch.stack([tt, hh, ww], dim=-1).reshape(-1, 3)


def video_positions(grid: TokenGrid) -> torch.Tensor:
    return _raster(torch.arange(grid.frames), grid.height, grid.width)


def reference_positions(grid: TokenGrid, mode: str) -> torch.Tensor:
    """Positions of the reference tokens (``grid.refs`` frames) for ``mode`` = ``concatid`` or ``phantom``."""
    t = torch.arange(grid.frames, grid.frames + grid.refs)
    if mode == CONCATID:
        return _raster(t, grid.height, grid.width, w_offset=grid.width)
    if mode == PHANTOM:
        return _raster(t, grid.height, grid.width)
    raise ValueError(f"unknown reference RoPE mode {mode!r}")


def token_positions(grid: TokenGrid, mode: str) -> torch.Tensor:
    """All token positions: video first, then references (the order tokens are concatenated in)."""
    pos = video_positions(grid)
    if grid.refs:
        pos = torch.cat([pos, reference_positions(grid, mode)], dim=0)
    return pos


def rotary_at(rope_module, positions: torch.Tensor, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin), each (1, N, 1, head_dim), in the format diffusers' Wan attention processor expects."""
    split = [rope_module.t_dim, rope_module.h_dim, rope_module.w_dim]
    limit = rope_module.freqs_cos.shape[0]
    if int(positions.max()) >= limit:
        raise ValueError(f"RoPE position {int(positions.max())} exceeds the table size {limit}")
    cos_parts = rope_module.freqs_cos.split(split, dim=1)
    sin_parts = rope_module.freqs_sin.split(split, dim=1)
    idx = positions.to(rope_module.freqs_cos.device)
    cos = torch.cat([cos_parts[a][idx[:, a]] for a in range(3)], dim=-1)
    sin = torch.cat([sin_parts[a][idx[:, a]] for a in range(3)], dim=-1)
    cos, sin = cos[None, :, None, :], sin[None, :, None, :]
    if device is not None:
        cos, sin = cos.to(device), sin.to(device)
    return cos, sin
