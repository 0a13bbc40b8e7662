"""SCRFD face detector (antelopev2 ``scrfd_10g_bnkps.onnx``) run directly on ONNX Runtime.

Why not ``insightface.model_zoo``: its SCRFD class changed between 0.7.3 and 2.x (2.x adds a pool of per-resolution
static-shape sessions, several default detection sizes, and a stable tie-break in score sorting), it downloads
missing models, and insightface itself needs a C++ build on Windows. The decode below follows the published SCRFD
output format (per stride 8/16/32: scores, distance-encoded boxes and key points on a grid of anchor centres,
2 anchors per cell), letter-boxes the image into the square detection input exactly like insightface does, and
keeps the float32 arithmetic order, so boxes, key points and therefore the ArcFace crops equal insightface's.
Where 0.7.3 and 2.x disagree (only when two scores tie exactly) we follow 2.x's stable order.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

STRIDES = (8, 16, 32)
NUM_ANCHORS = 2
INPUT_MEAN = 127.5
INPUT_STD = 128.0


@dataclass
class ScrfdDetector:
    session: object
    det_size: tuple[int, int] = (640, 640)        # (width, height) of the detection input
    det_thresh: float = 0.5
    nms_thresh: float = 0.4
    _centers: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        outs = self.session.get_outputs()
        self.output_names = [o.name for o in outs]
        if len(outs) != 9:
            from ..errors import WrongModelError

            raise WrongModelError(
                f"The detector model has {len(outs)} outputs; IDVideo expects SCRFD with key points (9 outputs, "
                "antelopev2 scrfd_10g_bnkps.onnx).", "Use the scrfd_10g_bnkps.onnx file of the antelopev2 pack.")
        self.batched = len(outs[0].shape) == 3
        fixed = inp.shape[2:4]
        if all(isinstance(d, int) and d > 0 for d in fixed):
            self.det_size = (int(fixed[1]), int(fixed[0]))

    # ------------------------------------------------------------------------------------------------ geometry
    def _letterbox(self, img: np.ndarray) -> tuple[np.ndarray, float]:
        """Resize keeping the aspect ratio into the top-left corner of a black det_size canvas."""
        w_in, h_in = self.det_size
        im_ratio = float(img.shape[0]) / img.shape[1]
        if im_ratio > float(h_in) / w_in:
            new_h = h_in
            new_w = int(new_h / im_ratio)
        else:
            new_w = w_in
            new_h = int(new_w * im_ratio)
        scale = float(new_h) / img.shape[0]
        canvas = np.zeros((h_in, w_in, 3), dtype=np.uint8)
        canvas[:new_h, :new_w, :] = cv2.resize(img, (new_w, new_h))
        return canvas, scale

    def _anchor_centers(self, h: int, w: int, stride: int) -> np.ndarray:
        key = (h, w, stride)
        if key not in self._centers:
            ys, xs = np.mgrid[:h, :w]
            c = (np.stack([xs, ys], axis=-1).astype(np.float32) * stride).reshape(-1, 2)
            self._centers[key] = np.repeat(c, NUM_ANCHORS, axis=0)
        return self._centers[key]

    # -------------------------------------------------------------------------------------------------- detect
    def detect(self, img_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(dets (N,5) x1,y1,x2,y2,score, kps (N,5,2))`` in image pixels, best score first after NMS."""
        canvas, scale = self._letterbox(img_bgr)
        blob = cv2.dnn.blobFromImage(canvas, 1.0 / INPUT_STD, self.det_size,
                                     (INPUT_MEAN, INPUT_MEAN, INPUT_MEAN), swapRB=True)
        outs = self.session.run(self.output_names, {self.input_name: np.ascontiguousarray(blob, np.float32)})
        in_h, in_w = blob.shape[2], blob.shape[3]
        scores_l, boxes_l, kps_l = [], [], []
        for i, stride in enumerate(STRIDES):
            pick = (lambda o: o[0]) if self.batched else (lambda o: o)
            scores = pick(outs[i])
            dist = pick(outs[i + 3]) * stride
            kdist = pick(outs[i + 6]) * stride
            centers = self._anchor_centers(in_h // stride, in_w // stride, stride)
            keep = np.where(scores >= self.det_thresh)[0]
            boxes = np.stack([centers[:, 0] - dist[:, 0], centers[:, 1] - dist[:, 1],
                              centers[:, 0] + dist[:, 2], centers[:, 1] + dist[:, 3]], axis=-1)
            pts = np.stack([centers[:, k % 2] + kdist[:, k] for k in range(10)], axis=-1).reshape(-1, 5, 2)
            scores_l.append(scores[keep])
            boxes_l.append(boxes[keep])
            kps_l.append(pts[keep])
        scores = np.vstack(scores_l).ravel()
        if scores.size == 0:
            return np.empty((0, 5), np.float32), np.empty((0, 5, 2), np.float32)
        order = np.argsort(-scores, kind="stable")
        boxes = np.vstack(boxes_l) / scale
        kps = np.vstack(kps_l) / scale
        dets = np.hstack((boxes, scores[:, None])).astype(np.float32, copy=False)[order]
        kps = kps[order]
        keep = nms(dets, self.nms_thresh)
        return dets[keep], kps[keep]


def nms(dets: np.ndarray, thresh: float) -> list[int]:
    """Greedy NMS with insightface's "+1" pixel-area convention (keeps its exact survivors)."""
    x1, y1, x2, y2, s = (dets[:, k] for k in range(5))
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-s, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        ovr = inter / (areas[i] + areas[rest] - inter)
        order = rest[np.where(ovr <= thresh)[0]]
    return keep
