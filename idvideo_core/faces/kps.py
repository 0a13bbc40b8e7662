"""The key-point condition image (InstantID-style), as ConsisID's ``draw_kps`` draws it.

Black canvas; each of eye/eye/mouth/mouth is joined to the nose by a filled ellipse polygon (half-axes length/2 × 4,
one-degree steps) in the colour of its first point; the limbs are dimmed to 60 %; then a filled circle of radius 10
per key point. Coordinates are truncated to int and computed in the points' dtype, like the reference. Only used
when a model has ``is_kps``.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

KPS_COLOURS = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255))
LIMBS = ((0, 2), (1, 2), (3, 2), (4, 2))
STICK_WIDTH = 4
RADIUS = 10


def draw_kps(width: int, height: int, kps, colours=KPS_COLOURS) -> np.ndarray:
    """(height, width, 3) uint8 RGB key-point image for 5 points (x, y)."""
    pts = np.asarray(kps).reshape(-1, 2)   # keep the caller's dtype: float32 SCRFD points round like the reference
    canvas = np.zeros((int(height), int(width), 3), dtype=np.float64)
    for a, b in LIMBS:
        (xa, ya), (xb, yb) = pts[a], pts[b]
        length = ((xa - xb) ** 2 + (ya - yb) ** 2) ** 0.5
        angle = math.degrees(math.atan2(ya - yb, xa - xb))
        centre = (int(np.mean(pts[[a, b], 0])), int(np.mean(pts[[a, b], 1])))
        poly = cv2.ellipse2Poly(centre, (int(length / 2), STICK_WIDTH), int(angle), 0, 360, 1)
        cv2.fillConvexPoly(canvas, poly, colours[a])
    img = (canvas * 0.6).astype(np.uint8)
    for k, (x, y) in enumerate(pts):
        cv2.circle(img, (int(x), int(y)), RADIUS, colours[k], -1)
    return img
