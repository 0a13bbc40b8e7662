"""Concat-ID / Phantom semantics of our Wan forward vs an independent re-derivation of the published formulas.

The reference below is written from the formulas (original Wan key names, complex-number RoPE as in Wan/DiffSynth,
the official reference-RoPE construction of ``model_fn_wan_video`` and ``forward_adaln``), not from our code.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from idvideo_core.backbones.wan.rope import TokenGrid, reference_positions, rotary_at, token_positions
from idvideo_core.backbones.wan.transformer import ConcatIdAdaLN, WanDiT, block_forward, wan_forward
from idvideo_core.testing.tiny_wan import adaln_extras_original, original_dit_state_dict, tiny_transformer

HEADS, HEAD_DIM = 2, 128


@pytest.fixture(autouse=True)
def _no_grad():
    """Inference only (scoped: a module-level set_grad_enabled(False) leaked into every later test file)."""
    with torch.no_grad():
        yield


# ------------------------------------------------------------------ independent reference (original keys)
def _freqs(dim, n=1024, theta=10000.0):
    inv = 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float64)[: dim // 2] / dim)
    return torch.polar(torch.ones(n, dim // 2, dtype=torch.float64), torch.outer(torch.arange(n), inv))


def _axes():
    d = HEAD_DIM
    return _freqs(d - 4 * (d // 6)), _freqs(2 * (d // 6)), _freqs(2 * (d // 6))


def ref_freqs(f, h, w, k, mode):
    """Official construction: video grid, then reference(s) at f_total−k.., concat-id width w..2w−1."""
    ft, fh, fw = _axes()
    def grid(ts, hs, ws):
        return torch.cat([ft[ts].view(-1, 1, 1, ft.shape[1]).expand(len(ts), len(hs), len(ws), -1),
                          fh[hs].view(1, -1, 1, fh.shape[1]).expand(len(ts), len(hs), len(ws), -1),
                          fw[ws].view(1, 1, -1, fw.shape[1]).expand(len(ts), len(hs), len(ws), -1)], -1
                         ).reshape(-1, ft.shape[1] + 2 * fh.shape[1])
    out = [grid(torch.arange(f), torch.arange(h), torch.arange(w))]
    if k:
        ws = torch.arange(w, 2 * w) if mode == "concatid" else torch.arange(w)
        out.append(grid(torch.arange(f, f + k), torch.arange(h), ws))
    return torch.cat(out)


def rope_apply(x, fr):   # x (B,S,H,D)
    xc = torch.view_as_complex(x.double().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(xc * fr[None, :, None]).flatten(3).float()


def lin(sd, name, x):
    return F.linear(x, sd[name + ".weight"], sd[name + ".bias"])


def rms(x, w, eps=1e-6):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def ln(x, eps=1e-6):
    return F.layer_norm(x, (x.shape[-1],), eps=eps)


def attn(sd, p, x, ctx, fr=None):
    B, S, D = x.shape
    q = rms(lin(sd, p + ".q", x), sd[p + ".norm_q.weight"]).view(B, S, HEADS, -1)
    k = rms(lin(sd, p + ".k", ctx), sd[p + ".norm_k.weight"]).view(B, ctx.shape[1], HEADS, -1)
    v = lin(sd, p + ".v", ctx).view(B, ctx.shape[1], HEADS, -1)
    if fr is not None:
        q, k = rope_apply(q, fr), rope_apply(k, fr)
    o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)
    return lin(sd, p + ".o", o.flatten(2))


def ffn(sd, p, x):
    return lin(sd, p + ".2", F.gelu(lin(sd, p + ".0", x), approximate="tanh"))


def ref_block(sd, i, x, ctx, e0, fr, n_video, mode, e_ref=None):
    b = f"blocks.{i}"
    e = (sd[b + ".modulation"] + e0).chunk(6, dim=1)
    er = (sd[b + ".modulation_ref"] + e_ref).chunk(6, dim=1) if e_ref is not None else e
    xv, xr = x[:, :n_video], x[:, n_video:]
    y = torch.cat([ln(xv) * (1 + e[1]) + e[0], ln(xr) * (1 + er[1]) + er[0]], 1)
    y = attn(sd, b + ".self_attn", y, y, fr)
    x = x + torch.cat([y[:, :n_video] * e[2], y[:, n_video:] * er[2]], 1)
    norm3 = lambda z: F.layer_norm(z, (z.shape[-1],), sd[b + ".norm3.weight"], sd[b + ".norm3.bias"], 1e-6)
    if mode == "concatid":                       # text cross-attention on the video tokens only
        xv = x[:, :n_video] + attn(sd, b + ".cross_attn", norm3(x[:, :n_video]), ctx)
        x = torch.cat([xv, x[:, n_video:]], 1)
    else:
        x = x + attn(sd, b + ".cross_attn", norm3(x), ctx)
    xv, xr = x[:, :n_video], x[:, n_video:]
    fv = ffn(sd, b + ".ffn", ln(xv) * (1 + e[4]) + e[3])
    if e_ref is not None:                        # AdaLN, the published quirk: msa shift/scale, mlp gate
        fr_ = ffn(sd, b + ".ffn", ln(xr) * (1 + er[1]) + er[0])
    else:                                        # stage 1 / Phantom: the stock block on every token
        fr_ = ffn(sd, b + ".ffn", ln(xr) * (1 + e[4]) + e[3])
    return x + torch.cat([fv * e[5], fr_ * er[5]], 1)


def ref_model(sd, x, refs, t, ctx, mode, adaln=False):
    B, C, f, H, W = x.shape
    k = 0 if refs is None else refs.shape[2]
    full = x if refs is None else torch.cat([x, refs], 2)
    h, w = H // 2, W // 2
    tok = F.conv3d(full, sd["patch_embedding.weight"], sd["patch_embedding.bias"], stride=(1, 2, 2))
    tok = tok.flatten(2).transpose(1, 2)
    half = 16                                              # freq_dim 32
    sinus = torch.outer(t.double(), torch.pow(10000, -torch.arange(half, dtype=torch.float64) / half))
    temb_in = torch.cat([torch.cos(sinus), torch.sin(sinus)], 1).float()
    temb = lin(sd, "time_embedding.2", F.silu(lin(sd, "time_embedding.0", temb_in)))
    e0 = lin(sd, "time_projection.1", F.silu(temb)).unflatten(1, (6, -1))
    e_ref = lin(sd, "time_projection_ref.1", F.silu(temb)).unflatten(1, (6, -1)) if adaln else None
    c = lin(sd, "text_embedding.2", F.gelu(lin(sd, "text_embedding.0", ctx), approximate="tanh"))
    fr = ref_freqs(f, h, w, k, mode)
    nv = f * h * w
    for i in range(2):
        tok = ref_block(sd, i, tok, c, e0, fr, nv, mode, e_ref)
    tok = tok[:, :nv]
    shift, scale = (sd["head.modulation"] + temb.unsqueeze(1)).chunk(2, dim=1)
    out = lin(sd, "head.head", ln(tok) * (1 + scale) + shift)
    out = out.view(B, f, h, w, 1, 2, 2, C)
    return torch.einsum("bfhwpqrc->bcfphqwr", out).reshape(B, C, f, H, W)


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def models():
    stock = tiny_transformer(5)
    sd = original_dit_state_dict(stock)
    extras = adaln_extras_original(stock, 6)
    from idvideo_core.backbones.wan.loading import dit_from_state_dict

    return stock, sd, dit_from_state_dict({**sd, **extras}), {**sd, **extras}


def _data(k=1, seed=0, B=2):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, 16, 3, 6, 8, generator=g), torch.randn(B, 16, k, 6, 8, generator=g) if k else None,
            torch.tensor([987.25, 412.0])[:B], torch.randn(B, 7, 32, generator=g))


# ------------------------------------------------------------------ tests
def test_reference_rope_positions_match_formulas():
    g = TokenGrid(frames=3, height=3, width=4, refs=1)            # latents 3×6×8 with patch (1,2,2)
    p = reference_positions(g, "concatid")
    assert set(p[:, 0].tolist()) == {3}                            # t = f−1 counting the reference (f = 4)
    assert sorted(set(p[:, 1].tolist())) == [0, 1, 2]              # h = 0..h−1
    assert sorted(set(p[:, 2].tolist())) == [4, 5, 6, 7]           # w = w..2w−1
    assert p.tolist()[:5] == [[3, 0, 4], [3, 0, 5], [3, 0, 6], [3, 0, 7], [3, 1, 4]]   # raster order
    ph = reference_positions(g, "phantom")
    assert set(ph[:, 0].tolist()) == {3} and sorted(set(ph[:, 2].tolist())) == [0, 1, 2, 3]
    g3 = TokenGrid(frames=21, height=30, width=52, refs=3)         # 480×832×81, three references
    for mode, w0 in (("concatid", 52), ("phantom", 0)):
        q = reference_positions(g3, mode).view(3, 30, 52, 3)
        for k in range(3):                                         # each reference its own time slot
            assert (q[k, ..., 0] == 21 + k).all()
            assert q[k, 0, :, 2].tolist() == list(range(w0, w0 + 52))
    # the cos/sin we feed the attention equal the independent complex-RoPE construction
    stock = tiny_transformer(0)
    cos, sin = rotary_at(stock.rope, token_positions(g, "concatid"))
    fr = ref_freqs(3, 3, 4, 1, "concatid")
    assert torch.allclose(cos[0, :, 0, 0::2].double(), fr.real, atol=1e-6)
    assert torch.allclose(sin[0, :, 0, 1::2].double(), fr.imag, atol=1e-6)
    # with no references the positions reproduce diffusers' own rope exactly
    c0, s0 = stock.rope(torch.zeros(1, 16, 3, 6, 8))
    c1, s1 = rotary_at(stock.rope, token_positions(TokenGrid(3, 3, 4), "concatid"))
    assert torch.equal(c0, c1) and torch.equal(s0, s1)


def test_zero_references_equal_stock_diffusers(models):
    stock, _, _, _ = models
    x, _, t, ctx = _data(k=0)
    assert (wan_forward(stock, x, t, ctx) - stock(x, t, ctx).sample).abs().max().item() <= 1e-5
    for mode in ("concatid", "phantom"):
        assert (wan_forward(stock, x, t, ctx, torch.zeros(2, 16, 0, 6, 8), mode)
                - stock(x, t, ctx).sample).abs().max().item() <= 1e-5


def test_cross_attention_skip_is_exact(models):
    stock, _, _, _ = models
    blk = stock.blocks[0]
    g = torch.Generator().manual_seed(3)
    nv, nr = 30, 10
    hidden = torch.randn(2, nv + nr, 256, generator=g)
    ctx = torch.randn(2, 7, 256, generator=g)
    temb = torch.randn(2, 6, 256, generator=g)
    rot = rotary_at(stock.rope, torch.randint(0, 20, (nv + nr, 3)))
    ours = block_forward(blk, hidden, ctx, temb, rot, nv, skip_ref_cross_attn=True)
    # reference tokens get no text attention: changing the text changes nothing for them
    ours2 = block_forward(blk, hidden, ctx * 3 + 1, temb, rot, nv, skip_ref_cross_attn=True)
    assert torch.equal(ours[:, nv:], ours2[:, nv:])
    assert not torch.allclose(ours[:, :nv], ours2[:, :nv])
    # video tokens: identical to the stock block run on the whole sequence
    stock_out = blk(hidden, ctx, temb, rot)
    assert (ours[:, :nv] - stock_out[:, :nv]).abs().max().item() <= 1e-6
    # reference tokens: the stock block minus exactly the cross-attention term
    cross = blk.attn2(blk.norm2(hidden.float()), ctx, None, None)
    assert not torch.allclose(ours[:, nv:], stock_out[:, nv:], atol=1e-4)
    assert cross.abs().max() > 1e-3


def test_adaln_block_equals_published_formulas(models):
    _, _, dit, sd = models
    g = torch.Generator().manual_seed(4)
    nv, nr = 24, 12
    x = torch.randn(2, nv + nr, 256, generator=g)
    ctx = torch.randn(2, 7, 256, generator=g)
    e0 = torch.randn(2, 6, 256, generator=g)
    e_ref = torch.randn(2, 6, 256, generator=g)
    grid = TokenGrid(2, 3, 4, 1)
    rot = rotary_at(dit.base.rope, token_positions(grid, "concatid"))
    ours = block_forward(dit.base.blocks[1], x, ctx, e0, rot, nv, True,
                         dit.adaln.blocks[1].ref_scale_shift_table, e_ref)
    theirs = ref_block(sd, 1, x, ctx, e0, ref_freqs(2, 3, 4, 1, "concatid"), nv, "concatid", e_ref)
    assert (ours - theirs).abs().max().item() <= 1e-4
    # the quirk: modulation_ref[:, 3:5] is never used
    tbl = dit.adaln.blocks[1].ref_scale_shift_table
    tbl2 = tbl.clone()
    tbl2[:, 3:5] += 5.0
    again = block_forward(dit.base.blocks[1], x, ctx, e0, rot, nv, True, tbl2, e_ref)
    assert torch.equal(ours, again)


@pytest.mark.parametrize("mode,adaln,k", [("concatid", False, 1), ("concatid", True, 1), ("phantom", False, 2),
                                          ("concatid", True, 2), ("stock", False, 0)])
def test_full_forward_equals_reference(models, mode, adaln, k):
    stock, sd, dit, sd_x = models
    x, refs, t, ctx = _data(k=k, seed=k + int(adaln))
    model = dit if adaln else WanDiT(stock)
    ours = model(x, t, ctx, refs, mode)
    theirs = ref_model(sd_x if adaln else sd, x, refs, t, ctx, mode if mode != "stock" else "phantom", adaln)
    assert ours.shape == x.shape
    assert (ours - theirs).abs().max().item() <= 2e-4


def test_phantom_equals_stock_forward_on_concatenated_latents(models):
    """Phantom = stock Wan over [video ‖ references] (sequential RoPE, cross-attn everywhere), trimmed."""
    stock, _, _, _ = models
    x, refs, t, ctx = _data(k=2)
    full = stock(torch.cat([x, refs], 2), t, ctx).sample[:, :, :3]
    assert (wan_forward(stock, x, t, ctx, refs, "phantom") - full).abs().max().item() <= 1e-5


def test_adaln_time_projection_uses_current_t(models):
    _, _, dit, _ = models
    x, refs, t, ctx = _data(k=1)
    a = dit(x, t, ctx, refs, "concatid")
    # Changing time_projection_ref changes the output (it is used), at the current t
    saved = dit.adaln.ref_time_proj.bias.clone()
    dit.adaln.ref_time_proj.bias.add_(0.5)
    b = dit(x, t, ctx, refs, "concatid")
    dit.adaln.ref_time_proj.bias.copy_(saved)
    assert not torch.allclose(a, b)
    assert ConcatIdAdaLN.copied_from(dit.base).ref_time_proj.weight.shape == (1536, 256)
