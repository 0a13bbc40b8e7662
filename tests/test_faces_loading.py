"""Finding and loading the face models: search order, provider fallback, clear errors for missing/bad files."""
from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from faces_fixtures import *

from idvideo_core.errors import CorruptFileError, MissingModelError
from idvideo_core.faces.models import FaceModels, load_face_models
from idvideo_core.faces.onnx_session import open_session, resolve_providers


def _link(src: Path, dst: Path):
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


@pytest.fixture()
def models_dir(tmp_path, monkeypatch):
    d = tmp_path / "models"
    d.mkdir()
    monkeypatch.setenv("IDVIDEO_MODELS_DIR", str(d))
    return d


def test_loads_from_comfyui_shared_folders_with_cuda_fallback(models_dir, t1_setup, caplog):
    """insightface/models/antelopev2, facexlib/, clip_vision/ — no ConsisID folder at all; CUDA → CPU is logged."""
    fe = t1_setup[0] / "face_encoder"
    for name in ("scrfd_10g_bnkps.onnx", "glintr100.onnx"):
        _link(fe / "models" / "antelopev2" / name, models_dir / "insightface" / "models" / "antelopev2" / name)
    for name in ("detection_Resnet50_Final.pth", "parsing_bisenet.pth"):
        _link(fe / name, models_dir / "facexlib" / name)
    _link(fe / "EVA02_CLIP_L_336_psz14_s6B.pt", models_dir / "clip_vision" / "EVA02_CLIP_L_336_psz14_s6B.pt")
    with caplog.at_level(logging.WARNING, logger="idvideo"):
        fm = load_face_models(provider="CUDA", device="cpu")
    assert isinstance(fm, FaceModels)
    assert "CUDAExecutionProvider is not available" in caplog.text and "falling back to CPU" in caplog.text
    assert fm.provider == "CPU"
    assert fm.files.scrfd.is_relative_to(models_dir / "insightface")
    assert fm.files.retinaface.parent == models_dir / "facexlib"
    assert fm.files.eva.parent == models_dir / "clip_vision"
    assert fm.eva.image_size == 336 and fm.dtype == torch.float32


@pytest.mark.parametrize("choice", ["ROCm", "CoreML", "Vulkan"])
def test_other_providers_fall_back_with_a_log(choice, caplog):
    with caplog.at_level(logging.WARNING, logger="idvideo"):
        assert resolve_providers(choice) == ["CPUExecutionProvider"]
    assert "CPU" in caplog.text
    assert resolve_providers("cpu") == ["CPUExecutionProvider"]


def test_missing_files_list_every_searched_path(models_dir, tmp_path):
    explicit = tmp_path / "MyConsisID"
    with pytest.raises(MissingModelError) as err:
        load_face_models(device="cpu", consisid_folder=explicit)
    msg = str(err.value)
    for expected in (models_dir / "insightface" / "models" / "antelopev2" / "scrfd_10g_bnkps.onnx",
                     explicit / "face_encoder" / "models" / "antelopev2" / "glintr100.onnx",
                     models_dir / "facexlib" / "detection_Resnet50_Final.pth",
                     explicit / "face_encoder" / "parsing_bisenet.pth",
                     models_dir / "clip_vision" / "EVA02_CLIP_L_336_psz14_s6B.pt",
                     models_dir / "idvideo" / "EVA02_CLIP_L_336_psz14_s6B.pt"):
        assert str(expected) in msg
    assert "antelopev2.zip" in msg and "ConsisID-preview" in msg and "never downloads" in msg


def test_consisid_folder_under_its_key_is_found(models_dir, face_parts):
    """A ConsisID-preview folder under models/consisid/ supplies face_encoder/ without any explicit path."""
    root = make_consisid_root(face_parts, models_dir / "consisid" / "ConsisID-preview", (112, 112), [])
    (root / "model_index.json").write_text("{}")
    from idvideo_core.faces.locate import find_face_model_files

    files = find_face_model_files()
    assert files.scrfd == root / "face_encoder" / "models" / "antelopev2" / "scrfd_10g_bnkps.onnx"
    assert files.eva == root / "face_encoder" / "EVA02_CLIP_L_336_psz14_s6B.pt"


def test_nested_antelopev2_is_named(models_dir, face_parts):
    nested = models_dir / "insightface" / "models" / "antelopev2" / "antelopev2"
    _link(face_parts / "models" / "antelopev2" / "glintr100.onnx", nested / "glintr100.onnx")
    with pytest.raises(MissingModelError) as err:
        load_face_models(device="cpu")
    msg = str(err.value)
    assert "nested one folder too deep" in msg
    assert str(nested / "glintr100.onnx") in msg


def test_truncated_onnx_is_corrupt(tmp_path, face_parts, t1_setup):
    root = make_consisid_root(face_parts, tmp_path / "ConsisID-preview", (112, 112), [])
    scrfd = root / "face_encoder" / "models" / "antelopev2" / "scrfd_10g_bnkps.onnx"
    data = (t1_setup[0] / "face_encoder" / "models" / "antelopev2" / "scrfd_10g_bnkps.onnx").read_bytes()
    scrfd.unlink()
    scrfd.write_bytes(data[: len(data) // 3])
    with pytest.raises(CorruptFileError, match="scrfd_10g_bnkps.onnx") as err:
        load_face_models(device="cpu", consisid_folder=root)
    assert "download it again" in str(err.value)


def test_open_session_reports_fallback_for_real_file(face_parts, caplog):
    with caplog.at_level(logging.WARNING, logger="idvideo"):
        sess = open_session(face_parts / "models" / "antelopev2" / "glintr100.onnx", "CUDA")
    assert sess.get_providers()[0] == "CPUExecutionProvider"
    assert "CUDAExecutionProvider" in caplog.text
