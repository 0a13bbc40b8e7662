"""Shared fixtures: tiny checkpoints in the real layouts, built once per session."""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(Path(__file__).parent) not in sys.path:  # test helper modules (node_graphs, faces_fixtures) import by name
    sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("IDVIDEO_NO_COMFY", "1")  # tests run outside ComfyUI unless a test starts one

# Tiny models: thread start-up costs more than it saves, and contends with a busy CI box. Numerics are unaffected.
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def pack():
    """The pack imported the way ComfyUI imports a custom node (its folder as a package)."""
    name = "idvideo_pack"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def consisid_folder(tmp_path_factory):
    """A tiny random ConsisID-preview folder (diffusers components + face_encoder/)."""
    from idvideo_core.testing import build_consisid_folder

    return build_consisid_folder(tmp_path_factory.mktemp("models") / "consisid" / "ConsisID-preview")


@pytest.fixture()
def models_env(consisid_folder, monkeypatch):
    """Point the pack's model search (outside ComfyUI) at the tiny models tree."""
    models = consisid_folder.parents[1]
    monkeypatch.setenv("IDVIDEO_MODELS_DIR", str(models))
    return models
