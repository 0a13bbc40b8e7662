"""Fixtures for the face tests: tiny face models in the real layouts, built once per session, and the reference.

The heavy files (RetinaFace-R50, BiSeNet, ParseNet, EVA, ArcFace) are written once and hard-linked into each
``face_encoder/`` folder; only the planted SCRFD differs per test image. The reference is diffusers'
``consisid_utils`` (``prepare_face_models`` + ``process_face_embeddings_infer``) run on the same folders, with its
EVA model name pointed at the tiny EVA config in ``consisid_eva_clip``'s own registry.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from idvideo_core.faces.analyze import downscale_long_side
from idvideo_core.testing import tiny_faces as tf

IMAGES = Path(__import__("importlib").util.find_spec("insightface").origin).parent / "data" / "images"
T1 = IMAGES / "t1.jpg"
TOM = IMAGES / "Tom_Hanks_54745.png"
SHARED = ("models/antelopev2/glintr100.onnx", "detection_Resnet50_Final.pth", "parsing_bisenet.pth",
          "parsing_parsenet.pth", "EVA02_CLIP_L_336_psz14_s6B.pt")


def read_rgb(path: Path) -> np.ndarray:
    """The image as the reference receives an array: RGB uint8 (EXIF-free test photos)."""
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="session")
def face_parts(tmp_path_factory) -> Path:
    """The shared face files, written once: a face_encoder/ folder without its SCRFD."""
    root = tmp_path_factory.mktemp("face_parts") / "face_encoder"
    tf.write_tiny_face_encoder(root, faces=[])
    (root / "models" / "antelopev2" / "scrfd_10g_bnkps.onnx").unlink()
    sd = torch.load(root / "detection_Resnet50_Final.pth", weights_only=True)
    for k in range(3):  # the same network, but no anchor ever scores above the threshold
        sd[f"ClassHead.{k}.conv1x1.bias"].view(2, 2)[:, 1] = -10.0
    torch.save(sd, root.parent / "silent_retinaface.pth")
    return root


def make_consisid_root(parts: Path, root: Path, image_size, faces) -> Path:
    """A ConsisID-style root whose face_encoder/ holds the shared files plus an SCRFD planting ``faces``."""
    fe = root / "face_encoder"
    for rel in SHARED:
        dst = fe / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(parts / rel, dst)
        except OSError:
            shutil.copy2(parts / rel, dst)
    tf.write_tiny_scrfd(fe / "models" / "antelopev2" / "scrfd_10g_bnkps.onnx", image_size, faces)
    return root


_RETINA_CACHE: dict = {}


class _ZeroFeatures(torch.nn.Module):
    """Stands in for the ResNet-50 body + FPN + SSH when only *planting positions* are computed."""

    def forward(self, x):
        if isinstance(x, torch.Tensor):
            return {"input": x}
        h, w = x[0].shape[2:]
        return [torch.zeros(1, 256, -(-h // s), -(-w // s)) for s in (8, 16, 32)]


def retina_rows(parts: Path, rgb: np.ndarray) -> np.ndarray:
    """Where the tiny RetinaFace fires on an (already ≤1024) image, to plant SCRFD faces on the same spots.

    The tiny heads have zero weights, so their outputs are their biases whatever the features are; we therefore
    skip the ResNet-50 body here (the expensive part) and run facexlib's own ``detect_faces`` decode + NMS. The
    tests then run the real network and check that it finds the planted faces.
    """
    from idvideo_core.faces.facexlib_nets import RETINAFACE_CONF, load_retinaface

    key = rgb.shape
    if key not in _RETINA_CACHE:
        net = load_retinaface(parts / "detection_Resnet50_Final.pth")
        net.body = _ZeroFeatures()
        net.fpn = _ZeroFeatures()
        net.ssh1 = net.ssh2 = net.ssh3 = torch.nn.Identity()
        with torch.no_grad():
            _RETINA_CACHE[key] = np.asarray(net.detect_faces(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), RETINAFACE_CONF))
    return _RETINA_CACHE[key]


def center_row(rows: np.ndarray, w: int, h: int) -> int:
    """The RetinaFace row facexlib's ``only_center_face`` keeps."""
    d = [np.linalg.norm([(r[0] + r[2]) / 2 - w / 2, (r[1] + r[3]) / 2 - h / 2]) for r in rows]
    return int(np.argmin(d))


@pytest.fixture(scope="session")
def t1_rgb() -> np.ndarray:
    return read_rgb(T1)


def spread_rows(rows: np.ndarray, w: int, h: int, n: int) -> list[int]:
    """``n`` RetinaFace rows inside the image, pairwise non-overlapping, starting with the centre face."""
    from idvideo_core.faces.select import iou

    inside = [i for i, r in enumerate(rows) if r[0] >= 0 and r[1] >= 0 and r[2] <= w and r[3] <= h]
    picked = [center_row(rows, w, h)]
    for i in sorted(inside, key=lambda i: -np.hypot((rows[i][0] + rows[i][2]) / 2 - w / 2,
                                                    (rows[i][1] + rows[i][3]) / 2 - h / 2)):
        if len(picked) == n:
            break
        if all(iou(rows[i][:4], rows[j][:4]) == 0 for j in picked):
            picked.append(i)
    assert len(picked) == n
    return picked


