"""Image → :class:`~idvideo_core.types.DetectedFace` list (consisid.md §1.2 steps 1–7).

Order, as the reference: downscale (long side ≤ 1024, Lanczos4, never upscale) → SCRFD at 640 (threshold 0.5) →
choose the face(s) with the one selection rule → raw ArcFace embedding → RetinaFace landmarks *of that same face*
(matched by box overlap; the reference instead takes RetinaFace's centre face) → FFHQ 512 alignment → BiSeNet
whitening. When SCRFD finds nothing but RetinaFace does, ArcFace runs on the aligned crop (the reference's
fallback). When no detector finds a face: :class:`NoFaceError`, or with ``on_no_face="whole_image"`` the whole
image is used (the reference's ``is_align_face=False``), with a warning.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

import cv2
import numpy as np
import torch

from ..errors import InputError, NoFaceError
from ..labels import setting
from ..types import DetectedFace
from . import align
from .facexlib_nets import RETINAFACE_CONF
from .select import match_box, select_faces

log = logging.getLogger("idvideo")

MAX_SIDE = 1024
MIN_FACE_PX = 40
MIN_IMAGE_PX = 32
ON_NO_FACE = ("error", "whole_image")


def downscale_long_side(rgb: np.ndarray, limit: int = MAX_SIDE) -> np.ndarray:
    h, w = rgb.shape[:2]
    if max(h, w) <= limit:
        return rgb
    k = limit / max(h, w)
    return cv2.resize(rgb, (int(w * k), int(h * k)), interpolation=cv2.INTER_LANCZOS4)


def _as_rgb_uint8(image) -> np.ndarray:
    """RGB uint8 (H, W, 3). Gray (H, W) / (H, W, 1) is repeated to 3 channels and RGBA loses its alpha, each with a
    warning; an image too small to hold a face is refused (detectors fail obscurely on a few pixels)."""
    img = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        log.warning("IDVideo: the face image is grayscale (1 channel); it was converted to RGB.")
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise InputError(f"Expected an RGB image (H, W, 3), got shape {tuple(img.shape)}.",
                         "Connect a regular image to the face input.")
    if min(img.shape[:2]) < MIN_IMAGE_PX:
        raise InputError(f"The image is only {img.shape[1]}×{img.shape[0]} pixels, too small to hold a face.",
                         f"Use a photo at least {MIN_IMAGE_PX}×{MIN_IMAGE_PX} px with the face clearly visible "
                         f"(ideally the face ≥ {MIN_FACE_PX * 2} px wide).")
    if img.shape[2] == 4:
        log.warning("IDVideo: the face image has an alpha channel (RGBA); the alpha was dropped.")
    img = img[:, :, :3]
    if img.dtype != np.uint8:
        # float32, in place: a float64 copy of an 8000×8000 photo would need 1.5 GB.
        img = np.clip(np.rint(img.astype(np.float32) * np.float32(255.0)), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img)


@torch.no_grad()
def retinaface_detect(models, img_bgr: np.ndarray) -> np.ndarray:
    """(N, 15) rows: box x1..y2, score, 5 landmarks (x, y) — facexlib's RetinaFace at confidence 0.97."""
    return np.asarray(models.retinaface.detect_faces(img_bgr, RETINAFACE_CONF))


def _finish(models, face: DetectedFace, img_bgr: np.ndarray, landmarks5: np.ndarray) -> DetectedFace:
    """Align, parse and whiten one face; fill the ArcFace fallback embedding if SCRFD gave none."""
    crop = align.align_ffhq(img_bgr, landmarks5)
    if face.embedding is None:
        log.warning("IDVideo: SCRFD found no face, so the ArcFace embedding is taken from the aligned crop "
                    "(lower quality, as in the reference).")
        face.embedding = models.recognizer.features([crop])[0].ravel()
        face.meta["embedding_from_aligned_crop"] = True
    rgb = align.rgb_tensor(crop)
    bg = align.parse_background(models.parser, rgb)
    gray, colour = align.whiten(rgb, bg.cpu())
    face.aligned_bgr = crop
    face.face_rgb_white = align.quantise(colour)
    face.face_gray_white = gray
    face.parse_mask = bg[0, 0].cpu().numpy()
    return face


