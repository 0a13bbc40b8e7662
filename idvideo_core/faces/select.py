"""The one face-selection rule, used for every detector so all stages agree on *which* face.

The reference keeps the largest SCRFD face but then lets facexlib align the face closest to the image centre, so
with several people the identity embedding and the aligned face can come from two different persons. We pick the
face once (on SCRFD, or on RetinaFace when SCRFD found nothing) and then follow that same face everywhere.

Modes: ``largest`` (default; ties go to the later detection, like the reference's sort), ``center`` (closest box
centre to the image centre), ``index`` (the k-th face counted left to right, 0-based), ``all`` (every face, left to
right).
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError

MODES = ("largest", "center", "index", "all")


def box_area(b) -> float:
    return (b[2] - b[0]) * (b[3] - b[1])


def left_to_right(boxes: np.ndarray) -> list[int]:
    """Indices ordered by box centre x (then y)."""
    cx = (boxes[:, 0] + boxes[:, 2]) / 2.0
    cy = (boxes[:, 1] + boxes[:, 3]) / 2.0
    return sorted(range(len(boxes)), key=lambda i: (float(cx[i]), float(cy[i])))


def select_faces(boxes: np.ndarray, mode: str, index: int, width: int, height: int) -> list[int]:
    """Indices (into ``boxes``, shape (N, >=4)) of the selected face(s); ``boxes`` must not be empty."""
    n = len(boxes)
    if mode not in MODES:
        raise InputError(f"Unknown face selection '{mode}'.", f"Use one of: {', '.join(MODES)}.")
    if mode == "largest":
        areas = [box_area(b) for b in boxes]
        return [max(range(n), key=lambda i: (areas[i], i))]
    if mode == "center":
        c = np.array([width / 2.0, height / 2.0])
        dist = [float(np.linalg.norm(np.array([(b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0]) - c)) for b in boxes]
        return [min(range(n), key=lambda i: (dist[i], i))]
    order = left_to_right(np.asarray(boxes, dtype=np.float64))
    if mode == "all":
        return order
    if not 0 <= int(index) < n:
        raise InputError(f"Face index {index} was asked for but only {n} face(s) were found in the image "
                         f"(indices count from 0, left to right).",
                         f"Set the face index between 0 and {n - 1}, or use selection 'largest'.")
    return [order[int(index)]]


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = box_area(a) + box_area(b) - inter
    return float(inter / union) if union > 0 else 0.0


def match_box(target, candidates: np.ndarray, min_iou: float = 0.3) -> int | None:
    """Index of the candidate box overlapping ``target`` most (IoU ≥ ``min_iou``), else None."""
    best, best_iou = None, min_iou
    for i, c in enumerate(candidates):
        v = iou(target, c)
        if v > best_iou or (best is None and v >= min_iou):
            best, best_iou = i, v
    return best
