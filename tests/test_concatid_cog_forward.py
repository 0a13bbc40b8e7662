"""Concat-ID-CogVideoX forward: an independent implementation of the official SAT DiT (written from
dit_video_concat.py's equations on the SAT-named weights) against the pack's diffusers-based adapter; zero references
against diffusers' stock CogVideoX forward; reference RoPE positions and trimming; CFG with zeroed text."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from idvideo_core.backbones.concatid_cogvideox import rope as R
from idvideo_core.backbones.concatid_cogvideox.generate import ConcatIdCogAdapter
from idvideo_core.backbones.concatid_cogvideox.schedule import SATDPMStepper, v_to_x0
from idvideo_core.testing import tiny_concatid_cog as T

P = "model.diffusion_model."


@pytest.fixture(scope="module")
def tiny():
    return T.tiny_transformer(seed=5)


@pytest.fixture(scope="module")
def sat(tiny):
    return T.sat_state_dict(tiny)


def _ln(x, sd, name, eps=1e-6):
    return F.layer_norm(x, x.shape[-1:], sd[name + ".weight"], sd[name + ".bias"], eps)


def _lin(x, sd, name):
    return F.linear(x, sd[name + ".weight"], sd[name + ".bias"])


def _rot(x, cos, sin):     # SAT rotate_half on interleaved pairs
    x1, x2 = x[..., 0::2], x[..., 1::2]
    rh = torch.stack((-x2, x1), -1).flatten(-2)
    return x * cos + rh * sin


def sat_dit(sd, x, refs, t, text, heads=2, patch=2, layers=2, slots_extra=5):
    """The official DiffusionTransformer.forward on [B, T, C, H, W] video latents + [B, K, C, H, W] references."""
    sd = {k[len(P):]: v for k, v in sd.items()}
    x = torch.cat([x, refs], 1)
    b, tt, c, h, w = x.shape
    hid = sd["mixins.patch_embed.proj.weight"].shape[0]
    half = hid // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    args = t[:, None].float() * freqs[None]
    emb = _lin(F.silu(_lin(torch.cat([args.cos(), args.sin()], -1), sd, "time_embed.0")), sd, "time_embed.2")
    img = F.conv2d(x.reshape(-1, c, h, w), sd["mixins.patch_embed.proj.weight"], sd["mixins.patch_embed.proj.bias"],
                   stride=patch)
    img = img.reshape(b, tt, hid, -1).transpose(2, 3).reshape(b, -1, hid)
    txt = _lin(text, sd, "mixins.patch_embed.text_proj")
    n = txt.shape[1]
    hs = torch.cat([txt, img], 1)
    gh, gw = h // patch, w // patch
    cos, sin = R.sat_rotary_table(hid // heads, gh, gw, tt - refs.shape[1] + slots_extra)
    L = hs.shape[1] - n
    cos, sin = cos[:L], sin[:L]                                   # freqs[:seq_len]
    hd = hid // heads
    for i in range(layers):
        pre = f"transformer.layers.{i}."
        m = _lin(F.silu(emb), sd, f"mixins.adaln_layer.adaLN_modulations.{i}.1").chunk(12, 1)
        mod = lambda y, s, sc: y * (1 + sc[:, None]) + s[:, None]
        ti, ii = hs[:, :n], hs[:, n:]
        a_in = torch.cat([mod(_ln(ti, sd, pre + "input_layernorm"), m[6], m[7]),
                          mod(_ln(ii, sd, pre + "input_layernorm"), m[0], m[1])], 1)
        q, k, v = _lin(a_in, sd, pre + "attention.query_key_value").chunk(3, -1)
        q, k, v = (z.reshape(b, -1, heads, hd).transpose(1, 2) for z in (q, k, v))
        q = _ln(q, sd, f"mixins.adaln_layer.query_layernorm_list.{i}")
        k = _ln(k, sd, f"mixins.adaln_layer.key_layernorm_list.{i}")
        q = torch.cat([q[:, :, :n], _rot(q[:, :, n:], cos, sin)], 2)
        k = torch.cat([k[:, :, :n], _rot(k[:, :, n:], cos, sin)], 2)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), -1) @ v
        att = _lin(att.transpose(1, 2).reshape(b, -1, hid), sd, pre + "attention.dense")
        ii = ii + m[2][:, None] * att[:, n:]
        ti = ti + m[8][:, None] * att[:, :n]
        m_in = torch.cat([mod(_ln(ti, sd, pre + "post_attention_layernorm"), m[9], m[10]),
                          mod(_ln(ii, sd, pre + "post_attention_layernorm"), m[3], m[4])], 1)
        mo = _lin(F.gelu(_lin(m_in, sd, pre + "mlp.dense_h_to_4h"), approximate="tanh"), sd, pre + "mlp.dense_4h_to_h")
        ii = ii + m[5][:, None] * mo[:, n:]
        ti = ti + m[11][:, None] * mo[:, :n]
        hs = torch.cat([ti, ii], 1)
    hs = _ln(hs, sd, "transformer.final_layernorm")[:, n:]
    shift, scale = _lin(F.silu(emb), sd, "mixins.final_layer.adaLN_modulation.1").chunk(2, 1)
    hs = _ln(hs, sd, "mixins.final_layer.norm_final") * (1 + scale[:, None]) + shift[:, None]
    hs = _lin(hs, sd, "mixins.final_layer.linear")
    out = hs.reshape(b, tt, gh, gw, c, patch, patch).permute(0, 1, 4, 2, 5, 3, 6).reshape(b, tt, c, h, w)
    return out[:, :-refs.shape[1]] if refs.shape[1] else out


def _inputs(k, seed=0, frames=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, frames, 4, 8, 12, generator=g)
    refs = torch.randn(1, k, 4, 8, 12, generator=g)
    text = torch.randn(1, 7, 32, generator=g)
    return x, refs, text


def _adapter(tiny, refs, text, cfg=6.0, steps=4):
    return ConcatIdCogAdapter(tiny, SATDPMStepper(steps, torch.Generator().manual_seed(0)), text, refs, cfg)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_forward_equals_official_dit(tiny, sat, k):
    x, refs, text = _inputs(k, seed=k)
    ad = _adapter(tiny, refs, text)
    t = torch.tensor(979)
    with torch.no_grad():
        ours = ad.velocity(x, t)
        ref = sat_dit(sat, x, refs.expand(2, -1, -1, -1, -1), t.expand(2), ad.text)
    assert ours.shape == x.shape                       # references trimmed: T frames out
    assert (ours - ref).abs().max() <= 1e-5


def test_zero_references_equal_stock_diffusers(tiny):
    from diffusers import CogVideoXPipeline

    x, refs, text = _inputs(0, seed=9)
    ad = _adapter(tiny, refs, text)
    host = SimpleNamespace(transformer=tiny, vae_scale_factor_spatial=8)
    rope = CogVideoXPipeline._prepare_rotary_positional_embeddings(host, 64, 96, x.shape[1], torch.device("cpu"))
    t = torch.tensor([500, 500])
    with torch.no_grad():
        ours = ad.velocity(x, t)
        stock = tiny(hidden_states=x, encoder_hidden_states=ad.text, timestep=t, image_rotary_emb=rope,
                     return_dict=False)[0]
    assert tiny.config.norm_eps == 1e-6
    assert (ours - stock).abs().max() <= 1e-5


def test_reference_rope_positions():
    gh, gw, frames = 3, 4, 5
    for k in range(4):
        pos = R.positions(gh, gw, frames, k)
        refs = pos[frames * gh * gw:]
        for j in range(k):            # reference j at t = T + j, full h/w grid, no offset
            blk = refs[j * gh * gw:(j + 1) * gh * gw]
            assert (blk[:, 0] == frames + j).all()
            assert blk[:, 1].tolist() == [r for r in range(gh) for _ in range(gw)]
            assert blk[:, 2].tolist() == list(range(gw)) * gh
        cos, sin = R.rotary_embedding(64, gh, gw, frames, k)
        c2, s2 = R.sat_rotary_table(64, gh, gw, frames + 5)       # the official T+5-slot table, first rows
        n = (frames + k) * gh * gw
        assert torch.equal(cos, c2[:n]) and torch.equal(sin, s2[:n])


def test_references_change_output_and_order_matters(tiny):
    x, refs, text = _inputs(2, seed=4)
    t = torch.tensor(500)
    with torch.no_grad():
        a = _adapter(tiny, refs, text).velocity(x, t)
        b = _adapter(tiny, refs.flip(1), text).velocity(x, t)
        one = _adapter(tiny, refs[:, :1], text).velocity(x, t)
    assert (a - b).abs().max() > 1e-3 and (a - one).abs().max() > 1e-3


def test_cfg_on_x0_with_zeroed_text(tiny):
    x, refs, text = _inputs(1, seed=6)
    lat = x[:1]
    ad = _adapter(tiny, refs, text, cfg=6.0)
    assert torch.equal(ad.text[0], torch.zeros_like(text[0])) and torch.equal(ad.text[1], text[0])
    i, t = 1, ad.stepper.timesteps[1]
    with torch.no_grad():
        got = ad.model_output(lat, t, i)
        v_u = sat_dit(T.sat_state_dict(tiny), lat, refs, t.expand(1), torch.zeros_like(text))
        v_c = sat_dit(T.sat_state_dict(tiny), lat, refs, t.expand(1), text)
    s = ad.stepper.schedule
    x0_u, x0_c = v_to_x0(s, i, lat, v_u), v_to_x0(s, i, lat, v_c)
    assert (got - (x0_u + 6.0 * (x0_c - x0_u))).abs().max() <= 1e-4
