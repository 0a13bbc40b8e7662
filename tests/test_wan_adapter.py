"""Schedulers, reference letterboxing, and the WanAdapter loop contract on tiny weights (both methods)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from idvideo_core.backbones.wan.adapter import WanAdapter
from idvideo_core.backbones.wan.model import load_wan_model
from idvideo_core.backbones.wan.references import letterbox_black, pad_white
from idvideo_core.backbones.wan.schedulers import FlowMatchEuler, PhantomUniPC
from idvideo_core.errors import InputError
from idvideo_core.testing.tiny_wan import write_concatid_files, write_diffusers_folder, write_phantom_file
from idvideo_core.types import Reference


def test_flow_match_euler_is_diffsynth_schedule():
    s = FlowMatchEuler(50, 5.0)
    base = np.linspace(1, 0, 51)[:-1]
    assert np.allclose(s.sigmas.numpy(), 5 * base / (1 + 4 * base), atol=1e-6)
    assert np.allclose(s.timesteps.numpy(), 1000 * s.sigmas.numpy(), atol=1e-3)
    x, v = torch.randn(3), torch.randn(3)
    assert torch.allclose(s.step(v, s.timesteps[0], x), x + v * (s.sigmas[1] - s.sigmas[0]))
    assert torch.allclose(s.step(v, s.timesteps[-1], x), x - v * s.sigmas[-1])     # last step lands on sigma 0


def test_phantom_unipc_exact_sigmas():
    s = PhantomUniPC(3, 5.0)
    assert s.timesteps.tolist() == [999, 908, 713]
    base = np.linspace(0.999, 0, 4)[:-1]
    assert np.allclose(s.sigmas.numpy(), 5 * base / (1 + 4 * base), atol=1e-6)
    assert PhantomUniPC(50).timesteps.dtype == torch.int64


def test_letterbox_black_and_white_pad():
    face = torch.full((1, 448, 448, 3), 0.5)
    out = letterbox_black(face, 832, 480)
    assert out.shape == (1, 480, 832, 3)
    assert out[0, :, :176].max() == 0 and out[0, :, 176 + 480:].max() == 0      # 480² face centred on black
    assert torch.allclose(out[0, :, 176:656], torch.full((480, 480, 3), 0.5), atol=1e-6)  # float kept as is
    wide = torch.full((1, 100, 400, 3), 0.25)                    # wider than 832:480 → fits inside, black bars
    out = letterbox_black(wide, 832, 480)
    assert out[0, 240].min() > 0.2 and out[0, 0].max() == 0 and out[0, -1].max() == 0
    tall = torch.zeros((1, 200, 100, 3))
    w = pad_white(tall, 832, 480)
    assert w.shape == (1, 480, 832, 3)
    assert w[0, :, :296].min() == 1.0 and w[0, :, 296 + 240:].min() == 1.0       # 240×480 black image, white sides
    assert w[0, :, 300:530].max() == 0.0


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("wan_adapter")
    folder = write_diffusers_folder(root / "base")
    cid = write_concatid_files(root / "cid")
    ph = write_phantom_file(root / "ph")
    kw = dict(base=folder, precision="fp32", device="cpu")
    return (load_wan_model("concatid_wan", dit=cid.concatid_adaln, **kw),
            load_wan_model("phantom_wan", dit=ph, **kw))


def _ref(seed, h=40, w=30):
    g = torch.Generator().manual_seed(seed)
    return Reference(image=torch.rand(1, h, w, 3, generator=g), kind="face")


def _run(adapter, refs, seed=0, **kw):
    state = adapter.prepare("a man walking in the city", refs, 64, 48, 5, torch.Generator().manual_seed(seed), **kw)
    lat = state.latents
    for t in state.scheduler.timesteps:
        lat = state.scheduler.step(adapter.predict(state, lat, t), t, lat)
    return state, lat


def test_concatid_loop_and_cfg(models):
    concat, _ = models
    ad = WanAdapter(concat, "concatid", steps=2)
    state, lat = _run(ad, [_ref(1)])
    assert [b.name for b in ad.branches(state)] == ["cond", "uncond"]
    assert state.ref_latents.shape == (1, 16, 1, 6, 8)
    assert all(b.refs is state.ref_latents for b in state.branches)        # the reference in both branches
    assert lat.shape == (1, 16, 2, 6, 8) and torch.isfinite(lat).all()
    # the batched forward + combine equals separate forwards combined by the published formula
    t = state.scheduler.timesteps[0]
    dit = concat.transformer
    outs = [dit(state.latents, t.reshape(1), b.context, b.refs, "concatid") for b in state.branches]
    expect = outs[1] + 5.0 * (outs[0] - outs[1])
    assert (ad.predict(state, state.latents, t) - expect).abs().max() < 1e-4
    # same seed → same result; decode gives the video frames
    _, lat2 = _run(ad, [_ref(1)])
    assert torch.equal(lat, lat2)
    frames = ad.decode(state, lat)
    assert frames.shape == (5, 48, 64, 3) and 0 <= frames.min() and frames.max() <= 1


def test_phantom_loop_three_pass_cfg_and_limit(models):
    _, phantom = models
    ad = WanAdapter(phantom, "phantom", steps=2)
    state, lat = _run(ad, [_ref(2), _ref(3, 30, 60)])
    names = [b.name for b in state.branches]
    assert names == ["text_image", "image", "negative"]
    assert state.branches[2].refs.abs().max() == 0 and state.branches[1].refs.abs().max() > 0
    assert torch.equal(state.branches[1].context, state.branches[2].context)     # null text in both
    assert lat.shape == (1, 16, 2, 6, 8) and torch.isfinite(lat).all()
    # noise drawn for F+K frames, video part kept
    g = torch.Generator().manual_seed(0)
    assert torch.equal(state.latents, torch.randn((1, 16, 4, 6, 8), generator=g)[:, :, :2])
    t = state.scheduler.timesteps[0]
    dit = phantom.transformer
    o = [dit(state.latents, t.reshape(1).float(), b.context, b.refs, "phantom") for b in state.branches]
    expect = o[2] + 5.0 * (o[1] - o[2]) + 7.5 * (o[0] - o[1])
    assert (ad.predict(state, state.latents, t) - expect).abs().max() < 1e-4
    with pytest.raises(InputError):
        ad.prepare("x", [_ref(i) for i in range(5)], 64, 48, 5, torch.Generator().manual_seed(0))


def test_bad_sizes_rejected(models):
    concat, _ = models
    ad = WanAdapter(concat, "concatid", steps=2)
    with pytest.raises(InputError):
        ad.prepare("x", [], 60, 48, 5)
    with pytest.raises(InputError):
        ad.prepare("x", [], 64, 48, 6)
