"""The two published face-similarity protocols, as data (consisid.md §5, landscape-2026.md §6).

Both score a video against a reference photo with insightface's default ``buffalo_l`` pack (SCRFD ``det_10g`` at
320×320 + ArcFace ``w600k_r50``) and CurricularFace IR-101, and share the per-image step: the largest detected face;
when none is found the image is padded by 25 % of its height (top and bottom) and width (left and right) with grey
128 and detection is retried (the ArcFace embedding is then taken from the padded image, the key points shifted back
for the CurricularFace crop); still nothing: the frame is skipped. Cosines are clamped at 0.

They differ in the frame sampling and in how clamped zeros enter the mean:

- **OpenS2V-Eval** (``eval/get_facesim.py``, the default): 32 frames at ``linspace(0, N−1, 32)`` (decord);
  FaceSim-Cur leaves frames whose clamped cosine is exactly 0 out of the mean, FaceSim-Arc keeps them (the script's
  Arc filter compares the list instead of the score with 0, so it never drops anything).
- **ConsisID** (``eval/get_facesim_fid.py``): 16 frames at ``linspace(0, N−1, 16)`` (OpenCV); zeros are averaged in.

Either way a video with no face in any sampled frame scores 0.0 in the scripts; IDVideo reports those means as
missing (``None``) with a note instead, and every skipped frame is listed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError


@dataclass(frozen=True)
class Protocol:
    name: str
    num_frames: int
    drop_zero_arc: bool
    drop_zero_cur: bool
    source: str
    det_size: tuple[int, int] = (320, 320)
    pad_scale: float = 1.25
    pad_value: int = 128
    cur_crop: int = 224            # norm_crop size before the resize to CurricularFace's 112


OPENS2V = Protocol("OpenS2V-Eval", 32, drop_zero_arc=False, drop_zero_cur=True,
                   source="PKU-YuanGroup/OpenS2V-Nexus eval/get_facesim.py")
CONSISID = Protocol("ConsisID", 16, drop_zero_arc=False, drop_zero_cur=False,
                    source="PKU-YuanGroup/ConsisID eval/get_facesim_fid.py")
PROTOCOLS = {OPENS2V.name: OPENS2V, CONSISID.name: CONSISID}
CLIP_FRAMES = 16  # ConsisID eval/get_clipscore.py


def get_protocol(name: str) -> Protocol:
    key = str(name).split(" (")[0]
    for p in PROTOCOLS.values():
        if p.name.lower() == key.lower():
            return p
    raise InputError(f"Unknown evaluation protocol '{name}'.", f"Use one of: {', '.join(PROTOCOLS)}.")


def sample_indices(total: int, num_frames: int | None) -> np.ndarray:
    """Frame indices the protocols read: ``linspace(0, total − 1, n)`` truncated to int (repeats when n > total);
    ``num_frames`` None or ≤ 0: every frame."""
    if total <= 0:
        raise InputError("The video has no frames.", "Connect or give a video with at least one frame.")
    if not num_frames or num_frames <= 0:
        return np.arange(total)
    return np.linspace(0, total - 1, int(num_frames), dtype=int)


def clip_indices(total: int, num_frames: int = CLIP_FRAMES) -> np.ndarray:
    """ConsisID's CLIPScore frames: ``int(i · total / n)`` for i < n."""
    return np.array([int(i * total / num_frames) for i in range(num_frames)], dtype=int)


def protocol_mean(values: list[float], drop_zero: bool) -> float | None:
    """The protocol's mean of clamped cosines (zeros left out when ``drop_zero``); None when nothing is left."""
    kept = [v for v in values if not (drop_zero and v == 0.0)]
    return float(np.mean(kept)) if kept else None
