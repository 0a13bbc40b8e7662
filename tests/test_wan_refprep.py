"""Concat-ID reference preprocessing: parsing-mask labels and the 40 % gate, the Segformer folder loader, the chain."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from idvideo_core.backbones.wan.refprep import (DROP_LABELS, FaceParser, aligned_face, apply_parsing,
                                                 concatid_reference, find_face_parsing_folder)
from idvideo_core.errors import MissingModelError
from idvideo_core.testing.tiny_wan import write_face_parsing_folder
from idvideo_core.types import DetectedFace


def test_drop_labels_and_gate():
    assert DROP_LABELS == (0, 14, 15, 16, 18)
    rgb = np.full((10, 10, 3), 200, np.uint8)
    labels = np.full((10, 10), 1)                  # skin
    labels[:, :3] = 0                              # 30 % background
    labels[0, 3:] = 17                             # neck is kept
    labels[1, 3:] = 13                             # hair is kept
    out, applied = apply_parsing(rgb, labels)
    assert applied and out[:, :3].max() == 0 and out[:, 3:].min() == 200
    for lab in (14, 15, 16, 18):
        l2 = labels.copy()
        l2[5, 5] = lab
        assert apply_parsing(rgb, l2)[0][5, 5].max() == 0
    labels[:, :7] = 18                             # foreground 30 % < 40 % → untouched
    out, applied = apply_parsing(rgb, labels)
    assert not applied and np.array_equal(out, rgb)
    labels[:, :6] = 0                              # exactly 40 % foreground → applied
    labels[:, 6:] = 1
    assert apply_parsing(rgb, labels)[1]


def _face(rng):
    img = (rng.random((300, 260, 3)) * 255).astype(np.uint8)
    kps = np.array([[100, 120], [160, 120], [130, 150], [105, 185], [155, 185]], np.float32)
    return DetectedFace(image_index=0, bbox=np.array([70, 80, 190, 220], np.float32), det_score=0.9, kps=kps,
                        embedding=None, source_rgb=img)


def test_parser_folder_and_full_chain(tmp_path):
    folder = write_face_parsing_folder(tmp_path / "concatid" / "face-parsing")
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    parser = FaceParser(folder)
    rng = np.random.default_rng(0)
    face = _face(rng)
    crop = aligned_face(face)
    assert crop.shape == (448, 448, 3)
    labels = parser.labels(crop)
    assert labels.shape == (448, 448) and labels.max() < 19
    ref = concatid_reference(face, 832, 480, parser)
    assert ref.image.shape == (1, 480, 832, 3) and ref.kind == "face"
    assert ref.image[0, :, :176].max() == 0                    # black letterbox
    expect, _ = apply_parsing(crop, labels)
    from idvideo_core.backbones.wan.references import letterbox_black
    assert torch.equal(ref.image, letterbox_black(expect, 832, 480))
    # no face → the whole image
    face.whole_image_fallback = True
    assert aligned_face(face).shape == (300, 260, 3)


def test_missing_parser_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("IDVIDEO_MODELS_DIR", str(tmp_path))
    with pytest.raises(MissingModelError) as e:
        find_face_parsing_folder()
    assert "jonathandinu/face-parsing" in str(e.value)
