"""Tiled and sliced decoding on tiny random diffusers video VAEs (saved and reloaded in diffusers' layout).

Tolerances, and why:
  * slicing decodes batch items one at a time; the VAE's norms are per sample, so it is the same computation. Only
    float32 rounding differs: oneDNN picks its convolution kernels by batch size and CPU (on an Intel Xeon a batch
    of 2 and of 1 differ by 1.05e-5 on an output of 8.3, 1.3e-6 relative; on the AMD EPYC of earlier runs by
    < 1e-5). So: |Δ| <= 1e-5 + 2e-6·|ref| (float32 rounding of the decoder's output scale), nothing looser.
  * tiling is *not* exact by design (each tile has its own GroupNorm statistics and zero-padded borders; the
    overlap is blended). On a random CogVideoX VAE with tiles half the image size we require a relative L2 error
    under 0.2 (measured 0.13), and, as a control giving the tolerance meaning, that the tiled result is at least 5x
    closer to the untiled one than the untiled decode of a different latent is (relative error 1.23).
  * Wan's decoder has frame-wide self-attention in its middle block, so on random weights tiles differ far more;
    there we check that tiling is really used and shapes/ranges are right, not closeness.
"""
from __future__ import annotations

import pytest
import torch
from diffusers import AutoencoderKLCogVideoX, AutoencoderKLWan

from idvideo_core.errors import InputError
from idvideo_core.memory import COGVIDEOX_TILES, TileSettings, WAN_TILES, configure_vae, vae_memory
from idvideo_core.memory.vae_tiling import default_tiles


def _count_calls(module):
    calls = []
    handle = module.register_forward_hook(lambda *_: calls.append(1))
    return calls, handle


@pytest.fixture(scope="module")
def cog_vae(tmp_path_factory):
    torch.manual_seed(0)
    vae = AutoencoderKLCogVideoX(
        block_out_channels=(8, 16, 16), down_block_types=("CogVideoXDownBlock3D",) * 3,
        up_block_types=("CogVideoXUpBlock3D",) * 3, latent_channels=4, layers_per_block=1, norm_num_groups=4,
        temporal_compression_ratio=4, sample_height=64, sample_width=64)
    path = tmp_path_factory.mktemp("cogvae")
    vae.save_pretrained(path)
    return AutoencoderKLCogVideoX.from_pretrained(path).eval()


def test_cogvideox_tiled_decode_close_to_untiled(cog_vae):
    torch.manual_seed(1)
    z = torch.randn(1, 4, 1, 16, 16)
    with torch.no_grad():
        configure_vae(cog_vae, tiling=False)
        ref = cog_vae.decode(z).sample
        other = cog_vae.decode(torch.randn_like(z)).sample
        calls, handle = _count_calls(cog_vae.decoder)
        with vae_memory(cog_vae, tiling=True, tiles=TileSettings(48, 48, 32, 32)):
            assert cog_vae.use_tiling and cog_vae.tile_latent_min_height == 12
            out = cog_vae.decode(z).sample
        handle.remove()
    assert not cog_vae.use_tiling                            # vae_memory restored the VAE as found
    assert len(calls) == 4                                   # 2 x 2 tiles really decoded separately
    assert out.shape == ref.shape == (1, 3, 1, 64, 64)
    rel = float((out - ref).norm() / ref.norm())
    control = float((other - ref).norm() / ref.norm())
    print(f"CogVideoX tiled vs untiled relative L2 {rel:.3f} (different latent: {control:.3f})")
    assert rel < 0.2 and rel * 5 < control


def test_cogvideox_slicing_is_exact(cog_vae):
    torch.manual_seed(2)
    z = torch.randn(2, 4, 1, 8, 8)
    with torch.no_grad():
        configure_vae(cog_vae, tiling=False, slicing=False)
        ref = cog_vae.decode(z).sample
        configure_vae(cog_vae, tiling=False, slicing=True)
        assert cog_vae.use_slicing
        out = cog_vae.decode(z).sample
    torch.testing.assert_close(out, ref, rtol=2e-6, atol=1e-5)


def test_cogvideox_default_tiles_map_to_diffusers_defaults(cog_vae):
    configure_vae(cog_vae, tiling=True)
    assert default_tiles(cog_vae) == COGVIDEOX_TILES
    assert (cog_vae.tile_sample_min_height, cog_vae.tile_sample_min_width) == (240, 360)
    assert cog_vae.tile_overlap_factor_height == pytest.approx(1 / 6)
    assert cog_vae.tile_overlap_factor_width == pytest.approx(1 / 5)
    configure_vae(cog_vae, tiling=False)


def test_wan_tiling_is_used_and_shapes_match():
    torch.manual_seed(3)
    vae = AutoencoderKLWan(base_dim=8, z_dim=4, dim_mult=[1, 2, 2], num_res_blocks=1,
                           temperal_downsample=[False, True], latents_mean=[0.0] * 4, latents_std=[1.0] * 4,
                           scale_factor_spatial=4, scale_factor_temporal=2).eval()
    z = torch.randn(1, 4, 1, 12, 12)
    with torch.no_grad():
        ref = vae.decode(z).sample
        configure_vae(vae, tiling=True, tiles=TileSettings(32, 32, 24, 24))
        assert (vae.tile_sample_min_height, vae.tile_sample_stride_width) == (32, 24)
        calls, handle = _count_calls(vae.decoder)
        out = vae.decode(z).sample
        handle.remove()
    assert len(calls) == 4                                   # 2 x 2 overlapping tiles
    assert out.shape == ref.shape == (1, 3, 1, 48, 48)
    assert torch.isfinite(out).all() and out.abs().max() <= 1.0
    configure_vae(vae, tiling=True)
    assert (vae.tile_sample_min_height, vae.tile_sample_stride_height) == (WAN_TILES.tile_height,
                                                                           WAN_TILES.stride_height)


def test_bad_tiles_name_the_fix(cog_vae):
    with pytest.raises(InputError, match="no larger than the tile"):
        configure_vae(cog_vae, tiling=True, tiles=TileSettings(32, 32, 48, 48))
    with pytest.raises(InputError, match="does not support tiled"):
        configure_vae(torch.nn.Linear(2, 2), tiling=True)
