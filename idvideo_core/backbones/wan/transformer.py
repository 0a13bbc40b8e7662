"""Our Wan2.1 forward over diffusers' ``WanTransformer3DModel`` modules, with reference frames appended.

Why our own loop instead of processors/hooks: the three things Concat-ID changes all sit *between* the stock block's
sub-modules — explicit RoPE positions for the reference tokens, cross-attention restricted to the video tokens, and
(AdaLN variant) a second modulation for the reference tokens. Reusing every sub-module (attention, norms, FFN, the
condition embedder) keeps the weights and numerics identical to diffusers; with no references this forward equals
``WanTransformer3DModel.forward`` (tested to 1e-5).

Modes:
* ``stock``    — no references; plain Wan.
* ``concatid`` — references at Concat-ID's RoPE slots; no text cross-attention on reference tokens; when the DiT
  carries the AdaLN extras, reference tokens use ``modulation_ref + time_projection_ref(t)`` at the current t, with
  the published reference-FFN quirk (FFN input modulated by the *msa* shift/scale, gated by ``gate_mlp_ref``).
* ``phantom``  — references at stock sequential RoPE slots; cross-attention and modulation on every token.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .rope import CONCATID, PHANTOM, TokenGrid, rotary_at, token_positions

STOCK = "stock"
MODES = (STOCK, CONCATID, PHANTOM)


class _RefTable(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.ref_scale_shift_table = nn.Parameter(torch.zeros(1, 6, dim))


class ConcatIdAdaLN(nn.Module):
    """Concat-ID-Wan-AdaLN's extra parameters (≈14.4M at 1.3B): ``ref_time_proj`` (original ``time_projection_ref.1``)
    and per-block ``blocks.N.ref_scale_shift_table`` (original ``blocks.N.modulation_ref``)."""

    def __init__(self, dim: int, num_layers: int):
        super().__init__()
        self.ref_time_proj = nn.Linear(dim, 6 * dim)
        self.blocks = nn.ModuleList([_RefTable(dim) for _ in range(num_layers)])

    @classmethod
    def copied_from(cls, base) -> "ConcatIdAdaLN":
        """Initialised as the training script does: copies of ``time_projection`` and each block's ``modulation``."""
        dim = base.config.num_attention_heads * base.config.attention_head_dim
        m = cls(dim, len(base.blocks)).to(dtype=base.condition_embedder.time_proj.weight.dtype)
        with torch.no_grad():
            m.ref_time_proj.load_state_dict(base.condition_embedder.time_proj.state_dict())
            for blk, ref in zip(base.blocks, m.blocks):
                ref.ref_scale_shift_table.copy_(blk.scale_shift_table)
        return m


class WanDiT(nn.Module):
    """A diffusers ``WanTransformer3DModel`` plus optional Concat-ID AdaLN extras; ``forward`` is the IDVideo path."""

    def __init__(self, base, adaln: Optional[ConcatIdAdaLN] = None):
        super().__init__()
        self.base = base
        self.adaln = adaln

    @property
    def config(self):
        return self.base.config

    @property
    def dtype(self):
        return self.base.dtype

    @property
    def device(self):
        return self.base.device

    def forward(self, latents: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor,
                refs: Optional[torch.Tensor] = None, mode: str = STOCK, cache=None, cache_slot=0) -> torch.Tensor:
        """Velocity for the *video* frames only.

        ``cache``: optional :class:`~idvideo_core.sampling.cache.StepCache` over the block stack (None: exact).

        latents: (B, C, F, H, W) noisy video latents; refs: (B, C, K, H, W) clean reference latents or None;
        timestep: (B,) in 0..1000; context: (B, L, text_dim) text embeddings (already zero-padded).
        """
        return wan_forward(self.base, latents, timestep, context, refs, mode, self.adaln, cache, cache_slot)


def _modulation(table: torch.Tensor, proj: torch.Tensor):
    """(shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp), each (B, 1, D) float32."""
    return (table + proj.float()).chunk(6, dim=1)


def _modulate_split(x: torch.Tensor, n_video: int, video: tuple, ref: Optional[tuple]) -> torch.Tensor:
    """x·(1+scale)+shift with the video pair on the first ``n_video`` tokens and the reference pair on the rest."""
    shift_v, scale_v = video
    if ref is None:
        return x * (1 + scale_v) + shift_v
    shift_r, scale_r = ref
    return torch.cat([x[:, :n_video] * (1 + scale_v) + shift_v, x[:, n_video:] * (1 + scale_r) + shift_r], dim=1)


def _gate_split(y: torch.Tensor, n_video: int, gate_v: torch.Tensor, gate_r: Optional[torch.Tensor]) -> torch.Tensor:
    if gate_r is None:
        return y * gate_v
    return torch.cat([y[:, :n_video] * gate_v, y[:, n_video:] * gate_r], dim=1)


