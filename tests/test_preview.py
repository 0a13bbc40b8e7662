"""Latent previews and VAE-decode progress, offline (no ComfyUI): the maths, the layouts, the ComfyUI tuple form."""
from __future__ import annotations

import pytest
import torch

from idvideo_core import bridge, preview
from idvideo_core.preview import COGVIDEOX, WAN21, LatentRGB


def test_factor_tables_are_16_by_3():
    for space in (COGVIDEOX, WAN21):
        assert space.channels == 16
        assert all(len(row) == 3 for row in space.factors)
        assert len(space.bias) == 3


def _one_hot_latents(space: LatentRGB, channel: int, frames: int = 5, h: int = 3, w: int = 4, value=1.0):
    shape = [1, 0, 0, h, w]
    shape[space.channel_dim], shape[space.frame_dim] = 16, frames
    x = torch.zeros(shape)
    idx = [0, slice(None), slice(None), slice(None), slice(None)]
    idx[space.channel_dim] = channel
    x[tuple(idx)] = value
    return x


@pytest.mark.parametrize("space", [COGVIDEOX, WAN21], ids=["cogvideox", "wan21"])
@pytest.mark.parametrize("channel", [0, 6, 15])
def test_rgb_is_factor_row_plus_bias(space, channel):
    rgb = preview.middle_frame_rgb(_one_hot_latents(space, channel, value=2.0), space)
    assert rgb.shape == (3, 4, 3)
    expected = 2.0 * torch.tensor(space.factors[channel]) + torch.tensor(space.bias)
    assert torch.allclose(rgb[1, 2], expected, atol=1e-6)


@pytest.mark.parametrize("space", [COGVIDEOX, WAN21], ids=["cogvideox", "wan21"])
def test_middle_latent_frame_is_used(space):
    frames = 7
    shape = [1, 0, 0, 2, 2]
    shape[space.channel_dim], shape[space.frame_dim] = 16, frames
    x = torch.zeros(shape)
    ramp = torch.arange(frames, dtype=torch.float32).view([frames if d == space.frame_dim else 1 for d in range(5)])
    x = x + ramp                                  # every channel of frame f holds f
    rgb = preview.middle_frame_rgb(x, space)
    col = torch.tensor(space.factors).sum(0)
    assert torch.allclose(rgb[0, 0], 3.0 * col + torch.tensor(space.bias), atol=1e-5)  # frame 7 // 2 = 3
    # Wan appends reference frames after the video: limiting to the video frames moves the middle
    rgb4 = preview.middle_frame_rgb(x, space, frames=4)
    assert torch.allclose(rgb4[0, 0], 2.0 * col + torch.tensor(space.bias), atol=1e-5)


def test_pil_image_maps_minus_one_to_one_onto_bytes():
    rgb = torch.tensor([[[-1.0, 0.0, 1.0], [-5.0, 5.0, 0.5]]])   # [1, 2, 3]
    img = preview.rgb_to_pil(rgb)
    assert img.size == (2, 1) and img.mode == "RGB"
    assert img.getpixel((0, 0)) == (0, 128, 255)
    assert img.getpixel((1, 0)) == (0, 255, 191)        # clamped, 0.5 → 191
    big = preview.rgb_to_pil(torch.zeros(90, 1200, 3), max_size=512)
    assert max(big.size) == 512


def test_previewer_returns_comfyui_tuple_and_skips_other_latent_spaces():
    fn = preview.make_previewer(WAN21, max_size=256)
    out = fn(torch.randn(1, 16, 5, 6, 8))
    assert out[0] == "JPEG" and out[2] == 256
    assert out[1].size == (8, 6)
    assert fn(torch.randn(1, 4, 5, 6, 8)) is None          # tiny/other VAE: no preview, never an error
    cog = preview.make_previewer(COGVIDEOX)
    assert cog(torch.randn(1, 13, 16, 6, 8))[1].size == (8, 6)


def test_no_previews_outside_comfyui():
    assert bridge.previews_enabled() is False
    assert preview.sampler_previewer("consisid") is None
    assert preview.sampler_previewer("wan") is None


def test_progress_wraps_bare_image_for_comfyui():
    img = preview.rgb_to_pil(torch.zeros(2, 2, 3))
    kind, pil, size = bridge._preview_tuple(img)
    assert kind == "JPEG" and pil is img and size == 512
    t = ("PNG", img, 64)
    assert bridge._preview_tuple(t) is t and bridge._preview_tuple(None) is None


class _Recorder:
    def __init__(self, total, desc):
        self.total, self.desc, self.ticks = total, desc, []

    def update(self, n):
        self.ticks.append(n)

    def close(self):
        pass


@pytest.mark.parametrize("tiling", [False, True])
def test_decode_progress_counts_latent_frames_on_a_real_cogvideox_vae(tiling):
    from diffusers import AutoencoderKLCogVideoX

    from idvideo_core.runtime import decode_progress
    from idvideo_core.testing.tiny_consisid import VAE_CONFIG

    torch.manual_seed(0)
    vae = AutoencoderKLCogVideoX(**VAE_CONFIG).eval()
    if tiling:
        vae.enable_tiling(tile_sample_min_height=32, tile_sample_min_width=32, tile_overlap_factor_height=0.25,
                          tile_overlap_factor_width=0.25)
    latents = torch.randn(1, 4, VAE_CONFIG["latent_channels"], 8, 8)  # [B, F, C, h, w] like the ConsisID sampler
    bars: list[_Recorder] = []
    bridge.set_console_progress(lambda total, desc: bars.append(_Recorder(total, desc)) or bars[-1])
    try:
        with torch.no_grad(), decode_progress(vae, latents, frame_dim=1):
            vae.decode(latents.permute(0, 2, 1, 3, 4))
    finally:
        bridge.set_console_progress(None)
    assert len(bars) == 1 and bars[0].desc == "decoding"
    assert bars[0].total == 4 and sum(bars[0].ticks) == 4
    assert len(bars[0].ticks) >= 2                       # it moved during the decode, not only at the end


def test_face_crops_saved_like_core_preview_image(tmp_path):
    from PIL import Image

    crops = torch.rand(3, 16, 16, 3)
    entries = preview.save_temp_previews(crops, folder=tmp_path, max_images=2)
    assert [e["type"] for e in entries] == ["temp", "temp"] and all(e["subfolder"] == "" for e in entries)
    img = Image.open(tmp_path / entries[0]["filename"])
    assert img.size == (16, 16)
    back = torch.from_numpy(__import__("numpy").asarray(img, dtype="float32") / 255.0)
    assert torch.allclose(back, crops[0], atol=1 / 255 + 1e-6)
    assert preview.temp_previews_for_ui(crops) == []          # outside ComfyUI nothing is written