@pytest.fixture(scope="session")
def t1_setup(face_parts, t1_rgb, tmp_path_factory):
    """t1.jpg (six people): SCRFD's largest face planted on RetinaFace's centre face, two smaller faces elsewhere."""
    small = downscale_long_side(t1_rgb)
    h, w = small.shape[:2]
    rows = retina_rows(face_parts, small)
    c, *others = spread_rows(rows, w, h, 3)
    faces = [tf.planted_face_from_retina(rows[c], 0.91)]
    faces += [tf.planted_face_from_retina(rows[i], 0.8 - 0.05 * k, shrink=0.12) for k, i in enumerate(others)]
    root = make_consisid_root(face_parts, tmp_path_factory.mktemp("t1") / "ConsisID-preview", (w, h), faces)
    return root, faces, rows[c]


@pytest.fixture(scope="session")
def tom_setup(face_parts, tmp_path_factory):
    """Tom_Hanks_54745.png (112 px): SCRFD planted on RetinaFace's centre face."""
    rgb = read_rgb(TOM)
    h, w = rgb.shape[:2]
    rows = retina_rows(face_parts, rgb)
    c = center_row(rows, w, h)
    faces = [tf.planted_face_from_retina(rows[c], 0.93)]
    root = make_consisid_root(face_parts, tmp_path_factory.mktemp("tom") / "ConsisID-preview", (w, h), faces)
    return root, faces, rgb


@pytest.fixture(scope="session")
def tom_empty_root(face_parts, tmp_path_factory) -> Path:
    """Tom image size, SCRFD that finds nothing (RetinaFace still does: the reference's ArcFace fallback)."""
    return make_consisid_root(face_parts, tmp_path_factory.mktemp("tom_empty") / "ConsisID-preview", (112, 112), [])


@pytest.fixture(scope="session")
def t1_models(t1_setup):
    from idvideo_core.faces.models import load_face_models

    return load_face_models("CPU", "cpu", torch.float32, consisid_folder=t1_setup[0])


def with_scrfd(models, consisid_root: Path):
    """The same loaded torch models with another folder's planted SCRFD (saves reloading R50/BiSeNet/EVA)."""
    from idvideo_core.faces.onnx_session import open_session
    from idvideo_core.faces.scrfd import ScrfdDetector

    path = consisid_root / "face_encoder" / "models" / "antelopev2" / "scrfd_10g_bnkps.onnx"
    return dataclasses.replace(models, detector=ScrfdDetector(open_session(path)))


# --------------------------------------------------------------------------------------------------- reference
class CapturingTower(torch.nn.Module):
    """Delegates to the reference EVA visual model and keeps its input (to compare the EVA pixels exactly)."""

    def __init__(self, visual):
        super().__init__()
        self.visual = visual
        self.image_size = visual.image_size
        self.inputs: list[torch.Tensor] = []

    def forward(self, x, **kw):
        self.inputs.append(x.detach().clone())
        return self.visual(x, **kw)


@pytest.fixture(scope="session")
def reference(t1_setup):
    """diffusers' ``prepare_face_models`` on the t1 folder (CUDA providers hard-coded: ORT falls back to CPU)."""
    pytest.importorskip("consisid_eva_clip")
    from consisid_eva_clip import factory

    from idvideo_core.testing.tiny_eva import reference_model_config, tiny_eva_config

    mp = pytest.MonkeyPatch()
    mp.setitem(factory._MODEL_CONFIGS, "EVA02-CLIP-L-14-336", reference_model_config(tiny_eva_config()))
    mp.setenv("RoPE", os.environ.get("RoPE", "0"))
    try:
        from diffusers.pipelines.consisid import consisid_utils as cu

        parts = cu.prepare_face_models(str(t1_setup[0]), torch.device("cpu"), torch.float32)
    finally:
        mp.undo()
    return cu, parts


def reference_app(consisid_root: Path):
    """The reference's FaceAnalysis for another folder, built exactly as ``prepare_face_models`` does."""
    from insightface.app import FaceAnalysis

    app = FaceAnalysis(name="antelopev2", root=os.path.join(str(consisid_root), "face_encoder"),
                       providers=["CUDAExecutionProvider"])
    app.prepare(ctx_id=0, det_size=(640, 640))
    return app


def run_reference(reference, rgb: np.ndarray, app=None):
    """``process_face_embeddings_infer`` on an RGB array; returns its outputs and the EVA input it built."""
    cu, (helper1, helper2, clip_model, main_app, mean, std) = reference
    tower = CapturingTower(clip_model)
    with torch.no_grad():
        out = cu.process_face_embeddings_infer(helper1, tower, helper2, mean, std, app or main_app,
                                               torch.device("cpu"), torch.float32, rgb, is_align_face=True)
    return out, tower.inputs[-1]