def block_forward(block, hidden: torch.Tensor, context: torch.Tensor, temb_proj: torch.Tensor, rotary,
                  n_video: int, skip_ref_cross_attn: bool = False,
                  ref_table: Optional[torch.Tensor] = None, ref_proj: Optional[torch.Tensor] = None) -> torch.Tensor:
    """One ``WanTransformerBlock`` with reference handling; the stock arithmetic when there are no reference tokens.

    ``ref_table``/``ref_proj`` (AdaLN): the block's ``modulation_ref`` and ``time_projection_ref(t)`` (B, 6, D).
    """
    has_ref = hidden.shape[1] > n_video
    sm, cm, gm, s_mlp, c_mlp, g_mlp = _modulation(block.scale_shift_table, temb_proj)
    r = _modulation(ref_table, ref_proj) if (has_ref and ref_table is not None) else None

    # 1. self-attention over all tokens
    normed = block.norm1(hidden.float())
    normed = _modulate_split(normed, n_video, (sm, cm), (r[0], r[1]) if r else None).type_as(hidden)
    attn = block.attn1(normed, None, None, rotary)
    hidden = (hidden.float() + _gate_split(attn, n_video, gm, r[2] if r else None)).type_as(hidden)

    # 2. text cross-attention (video tokens only for Concat-ID; queries are independent, so this is exact)
    if has_ref and skip_ref_cross_attn:
        vid = hidden[:, :n_video]
        out = block.attn2(block.norm2(vid.float()).type_as(vid), context, None, None)
        hidden = torch.cat([vid + out, hidden[:, n_video:]], dim=1)
    else:
        hidden = hidden + block.attn2(block.norm2(hidden.float()).type_as(hidden), context, None, None)

    # 3. feed-forward; reference quirk: msa shift/scale on the FFN input, mlp gate on its output
    normed = block.norm3(hidden.float())
    normed = _modulate_split(normed, n_video, (s_mlp, c_mlp), (r[0], r[1]) if r else None).type_as(hidden)
    ff = block.ffn(normed)
    hidden = (hidden.float() + _gate_split(ff.float(), n_video, g_mlp, r[5] if r else None)).type_as(hidden)
    return hidden


def wan_forward(model, latents: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor,
                refs: Optional[torch.Tensor] = None, mode: str = STOCK,
                adaln: Optional[ConcatIdAdaLN] = None, cache=None, cache_slot=0) -> torch.Tensor:
    """See :meth:`WanDiT.forward`. ``model`` is a diffusers ``WanTransformer3DModel``."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if refs is not None and refs.shape[2] == 0:
        refs = None
    if mode == STOCK and refs is not None:
        raise ValueError("stock mode takes no references")
    p_t, p_h, p_w = model.config.patch_size
    B, _, n_f, h, w = latents.shape
    n_refs = 0 if refs is None else refs.shape[2]
    if n_refs and p_t != 1:
        raise ValueError("reference frames need a temporal patch size of 1 (every Wan2.1 model has it)")
    grid = TokenGrid(n_f // p_t, h // p_h, w // p_w, n_refs)
    x = latents if refs is None else torch.cat([latents, refs.to(latents.dtype)], dim=2)

    hidden = model.patch_embedding(x).flatten(2).transpose(1, 2).contiguous()
    if n_refs:
        rotary = rotary_at(model.rope, token_positions(grid, mode), device=hidden.device)
    else:
        rotary = model.rope(latents)
    temb, temb_proj, ctx, _ = model.condition_embedder(timestep, context, None)
    ref_proj = None
    if n_refs and adaln is not None and mode == CONCATID:
        ref_proj = adaln.ref_time_proj(F.silu(temb)).unflatten(1, (6, -1))
    temb_proj = temb_proj.unflatten(1, (6, -1))

    n_video = grid.video_tokens

    def block_stack(hidden):
        for i, block in enumerate(model.blocks):
            table = adaln.blocks[i].ref_scale_shift_table if ref_proj is not None else None
            hidden = block_forward(block, hidden, ctx, temb_proj, rotary, n_video,
                                   skip_ref_cross_attn=(mode == CONCATID), ref_table=table, ref_proj=ref_proj)
        return hidden

    # step cache signal: the projected timestep modulation (TeaCache's "e0" for Wan)
    hidden = block_stack(hidden) if cache is None else cache.run(temb_proj, hidden, block_stack, cache_slot)

    # output head on the video tokens only (the head is per-token; reference outputs are discarded anyway)
    hidden = hidden[:, :n_video]
    shift, scale = (model.scale_shift_table.to(temb.device) + temb.unsqueeze(1)).chunk(2, dim=1)
    hidden = (model.norm_out(hidden.float()) * (1 + scale) + shift).type_as(hidden)
    hidden = model.proj_out(hidden)
    hidden = hidden.reshape(B, grid.frames, grid.height, grid.width, p_t, p_h, p_w, -1)
    out = hidden.permute(0, 7, 1, 4, 2, 5, 3, 6).flatten(6, 7).flatten(4, 5).flatten(2, 3)
    return out


def param_count(module: nn.Module) -> int:
    return sum(math.prod(p.shape) for p in module.parameters())
