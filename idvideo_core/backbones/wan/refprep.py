"""Concat-ID reference preprocessing: aligned 448² face crop, face-parsing mask, black letterbox to the video size.

Reference (``inference_wan.py::get_face_image``, notes §1.1):
1. the chosen face (largest SCRFD box — chosen upstream by the face stack, handed over as a ``DetectedFace``);
2. ``insightface.utils.face_align.norm_crop(img, kps, image_size=448)`` (ArcFace template ×4);
3. Segformer ``jonathandinu/face-parsing``: pixels labelled 0 background, 14 hat, 15 ear_r, 16 neck_l, 18 cloth set
   to black — only when the remaining foreground covers at least 40 % of the crop (neck 17 and hair 13 are kept);
4. ``resize_pad_crop``: resize to the video height, pad black / centre-crop to the video width.
No face found (``whole_image_fallback``) → the whole image is used in place of the crop.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ... import paths
from ...errors import CorruptFileError, MissingModelError, WrongModelError
from ...types import DetectedFace, Reference
from .references import letterbox_black

log = logging.getLogger("idvideo")

FACE_CROP_SIZE = 448
DROP_LABELS = (0, 14, 15, 16, 18)          # background, hat, ear_r (earring), neck_l (necklace), cloth
MIN_FOREGROUND = 0.40
PARSING_PUBLISHED = "huggingface.co/jonathandinu/face-parsing (config.json + model.safetensors)"
PARSING_CANDIDATES = ("face-parsing", "jonathandinu/face-parsing", "jonathandinu--face-parsing")


class FaceParser:
    """Segformer face parsing loaded from the HF folder layout (``config.json`` + ``model.safetensors``)."""

    def __init__(self, folder: str | Path, device="cpu"):
        from transformers import SegformerForSemanticSegmentation, SegformerImageProcessor

        folder = Path(folder)
        for f in ("config.json",):
            if not (folder / f).is_file():
                raise MissingModelError(f"the face-parsing {f}", [folder / f], PARSING_PUBLISHED)
        try:
            self.model = SegformerForSemanticSegmentation.from_pretrained(str(folder)).eval().to(device)
        except (OSError, ValueError, RuntimeError) as exc:
            raise CorruptFileError(folder, f"loading the Segformer face parser failed: {exc}",
                                   PARSING_PUBLISHED) from exc
        if self.model.config.num_labels < 19:
            raise WrongModelError(f"{folder} is a Segformer with {self.model.config.num_labels} labels, not the "
                                  "19-label face parser.", f"Use {PARSING_PUBLISHED}.")
        if (folder / "preprocessor_config.json").is_file():
            self.processor = SegformerImageProcessor.from_pretrained(str(folder))
        else:
            self.processor = SegformerImageProcessor()        # 512², ImageNet mean/std (the published config)
        self.device = device

    @torch.no_grad()
    def labels(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W) int label map at the image's own size (bilinear upsampling of the logits, then argmax)."""
        inputs = self.processor(images=rgb, return_tensors="pt").to(self.device)
        logits = self.model(**inputs).logits
        up = torch.nn.functional.interpolate(logits, size=rgb.shape[:2], mode="bilinear", align_corners=False)
        return up.argmax(dim=1)[0].cpu().numpy()


def find_face_parsing_folder(name: Optional[str | Path] = None) -> Path:
    if name and Path(name).is_dir():
        return Path(name)
    return paths.find_dir("the face-parsing model folder", face_parsing_candidates(name),
                          must_contain=("config.json",), published=PARSING_PUBLISHED)


def face_parsing_candidates(name: Optional[str | Path] = None) -> list[Path]:
    """Where the face-parsing folder is looked for, in order."""
    rels = [name] if name else list(PARSING_CANDIDATES)
    return [Path(d) / r for key in ("concatid", "idvideo") for d in paths.search_dirs(key) for r in rels]


def parsing_mask(labels: np.ndarray) -> tuple[np.ndarray, float]:
    """(keep mask, foreground fraction): keep = label not in DROP_LABELS."""
    keep = ~np.isin(labels, DROP_LABELS)
    return keep, float(keep.mean())


def apply_parsing(rgb: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, bool]:
    """Black out the dropped labels when the foreground is at least 40 %; returns (image, applied)."""
    keep, frac = parsing_mask(labels)
    if frac < MIN_FOREGROUND:
        return rgb, False
    return (rgb * keep[..., None]).astype(rgb.dtype), True


def aligned_face(face: DetectedFace, size: int = FACE_CROP_SIZE) -> np.ndarray:
    """ArcFace-template crop at ``size`` px (uint8 RGB); the whole image when no face was found."""
    if face.whole_image_fallback or face.kps is None:
        return np.ascontiguousarray(face.source_rgb)
    from insightface.utils.face_align import norm_crop

    return norm_crop(np.ascontiguousarray(face.source_rgb), np.asarray(face.kps, dtype=np.float32), image_size=size)


def concatid_reference(face: DetectedFace, width: int = 832, height: int = 480,
                       parser: Optional[FaceParser] = None, label: str = "") -> Reference:
    """A Concat-ID reference frame (1, height, width, 3) float 0..1 from one detected face."""
    crop = aligned_face(face)
    applied = False
    if parser is not None:
        crop, applied = apply_parsing(crop, parser.labels(crop))
        if not applied:
            log.info("IDVideo: face-parsing foreground under 40 %; the crop is used unmasked (as the reference).")
    image = letterbox_black(crop, width, height)
    ref = Reference(image=image, kind="face", label=label, source_index=face.image_index)
    return ref
