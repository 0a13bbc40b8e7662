"""Checks of a clip request against a model family, from the model's config files only (no weights are read).

The command line runs these before loading anything, so a wrong size or frame count is reported in a second instead
of after a minute of loading. Each family reuses the check its sampler runs on the loaded model: ConsisID's
``check_settings`` gets the transformer and VAE configs read from ``config.json``; Wan's frame rule is
``backbones.wan.runtime.check_clip``.
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Callable


def _consisid(loader: dict, width: int, height: int, num_frames: int, steps: int, cfg: float) -> int:
    from ..safeload import read_json
    from .consisid.generate import ConsisIDSettings, check_settings
    from .consisid.loading import resolve_consisid_folder

    folder = resolve_consisid_folder(loader.get("model") or "ConsisID-preview")
    configs = SimpleNamespace(
        transformer=SimpleNamespace(config=SimpleNamespace(**read_json(Path(folder) / "transformer" / "config.json"))),
        vae=SimpleNamespace(config=SimpleNamespace(**read_json(Path(folder) / "vae" / "config.json"))))
    if not width or not height:             # auto (0): the size the weights are pinned to, else the family's
        from .consisid.generate import trained_size
        from .registry import get

        pinned = trained_size(configs) or (get("consisid").defaults.width, get("consisid").defaults.height)
        width, height = width or pinned[0], height or pinned[1]
    settings = check_settings(configs, ConsisIDSettings(width=width, height=height, num_frames=num_frames,
                                                        steps=steps, cfg=cfg))
    return settings.num_frames


def _wan(loader: dict, width: int, height: int, num_frames: int, steps: int, cfg: float) -> int:
    from .wan.runtime import check_clip

    return check_clip(cfg, num_frames)


_CHECKS: dict[str, Callable] = {"consisid": _consisid, "concatid_wan": _wan, "phantom_wan": _wan, "wan": _wan}


def check_clip(family: str, loader: dict, width: int, height: int, num_frames: int, steps: int,
               cfg: float) -> tuple[int, list[str]]:
    """(frame count to use, extra warnings). Raises the sampler's own InputError for an impossible request.

    A family without a check of its own here gets its spec's frame rule (``BackboneSpec.snap_frames``)."""
    check = _CHECKS.get(family)
    if check is not None:
        return check(loader, width, height, num_frames, steps, cfg), []
    from .registry import get

    snapped = get(family).snap_frames(num_frames)
    if snapped != num_frames:
        return snapped, [f"{num_frames} frames cannot be made by this model; making {snapped} frames."]
    return num_frames, []
