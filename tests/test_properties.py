"""Property tests (hypothesis) for the pure geometry: alignment, key-point drawing, letterboxing, latent shapes, RoPE.

Workflow JSON fuzzing lives in tests/test_workflows.py.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from idvideo_core.backbones.wan import rope as R
from idvideo_core.backbones.wan.references import letterbox_black, pad_white
from idvideo_core.faces import align, kps

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------------------------- FFHQ alignment
@FAST
@given(scale=st.floats(0.3, 3.0), angle=st.floats(-math.pi, math.pi), tx=st.floats(-300, 300),
       ty=st.floats(-300, 300))
def test_alignment_inverts_any_similarity(scale, angle, tx, ty):
    """Landmarks = template under a similarity S: the estimated transform maps them back onto the template."""
    c, s = math.cos(angle), math.sin(angle)
    S = np.array([[scale * c, -scale * s, tx], [scale * s, scale * c, ty]])
    tpl = align.FFHQ_TEMPLATE_512
    pts = (tpl @ S[:, :2].T + S[:, 2]).astype(np.float32)
    import cv2

    m = cv2.estimateAffinePartial2D(pts, tpl, method=cv2.LMEDS)[0]
    back = pts @ m[:, :2].T + m[:, 2]
    np.testing.assert_allclose(back, tpl, atol=1e-2 * max(1.0, 1 / scale))
    # and the crop is always 512×512 BGR, whatever the image size
    img = np.zeros((64, 80, 3), np.uint8)
    crop = align.align_ffhq(img, pts)
    assert crop.shape == (512, 512, 3) and crop.dtype == np.uint8


@FAST
@given(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3))
def test_alignment_refuses_degenerate_landmarks(x, y):
    from idvideo_core.errors import NoFaceError

    pts = np.full((5, 2), [x, y], np.float32)  # all five points on one spot: no transform exists
    try:
        crop = align.align_ffhq(np.zeros((32, 32, 3), np.uint8), pts)
    except NoFaceError:
        return
    assert crop.shape == (512, 512, 3)   # OpenCV may return a (degenerate) matrix; the crop is still well formed


# ---------------------------------------------------------------------------------------------- key points
points = st.lists(st.tuples(st.floats(-2000, 2000), st.floats(-2000, 2000)), min_size=5, max_size=5)


@FAST
@given(w=st.integers(1, 300), h=st.integers(1, 300), pts=points)
def test_draw_kps_stays_in_bounds(w, h, pts):
    """Any points, even far outside: the image has the canvas size, uint8, and nothing is drawn far from a point."""
    arr = np.asarray(pts, np.float32)
    img = kps.draw_kps(w, h, arr)
    assert img.shape == (h, w, 3) and img.dtype == np.uint8
    ys, xs = np.nonzero(img.any(axis=2))
    if len(xs):
        # every lit pixel lies within a dot radius of a key point or of a limb segment's ellipse (half-length + 4);
        # the reference truncates the limb angle to whole degrees, which turns an ellipse's tip by up to 1°: it can
        # reach (half-length)·sin(1°) past the segment's end (2 px for a 230 px limb), plus 2 px of integer rounding
        limb = max(float(np.hypot(*(arr[a] - arr[b]))) for a, b in kps.LIMBS)
        slack = kps.RADIUS + kps.STICK_WIDTH + 2 + limb / 2 * math.sin(math.radians(1))
        lo = arr.min(axis=0) - slack
        hi = arr.max(axis=0) + slack
        assert xs.min() >= math.floor(lo[0]) and xs.max() <= math.ceil(hi[0])
        assert ys.min() >= math.floor(lo[1]) and ys.max() <= math.ceil(hi[1])


@FAST
@given(w=st.integers(40, 200), h=st.integers(40, 200), data=st.data())
def test_draw_kps_dots_sit_on_the_points(w, h, data):
    xs = data.draw(st.lists(st.integers(0, w - 1), min_size=5, max_size=5))
    ys = data.draw(st.lists(st.integers(0, h - 1), min_size=5, max_size=5))
    arr = np.stack([xs, ys], axis=1).astype(np.float32)
    img = kps.draw_kps(w, h, arr)
    # the last-drawn dot's centre has exactly its colour (dots are drawn after limbs, in order)
    x, y = int(arr[4, 0]), int(arr[4, 1])
    assert tuple(img[y, x]) == kps.KPS_COLOURS[4]


# ---------------------------------------------------------------------------------------------- letterboxing
sizes = st.tuples(st.integers(1, 120), st.integers(1, 120))
video = st.tuples(st.integers(1, 16).map(lambda k: 16 * k), st.integers(1, 16).map(lambda k: 16 * k))


@FAST
@given(src=sizes, dst=video, channels=st.sampled_from([1, 3, 4]))
def test_letterbox_shapes_and_padding(src, dst, channels):
    (sw, sh), (w, h) = src, dst
    img = torch.full((1, sh, sw, channels), 0.5)
    for fit, pad in ((pad_white, 1.0), (letterbox_black, 0.0)):
        out = fit(img, w, h)
        assert out.shape == (1, h, w, 3) and out.dtype == torch.float32
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
        vals = set(torch.unique((out * 255).round()).tolist())
        assert vals <= {round(pad * 255), 127.0, 128.0} | set(range(0, 256))  # no NaN / out-of-range values
    # Phantom keeps the whole image: the grey area is (nearly) the aspect-fitted area
    out = pad_white(img, w, h)
    grey = (out[0, :, :, 0] - 0.5).abs() < 0.05
    if sw / sh > w / h:
        fit_w, fit_h = w, max(1, int(w / (sw / sh)))
    else:
        fit_w, fit_h = max(1, int(h * (sw / sh))), h
    assert abs(int(grey.sum()) - fit_w * fit_h) <= 2 * (fit_w + fit_h) + 4
    # Concat-ID (official resize_pad_crop) also fits inside: resize to the height or the width, int-truncated
    if sh / sw >= h / w:
        fit_h, fit_w = h, max(1, int(sw * h / sh))
    else:
        fit_h, fit_w = max(1, int(sh * w / sw)), w
    out = letterbox_black(img, w, h)
    grey = (out[0, :, :, 0] - 0.5).abs() < 0.05
    assert abs(int(grey.sum()) - fit_w * fit_h) <= 2 * (fit_w + fit_h) + 4
    top, left = (h - fit_h) // 2, (w - fit_w) // 2
    assert bool(grey[top + fit_h // 2, left + fit_w // 2])                    # centred


# ---------------------------------------------------------------------------------------------- latent shapes
def _consisid_model(sample_w=12, sample_h=8, learned=True):
    cfg = SimpleNamespace(use_learned_positional_embeddings=learned, sample_width=sample_w, sample_height=sample_h,
                          patch_size=2)
    vae = SimpleNamespace(config=SimpleNamespace(block_out_channels=(8, 8, 8, 8), temporal_compression_ratio=4))
    return SimpleNamespace(transformer=SimpleNamespace(config=cfg), vae=vae)


@FAST
@given(frames=st.integers(1, 400))
def test_consisid_frame_snapping(frames):
    from idvideo_core.backbones.consisid.generate import ConsisIDSettings, check_settings

    s = check_settings(_consisid_model(), ConsisIDSettings(width=96, height=64, num_frames=frames, steps=1))
    # CogVideoX makes 8k+1 frames (odd latent counts); the nearest such count is chosen.
    assert (s.num_frames - 1) % 8 == 0 and abs(frames - s.num_frames) <= 4
    assert s.num_frames == frames or (frames - 1) % 8


@FAST
@given(w=st.integers(1, 100).map(lambda k: 8 * k), h=st.integers(1, 100).map(lambda k: 8 * k))
def test_consisid_size_rules(w, h):
    from idvideo_core.backbones.consisid.generate import ConsisIDSettings, check_settings
    from idvideo_core.errors import InputError

    free = _consisid_model(learned=False)
    try:
        s = check_settings(free, ConsisIDSettings(width=w, height=h, num_frames=9, steps=1))
    except InputError as err:
        assert w % 16 or h % 16
        assert "multiples of 16" in str(err)
    else:
        assert s.width % 16 == 0 and s.height % 16 == 0
    fixed = _consisid_model()
    if (w, h) != (96, 64):
        with pytest.raises(InputError, match="only generates 96×64"):
            check_settings(fixed, ConsisIDSettings(width=w, height=h, num_frames=9, steps=1))


@FAST
@given(frames=st.integers(1, 200), w=st.integers(1, 64).map(lambda k: 16 * k),
       h=st.integers(1, 64).map(lambda k: 16 * k), refs=st.integers(0, 4))
def test_wan_latent_and_token_arithmetic(frames, w, h, refs):
    """Snapped frames → latent frames → token grid → RoPE positions, consistent at every stage."""
    snapped = (frames - 1) // 4 * 4 + 1
    f_lat = (snapped - 1) // 4 + 1
    grid = R.TokenGrid(frames=f_lat, height=h // 16, width=w // 16, refs=refs)
    for mode in (R.CONCATID, R.PHANTOM):
        pos = R.token_positions(grid, mode)
        assert pos.shape == (grid.video_tokens + grid.ref_tokens, 3)
        vid, ref = pos[: grid.video_tokens], pos[grid.video_tokens:]
        assert int(vid[:, 0].max()) == f_lat - 1 and int(vid[:, 1].max()) == grid.height - 1
        assert int(vid[:, 2].max()) == grid.width - 1
        assert len({tuple(p) for p in vid.tolist()}) == grid.video_tokens      # raster grid: all distinct
        if refs:
            assert ref[:, 0].min() == f_lat and ref[:, 0].max() == f_lat + refs - 1
            if mode == R.CONCATID:
                assert int(ref[:, 2].min()) == grid.width and int(ref[:, 2].max()) == 2 * grid.width - 1
            else:
                assert int(ref[:, 2].max()) == grid.width - 1
            assert not ({tuple(p) for p in ref.tolist()} & {tuple(p) for p in vid.tolist()})


class _Rope:
    t_dim, h_dim, w_dim = 4, 6, 6

    def __init__(self, limit=64):
        a = torch.arange(limit, dtype=torch.float32)[:, None]
        self.freqs_cos = torch.cat([a * 1 + torch.arange(self.t_dim), a * 100 + torch.arange(self.h_dim),
                                    a * 10000 + torch.arange(self.w_dim)], dim=1)
        self.freqs_sin = -self.freqs_cos


@FAST
@given(f=st.integers(1, 6), h=st.integers(1, 6), w=st.integers(1, 6), refs=st.integers(0, 3),
       mode=st.sampled_from([R.CONCATID, R.PHANTOM]))
def test_rotary_at_indexes_each_axis(f, h, w, refs, mode):
    rope = _Rope()
    grid = R.TokenGrid(f, h, w, refs)
    pos = R.token_positions(grid, mode)
    cos, sin = R.rotary_at(rope, pos)
    assert cos.shape == (1, len(pos), 1, 16) and torch.equal(sin, -cos)
    # each axis slice is the table row of that axis' position
    t_part, h_part, w_part = cos[0, :, 0, :4], cos[0, :, 0, 4:10], cos[0, :, 0, 10:]
    assert torch.equal(t_part[:, 0], pos[:, 0].float())
    assert torch.equal(h_part[:, 0], pos[:, 1].float() * 100)
    assert torch.equal(w_part[:, 0], pos[:, 2].float() * 10000)


@FAST
@given(extra=st.integers(0, 10))
def test_rotary_refuses_positions_past_the_table(extra):
    rope = _Rope(limit=8)
    grid = R.TokenGrid(frames=9 + extra, height=1, width=1)
    with pytest.raises(ValueError, match="exceeds the table size"):
        R.rotary_at(rope, R.token_positions(grid, R.PHANTOM))
