"""Typed payloads that travel between nodes (ComfyUI sockets carry the ``IDV_`` names in brackets).

Dataclasses, not loose dicts: every field a downstream node reads is declared here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np


@dataclass
class DetectedFace:
    """One face found in one input image [IDV_FACES is a list of these].

    Coordinates are in the pixel space of ``source_rgb`` (the input image after the reference's downscale so that
    its long side is at most 1024 px).
    """

    image_index: int                      # which image of the input batch
    bbox: np.ndarray                      # (4,) x1, y1, x2, y2 (insightface SCRFD)
    det_score: float
    kps: np.ndarray                       # (5, 2) left eye, right eye, nose, left mouth, right mouth (SCRFD)
    embedding: Optional[np.ndarray]       # (512,) raw, un-normalised ArcFace (glintr100) embedding, or None
    source_rgb: np.ndarray                # (H, W, 3) uint8 RGB image the face was found in
    aligned_bgr: Optional[np.ndarray] = None      # (512, 512, 3) uint8 FFHQ-aligned crop (facexlib), BGR
    face_rgb_white: Optional[np.ndarray] = None   # (512, 512, 3) uint8 colour face on white (what the VAE sees)
    face_gray_white: Any = None                   # torch (1, 3, 512, 512) float gray face on white (what EVA sees)
    parse_mask: Optional[np.ndarray] = None       # (512, 512) bool, True = background (whitened)
    whole_image_fallback: bool = False            # True when no face was found and the whole image is used
    meta: dict = field(default_factory=dict)


@dataclass
class LocalIdentity:
    """High-frequency identity for ConsisID [IDV_LOCAL_ID]."""

    id_cond: Any            # torch (1, 512 + eva_dim): raw ArcFace ⊕ L2-normalised EVA projection
    id_vit_hidden: list     # 5 × torch (1, 577, eva_width): EVA hidden states after blocks 4, 8, 12, 16, 20


@dataclass
class GlobalIdentity:
    """Low-frequency identity for ConsisID [IDV_GLOBAL_ID]: the VAE posterior of the face (and kps) images.

    The posterior is *sampled in the sampler* with the generation's seeded generator, in the reference's order
    (face sample, then kps sample, then the initial noise), so results equal diffusers' pipeline for a seed.
    """

    mean: Any                       # torch (1, C, 1, h, w) posterior mean of the face image
    std: Any                        # torch (1, C, 1, h, w)
    kps_mean: Any = None            # same for the key-point image when the model uses kps
    kps_std: Any = None
    scaling_factor: float = 0.7
    width: int = 720
    height: int = 480
    face_preview: Any = None        # torch (1, H, W, 3) the stretched face, for previews


@dataclass
class TextEmbeds:
    """Encoded prompt and negative prompt [IDV_TEXT_EMBEDS]."""

    prompt_embeds: Any                  # torch (1, L, D)
    negative_embeds: Any = None         # torch (1, L, D) or None
    family: str = "cogvideox"           # "cogvideox" (T5, 226 tokens) or "wan" (UMT5, 512 tokens)
    prompt: str = ""
    negative_prompt: str = ""
    truncated: bool = False


@dataclass
class Reference:
    """One reference frame for the concatenation family (Concat-ID, Phantom) [IDV_REFERENCES is a list]."""

    image: Any                          # torch (1, H, W, 3) float 0..1, already preprocessed to the video size
    kind: str = "face"                  # "face" or "subject"
    label: str = ""
    source_index: int = 0
