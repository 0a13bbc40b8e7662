"""Face selection: one rule (largest / center / index / all) on t1.jpg with planted detections.

The photo is t1.jpg (six people) resized to 512 px wide; the tiny SCRFD reports four faces of different sizes on
spots where the tiny RetinaFace also fires, so the full analysis can follow each chosen face.
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from faces_fixtures import *

from idvideo_core.errors import InputError
from idvideo_core.faces.analyze import analyze_image, find_faces
from idvideo_core.testing import tiny_faces as tf

SHRINKS = (0.10, 0.0, 0.05, 0.15)   # centre face, then three others: the first "other" is the largest


@pytest.fixture(scope="module")
def scene(face_parts, t1_rgb, t1_models, tmp_path_factory):
    img = cv2.resize(t1_rgb, (512, 354), interpolation=cv2.INTER_AREA)
    h, w = img.shape[:2]
    rows = retina_rows(face_parts, img)
    picked = spread_rows(rows, w, h, 4)
    planted = [tf.planted_face_from_retina(rows[i], 0.9 - 0.02 * k, shrink=s)
               for k, (i, s) in enumerate(zip(picked, SHRINKS))]
    root = make_consisid_root(face_parts, tmp_path_factory.mktemp("select") / "ConsisID-preview", (w, h), planted)
    by_x = sorted(range(4), key=lambda k: (planted[k].bbox[0] + planted[k].bbox[2]) / 2)
    return img, with_scrfd(t1_models, root), planted, by_x


def _which(face, planted) -> int:
    d = [np.abs(np.asarray(face.bbox) - np.asarray(p.bbox)).max() for p in planted]
    assert min(d) < 1e-2, "the reported face must be one of the planted faces"
    return int(np.argmin(d))


def test_largest_is_default(scene):
    img, models, planted, _ = scene
    faces = find_faces(models, img)
    assert [_which(f, planted) for f in faces] == [1]
    assert faces[0].embedding.shape == (512,)


def test_center(scene):
    img, models, planted, _ = scene
    assert [_which(f, planted) for f in find_faces(models, img, mode="center")] == [0]


def test_index_counts_left_to_right(scene):
    img, models, planted, by_x = scene
    for k in range(4):
        assert [_which(f, planted) for f in find_faces(models, img, mode="index", index=k)] == [by_x[k]]
    with pytest.raises(InputError, match="only 4 face"):
        find_faces(models, img, mode="index", index=4)


def test_unknown_mode(scene):
    img, models, _, _ = scene
    with pytest.raises(InputError, match="largest"):
        find_faces(models, img, mode="biggest")


def test_all_faces_left_to_right_fully_analysed(scene):
    """``all`` aligns every face on its own RetinaFace landmarks (not the centre face for everyone)."""
    img, models, planted, by_x = scene
    faces = analyze_image(models, img, mode="all")
    assert [_which(f, planted) for f in faces] == by_x
    for f, k in zip(faces, by_x):
        assert f.meta["landmarks"] == "retinaface"
        np.testing.assert_allclose(f.kps, planted[k].keypoints(), atol=1e-3)
        assert f.face_rgb_white.shape == (512, 512, 3) and tuple(f.face_gray_white.shape) == (1, 3, 512, 512)
    # Different faces really give different crops and embeddings.
    assert not np.array_equal(faces[0].aligned_bgr, faces[1].aligned_bgr)
    assert np.abs(faces[0].embedding - faces[1].embedding).max() > 1e-3
