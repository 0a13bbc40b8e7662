"""Tiled and sliced VAE encode/decode for the diffusers video VAEs (CogVideoX and Wan).

Decoding a 49-frame 720x480 video in one piece is the most common out-of-memory point in this field (it needs
several GB more than sampling). Tiling decodes overlapping spatial tiles and blends the seams; slicing decodes one
batch item at a time (exact). The tile sizes below are diffusers' tested defaults for each family: the CogVideoX
overlap factors were tuned at 720x480, and Wan's 256-pixel tiles with a 192-pixel stride fit both 480p and 720p.
"""
from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass

from ..errors import InputError


@dataclass(frozen=True)
class TileSettings:
    """Tile size in *pixels* and how far apart tiles start (``stride < size`` means they overlap and blend)."""

    tile_height: int
    tile_width: int
    stride_height: int
    stride_width: int


COGVIDEOX_TILES = TileSettings(240, 360, 200, 288)   # 1/6 and 1/5 overlap, as diffusers' defaults
WAN_TILES = TileSettings(256, 256, 192, 192)


def vae_family(vae) -> str:
    """``cogvideox`` or ``wan`` from the class, else ``generic`` (plain ``enable_tiling()``)."""
    name = type(vae).__name__.lower()
    if "cogvideo" in name:
        return "cogvideox"
    if "wan" in name:
        return "wan"
    return "generic"


def default_tiles(vae) -> TileSettings | None:
    return {"cogvideox": COGVIDEOX_TILES, "wan": WAN_TILES}.get(vae_family(vae))


@dataclass(frozen=True)
class VaeMemoryState:
    """What tiling/slicing a VAE had, so a temporary change can be undone."""

    tiling: bool
    slicing: bool
    attrs: tuple


_TILE_ATTRS = ("tile_sample_min_height", "tile_sample_min_width", "tile_latent_min_height", "tile_latent_min_width",
               "tile_overlap_factor_height", "tile_overlap_factor_width", "tile_sample_stride_height",
               "tile_sample_stride_width")


def vae_state(vae) -> VaeMemoryState:
    return VaeMemoryState(bool(getattr(vae, "use_tiling", False)), bool(getattr(vae, "use_slicing", False)),
                          tuple((a, getattr(vae, a)) for a in _TILE_ATTRS if hasattr(vae, a)))


def restore_vae_state(vae, state: VaeMemoryState) -> None:
    for a, v in state.attrs:
        setattr(vae, a, v)
    vae.use_tiling = state.tiling
    vae.use_slicing = state.slicing


def configure_vae(vae, tiling: bool, slicing: bool = True, tiles: TileSettings | None = None) -> None:
    """Turn tiling and slicing on or off. ``tiles`` overrides the family default (sizes in pixels)."""
    if not hasattr(vae, "enable_tiling"):
        raise InputError(f"The VAE {type(vae).__name__} does not support tiled decoding.",
                         "Turn VAE tiling off for this model.")
    if slicing:
        vae.enable_slicing()
    else:
        vae.disable_slicing()
    if not tiling:
        vae.disable_tiling()
        return
    tiles = tiles or default_tiles(vae)
    if tiles is None:
        vae.enable_tiling()
        return
    _check_tiles(tiles)
    params = inspect.signature(vae.enable_tiling).parameters
    if "tile_sample_stride_height" in params:          # Wan and newer diffusers VAEs: stride in pixels
        vae.enable_tiling(tile_sample_min_height=tiles.tile_height, tile_sample_min_width=tiles.tile_width,
                          tile_sample_stride_height=tiles.stride_height, tile_sample_stride_width=tiles.stride_width)
    elif "tile_overlap_factor_height" in params:       # CogVideoX: overlap as a fraction of the tile
        # diffusers treats 0 as "keep the default", so a no-overlap request uses a tiny positive factor instead.
        vae.enable_tiling(tile_sample_min_height=tiles.tile_height, tile_sample_min_width=tiles.tile_width,
                          tile_overlap_factor_height=max(1 - tiles.stride_height / tiles.tile_height, 1e-6),
                          tile_overlap_factor_width=max(1 - tiles.stride_width / tiles.tile_width, 1e-6))
    else:
        vae.enable_tiling()


def _check_tiles(t: TileSettings) -> None:
    for name in ("tile_height", "tile_width", "stride_height", "stride_width"):
        if getattr(t, name) <= 0:
            raise InputError(f"VAE {name} must be positive, got {getattr(t, name)}.", "Use positive tile sizes.")
    if t.stride_height > t.tile_height or t.stride_width > t.tile_width:
        raise InputError(f"VAE tile stride {t.stride_height}x{t.stride_width} is larger than the tile "
                         f"{t.tile_height}x{t.tile_width}; the tiles would leave gaps.",
                         "Use a stride no larger than the tile size.")


@contextlib.contextmanager
def vae_memory(vae, tiling: bool, slicing: bool = True, tiles: TileSettings | None = None):
    """Temporarily set tiling/slicing (restored on exit, so a shared VAE object is left as found)."""
    before = vae_state(vae)
    configure_vae(vae, tiling, slicing, tiles)
    try:
        yield vae
    finally:
        restore_vae_state(vae, before)