def _whole_image(models, rgb: np.ndarray, image_index: int) -> DetectedFace:
    """No face: the whole image padded to a white square and resized to 512 feeds both EVA and the VAE."""
    h, w = rgb.shape[:2]
    side = max(h, w)
    canvas = np.full((side, side, 3), 255, np.uint8)
    canvas[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = rgb
    square = cv2.resize(canvas, (align.FACE_SIZE, align.FACE_SIZE), interpolation=cv2.INTER_AREA
                        if side > align.FACE_SIZE else cv2.INTER_LANCZOS4)
    bgr = cv2.cvtColor(square, cv2.COLOR_RGB2BGR)
    t = align.rgb_tensor(bgr)
    emb = models.recognizer.features([bgr])[0].ravel()
    return DetectedFace(image_index=image_index, bbox=np.array([0, 0, w, h], np.float32), det_score=0.0,
                        kps=np.zeros((5, 2), np.float32), embedding=emb, source_rgb=rgb, aligned_bgr=bgr,
                        face_rgb_white=square, face_gray_white=t, parse_mask=np.zeros((512, 512), bool),
                        whole_image_fallback=True, meta={"note": "no face found; whole image used"})


def _prepare(image) -> tuple[np.ndarray, np.ndarray]:
    rgb = downscale_long_side(_as_rgb_uint8(image))
    return rgb, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def _no_face(models, rgb: np.ndarray, image_index: int, on_no_face: str) -> list[DetectedFace]:
    h, w = rgb.shape[:2]
    if on_no_face == "whole_image":
        log.warning("IDVideo: no face found in image %d; using the whole image as the identity reference "
                    "(identity will be weak).", image_index)
        return [_whole_image(models, rgb, image_index)]
    raise NoFaceError(f"No face was found in image {image_index} ({w}×{h} after resizing).",
                      "Use a photo where the face is clear, frontal and at least ~100 px wide (crop closer to "
                      f"the face), or {setting('on_no_face', 'whole_image')} to use the whole picture.")


def _check_size(faces: list[DetectedFace]) -> None:
    for f in faces:
        side = float(min(f.bbox[2] - f.bbox[0], f.bbox[3] - f.bbox[1]))
        if side < MIN_FACE_PX:
            f.meta["small_face"] = True
            log.warning("IDVideo: the face in image %d is only %.0f px wide (under %d px); identity will be poor. "
                        "Use a closer or higher-resolution photo.", f.image_index, side, MIN_FACE_PX)


def _scrfd_faces(models, rgb, bgr, mode, index, image_index) -> list[DetectedFace]:
    dets, kpss = models.detector.detect(bgr)
    if not len(dets):
        return []
    h, w = rgb.shape[:2]
    return [DetectedFace(image_index=image_index, bbox=dets[i, :4].copy(), det_score=float(dets[i, 4]),
                         kps=kpss[i].copy(), embedding=models.recognizer.embed(bgr, kpss[i]), source_rgb=rgb)
            for i in select_faces(dets, mode, index, w, h)]


def find_faces(models, image, mode: str = "largest", index: int = 0, image_index: int = 0) -> list[DetectedFace]:
    """SCRFD detection, selection and ArcFace embedding only (no alignment): cheap, for previews and counting.
    Returns an empty list when SCRFD finds no face."""
    rgb, bgr = _prepare(image)
    faces = _scrfd_faces(models, rgb, bgr, mode, index, image_index)
    _check_size(faces)
    return faces


def analyze_image(models, image, mode: str = "largest", index: int = 0, on_no_face: str = "error",
                  image_index: int = 0) -> list[DetectedFace]:
    """Detect, select, align and parse the face(s) of one RGB image (uint8, or float in 0..1)."""
    if on_no_face not in ON_NO_FACE:
        raise InputError(f"Unknown on_no_face '{on_no_face}'.", f"Use one of: {', '.join(ON_NO_FACE)}.")
    rgb, bgr = _prepare(image)
    h, w = rgb.shape[:2]
    faces = _scrfd_faces(models, rgb, bgr, mode, index, image_index)
    retina = retinaface_detect(models, bgr)
    if faces:
        for face in faces:
            j = match_box(face.bbox, retina[:, :4]) if len(retina) else None
            if j is None:
                log.warning("IDVideo: RetinaFace did not confirm the face at %s; aligning with SCRFD's landmarks.",
                            np.round(face.bbox).astype(int).tolist())
                landmarks = face.kps
                face.meta["landmarks"] = "scrfd"
            else:
                landmarks = np.asarray(retina[j, 5:15], np.float32).reshape(5, 2)
                face.meta["landmarks"] = "retinaface"
            _finish(models, face, bgr, landmarks)
    elif len(retina):
        for j in select_faces(retina, mode, index, w, h):
            landmarks = np.asarray(retina[j, 5:15], np.float32).reshape(5, 2)
            face = DetectedFace(image_index=image_index, bbox=retina[j, :4].astype(np.float32),
                                det_score=float(retina[j, 4]), kps=landmarks.copy(), embedding=None, source_rgb=rgb,
                                meta={"landmarks": "retinaface"})
            faces.append(_finish(models, face, bgr, landmarks))
    else:
        return _no_face(models, rgb, image_index, on_no_face)
    _check_size(faces)
    return faces


def analyze_images(models, images_bhwc_float, mode: str = "largest", index: int = 0, on_no_face: str = "error",
                   progress=None) -> list[DetectedFace]:
    """Analyse a batch (B, H, W, 3) float 0..1 (a ComfyUI IMAGE); one progress step (and cancel check) per image."""
    from ..bridge import Progress

    batch: Sequence = images_bhwc_float
    if isinstance(batch, (torch.Tensor, np.ndarray)) and batch.ndim == 3:
        batch = batch[None]
    n = len(batch)
    bar = progress if progress is not None else Progress(n, "Analysing faces")
    out: list[DetectedFace] = []
    try:
        for b in range(n):
            out.extend(analyze_image(models, batch[b], mode, index, on_no_face, image_index=b))
            bar.update(1)
    finally:
        if progress is None:
            bar.close()
    return out
