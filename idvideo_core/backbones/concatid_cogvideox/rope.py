"""3-D RoPE of Concat-ID-CogVideoX with references.

The official rotary mixin builds a table over (T + 5) temporal slots × the latent grid in (t, h, w) raster order and
takes its first rows for the whole vision sequence, so reference k (0-based) gets t = T + k on the same h/w grid as
the video (no spatial offset); text tokens get no rotation. diffusers' ``get_3d_rotary_pos_embed`` over T + K frames
with the crop equal to the full grid gives exactly those rows (integer positions; tested against
:func:`sat_rotary_table`), and diffusers' CogVideoX attention applies it to the vision tokens only.

Axis widths: t = head/4, h = w = 3·head/8, θ = 10000, interleaved pairs.
"""
from __future__ import annotations

import torch

MAX_REFERENCES = 3        # the official DiT asserts at most 3 reference frames (its table has 5 spare slots)


def rotary_embedding(head_dim: int, grid_h: int, grid_w: int, frames: int, references: int = 0, device=None):
    """(cos, sin), each [(T + K)·h·w, head_dim], for T video frames followed by K reference frames."""
    from diffusers.models.embeddings import get_3d_rotary_pos_embed

    return get_3d_rotary_pos_embed(embed_dim=head_dim, crops_coords=((0, 0), (grid_h, grid_w)),
                                   grid_size=(grid_h, grid_w), temporal_size=frames + references, device=device)


def positions(grid_h: int, grid_w: int, frames: int, references: int = 0) -> torch.Tensor:
    """[(T + K)·h·w, 3] integer (t, h, w) of every vision token in sequence order (references last)."""
    t, h, w = torch.meshgrid(torch.arange(frames + references), torch.arange(grid_h), torch.arange(grid_w),
                             indexing="ij")
    return torch.stack([t, h, w], -1).reshape(-1, 3)


def sat_rotary_table(head_dim: int, grid_h: int, grid_w: int, slots: int, theta: float = 10000.0):
    """The official table written directly from its definition: (cos, sin) over ``slots`` temporal positions."""
    dims = (head_dim // 4, head_dim // 8 * 3, head_dim // 8 * 3)
    pos = positions(grid_h, grid_w, slots).float()
    parts = []
    for axis, d in enumerate(dims):
        inv = 1.0 / (theta ** (torch.arange(0, d, 2)[: d // 2].float() / d))
        ang = pos[:, axis:axis + 1] * inv[None]
        parts.append(ang.repeat_interleave(2, dim=-1))
    freqs = torch.cat(parts, -1)
    return freqs.cos(), freqs.sin()
