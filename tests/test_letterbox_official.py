"""Concat-ID reference letterbox vs direct implementations of the official ``resize_pad_crop`` (sample_video.py for
CogVideoX: float, clipped; inference_wan.py for Wan: ends in ToPILImage's uint8 cast) on square, portrait and wide
images, including bicubic overshoot where the Wan cast wraps around."""
from __future__ import annotations

import numpy as np
import pytest
import torch

tv = pytest.importorskip("torchvision")
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from idvideo_core.backbones.wan.references import letterbox_black


def official_steps(img_u8: np.ndarray, size):
    """ToTensor → resize to the height (h/w ≥ H/W) or the width, bicubic → pad 0 centred → centre crop."""
    arr = TF.to_tensor(img_u8)[None]
    h, w = arr.shape[2], arr.shape[3]
    if h / w >= size[0] / size[1]:
        arr = TF.resize(arr, [size[0], int(w * size[0] / h)], interpolation=InterpolationMode.BICUBIC)
    else:
        arr = TF.resize(arr, [int(h * size[1] / w), size[1]], interpolation=InterpolationMode.BICUBIC)
    h, w = arr.shape[2], arr.shape[3]
    dh, dw = max(size[0] - h, 0), max(size[1] - w, 0)
    arr = torch.nn.functional.pad(arr, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2), mode="constant", value=0.0)
    h, w = arr.shape[2], arr.shape[3]
    return TF.crop(arr, max(0, h - size[0]) // 2, max(0, w - size[1]) // 2, size[0], size[1])


def official_cogvideox(img_u8, size):
    """sample_video.py: float result, then (x·2 − 1).clip(−1, 1) → back to 0..1 for comparison."""
    x = (official_steps(img_u8, size) * 2 - 1).clip(-1, 1)
    return ((x + 1) / 2)[0].permute(1, 2, 0)


def official_wan(img_u8, size):
    """inference_wan.py: ... → ToPILImage (mul(255).byte()) → uint8 image; returned with the unwrapped floats."""
    x = official_steps(img_u8, size)[0]
    pil = TF.to_pil_image(x)
    return torch.from_numpy(np.asarray(pil, dtype=np.float32) / 255.0), x.permute(1, 2, 0)


def _photo(h, w, seed):
    rng = np.random.default_rng(seed)
    base = rng.integers(30, 225, (h // 8 + 1, w // 8 + 1, 3)).astype(np.uint8)
    img = np.kron(base, np.ones((8, 8, 1), np.uint8))[:h, :w]        # blocky: sharp edges, some overshoot
    return np.ascontiguousarray(img)


CASES = [("square face", 448, 448, (480, 720)), ("square on wan", 448, 448, (480, 832)),
         ("portrait", 300, 140, (480, 720)), ("wide", 90, 400, (480, 832)), ("tall downscale", 1000, 500, (480, 720)),
         ("wide downscale", 600, 1900, (480, 832))]


@pytest.mark.parametrize("name,h,w,size", CASES)
def test_matches_official_cogvideox_exactly(name, h, w, size):
    img = _photo(h, w, seed=h + w)
    ours = letterbox_black(img, size[1], size[0])[0]
    ref = official_cogvideox(img, size)
    assert ours.shape == ref.shape == (size[0], size[1], 3)
    assert (ours - ref).abs().max() < 2e-6


@pytest.mark.parametrize("name,h,w,size", CASES)
def test_matches_official_wan_except_where_it_wraps(name, h, w, size):
    img = _photo(h, w, seed=h * w)
    ours = letterbox_black(img, size[1], size[0], uint8=True)[0]
    ref, raw = official_wan(img, size)
    wraps = (raw < 0) | (raw * 255 >= 256)
    same = ~wraps
    assert (ours[same] - ref[same]).abs().max() < 1e-6
    # where the official wraps, ours is the clamped value (0 or 1), never the wrapped one
    if wraps.any():
        assert set(ours[wraps].unique().tolist()) <= {0.0, 1.0}


def test_wrap_case_is_the_only_difference():
    """A hard black/white edge upscaled with bicubic overshoots; the official Wan cast turns 1.0x into dark pixels."""
    img = np.zeros((64, 64, 3), np.uint8)
    img[:, 32:] = 255
    size = (480, 720)
    ours = letterbox_black(img, size[1], size[0], uint8=True)[0]
    ref, raw = official_wan(img, size)
    wraps = (raw < 0) | (raw * 255 >= 256)
    assert wraps.any()                                     # the case exists
    diff = (ours - ref).abs() > 1e-6
    assert diff.any() and not (diff & ~wraps).any()        # differences only where it wraps
    assert ref[wraps & (raw > 1)].max() < 0.1              # official: bright overshoot wrapped to near-black
    assert (ours[wraps & (raw > 1)] == 1.0).all()          # ours: clamped white


def test_fits_inside_with_black_bars():
    wide = np.full((100, 400, 3), 200, np.uint8)
    out = letterbox_black(wide, 832, 480)[0]
    assert out.shape == (480, 832, 3)
    assert float(out[0].max()) == 0.0 and float(out[-1].max()) == 0.0         # black bars top and bottom
    assert float(out[240, :, 0].min()) > 0.7                                   # full width kept (no crop)
    tall = np.full((400, 100, 3), 200, np.uint8)
    out = letterbox_black(tall, 720, 480)[0]
    assert float(out[:, 0].max()) == 0.0 and float(out[240, 360, 0]) > 0.7    # bars left and right
