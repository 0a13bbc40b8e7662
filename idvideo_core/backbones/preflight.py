"""Checks of a clip request against a model family, from the model's config files only (no weights are read).

The command line runs these before loading anything, so a wrong size or frame count is reported in a second instead
of after a minute of loading. Each family reuses the check its sampler runs on the loaded model: ConsisID's
``check_settings`` gets the transformer and VAE configs read from ``config.json``; Wan's frame rule is
``backbones.wan.runtime.check_clip``.
"""
from __future__ import annotations

def check_clip(family: str, loader: dict, width: int, height: int, num_frames: int, steps: int,
               cfg: float) -> tuple[int, list[str]]:
    """(frame count to use, extra warnings). Raises the sampler's own InputError for an impossible request.

    The family's spec ``preflight`` runs its sampler's checks on the config files; a family without one gets its
    spec's frame rule (``BackboneSpec.snap_frames``)."""
    from .registry import get

    spec = get(family)
    if spec.preflight is not None:
        return spec.preflight(loader, width, height, num_frames, steps, cfg), []
    snapped = spec.snap_frames(num_frames)
    if snapped != num_frames:
        return snapped, [f"{num_frames} frames cannot be made by this model; making {snapped} frames."]
    return num_frames, []
