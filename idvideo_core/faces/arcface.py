"""ArcFace recogniser (antelopev2 ``glintr100.onnx``) on ONNX Runtime, with insightface's 112-px crop.

The crop is a least-squares similarity transform of the 5 SCRFD key points onto the standard ArcFace 112×112
template, estimated exactly as insightface's ``norm_crop`` does (see :func:`similarity_matrix`). The blob follows
insightface's convention: RGB, (x - mean) / std with mean = std = 127.5, except for mxnet-exported models (recognised
by ``Sub``/``Mul`` first nodes) which take raw pixels. The embedding is returned *raw* (not L2-normalised): ConsisID
uses it that way.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# ArcFace 5-point template for a 112×112 crop (left eye, right eye, nose, left mouth, right mouth).
ARCFACE_TEMPLATE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                                 [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float32)


def similarity_lstsq(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2×3 similarity transform (rotation, uniform scale, translation) mapping ``src`` onto ``dst`` in the
    least-squares sense. In 2-D the optimum has a closed form: with centred points, the linear part is
    [[a, -b], [b, a]] with a = Σ(s·d) / Σ|s|², b = Σ(s × d) / Σ|s|² (the same optimum as Umeyama's SVD
    method)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    sm, dm = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - sm, dst - dm
    norm = float((s ** 2).sum())
    if norm == 0.0:
        return np.full((2, 3), np.nan)
    a = float((s[:, 0] * d[:, 0] + s[:, 1] * d[:, 1]).sum()) / norm
    b = float((s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()) / norm
    lin = np.array([[a, -b], [b, a]])
    return np.hstack([lin, (dm - lin @ sm)[:, None]])


def similarity_matrix(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The similarity transform insightface uses for its crops.

    insightface estimates it with scikit-image (Umeyama's SVD method, evaluated in the dtype of the points, i.e.
    float32 for SCRFD key points). Rounding at that precision moves the crop by ~1e-3 px, enough to change some
    warped pixels, so when scikit-image is installed (it always is next to insightface) we call the same estimator
    as a library for bit-equal crops; otherwise the float64 closed form above (same optimum) is used.
    """
    try:
        from skimage.transform import SimilarityTransform
    except ImportError:
        return similarity_lstsq(src, dst)
    if hasattr(SimilarityTransform, "from_estimate"):
        tf = SimilarityTransform.from_estimate(src, dst)
        if not tf:
            return similarity_lstsq(src, dst)
    else:  # scikit-image < 0.26
        tf = SimilarityTransform()
        tf.estimate(src, dst)
    return tf.params[0:2, :]


def arcface_crop(img: np.ndarray, kps: np.ndarray, size: int = 112) -> np.ndarray:
    """The ArcFace-aligned square crop (black border) for 5 key points."""
    ratio = float(size) / 112.0
    m = similarity_matrix(np.asarray(kps), ARCFACE_TEMPLATE_112 * ratio)
    return cv2.warpAffine(img, m, (size, size), borderValue=0.0)


@dataclass
class ArcFaceRecognizer:
    session: object
    input_mean: float = 127.5
    input_std: float = 127.5

    def __post_init__(self):
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_size = int(inp.shape[3]) if isinstance(inp.shape[3], int) else 112
        self.output_names = [o.name for o in self.session.get_outputs()]

    @classmethod
    def from_session(cls, session, first_node_names: list[str]) -> ArcFaceRecognizer:
        """mxnet exports subtract/scale inside the graph; those take raw 0..255 pixels."""
        sub = any(n.startswith(("Sub", "_minus")) for n in first_node_names)
        mul = any(n.startswith(("Mul", "_mul")) for n in first_node_names)
        return cls(session, 0.0, 1.0) if (sub and mul) else cls(session)

    def features(self, crops_bgr: list[np.ndarray]) -> np.ndarray:
        """Raw embeddings for BGR crops (any size: resized to the model input like insightface's ``get_feat``)."""
        blob = cv2.dnn.blobFromImages(crops_bgr, 1.0 / self.input_std, (self.input_size, self.input_size),
                                      (self.input_mean,) * 3, swapRB=True)
        return self.session.run(self.output_names, {self.input_name: np.ascontiguousarray(blob, np.float32)})[0]

    def embed(self, img_bgr: np.ndarray, kps: np.ndarray) -> np.ndarray:
        """Raw (512,) embedding of the face with these SCRFD key points."""
        return self.features([arcface_crop(img_bgr, kps, self.input_size)])[0].ravel()
