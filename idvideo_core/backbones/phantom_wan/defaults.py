"""Phantom defaults (what the official code runs; Phantom-video/Phantom at 7e2997d):
* both sizes: 50 steps (``generate.py`` ``_validate_args``: ``sample_steps = 40 if "i2v" … else 50``, L59–60), shift
  5.0 (L62–63), UniPC (``--sample_solver`` default ``'unipc'``; ``dpm++`` raises NotImplementedError in
  ``subject2video.py``), image guidance 5.0 and text guidance 7.5 (``--sample_guide_scale_img`` /
  ``--sample_guide_scale_text`` defaults), at most 4 references ("The number of reference images should be within
  4", README), each LANCZOS-fitted inside the video size and centre-padded white (``generate.py`` ``load_ref_images``).
* 1.3B: 832×480 only (``phantom_wan/configs/__init__.py`` ``SUPPORTED_SIZES['s2v-1.3B'] = ('832*480',)``), 81 frames
  (``generate.py`` L68–69: ``frame_num = … 81``), 16 fps (``configs/shared_config.py`` ``sample_fps``).
* 14B: 832×480 (``SUPPORTED_SIZES['s2v-14B'] = ('832*480', '1280*720')``; README: "trained on 480P data", 720P "may
  be less stable"), 121 frames at 24 fps (both 14B commands of the README: ``--size 832*480 --frame_num 121
  --sample_fps 24``; "trained on 24fps data"). The 14B transformer: dim 5120, FFN 13824, 40 heads, 40 layers
  (``configs/wan_s2v_14B.py``) — read by the loader from the tensors, never from names.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PhantomDefaults:
    """What the official Phantom code runs by default (see the module docstring for file and line)."""

    width: int = 832
    height: int = 480
    frames: int = 81
    fps: int = 16
    steps: int = 50
    shift: float = 5.0
    image_cfg: float = 5.0
    text_cfg: float = 7.5
    sampler: str = "unipc"
    max_references: int = 4
    reference_padding: str = "white"
    sizes: tuple = ((832, 480),)


PHANTOM_1_3B = PhantomDefaults()
PHANTOM_14B = PhantomDefaults(frames=121, fps=24, sizes=((832, 480), (1280, 720)))
WAN_14B_DIM = 5120


def phantom_defaults(config) -> PhantomDefaults:
    """The defaults of the Phantom model with this transformer config (hidden size from the tensors)."""
    get = config.get if isinstance(config, dict) else (lambda k, d=None: getattr(config, k, d))
    dim = int(get("num_attention_heads", 0)) * int(get("attention_head_dim", 0))
    return PHANTOM_14B if dim >= WAN_14B_DIM else PHANTOM_1_3B


def planned_clip(transformer):
    """(width, height, frames) the loader plans memory for: this checkpoint's official default clip."""
    d = phantom_defaults(getattr(getattr(transformer, "base", transformer), "config", None) or {})
    return d.width, d.height, d.frames
