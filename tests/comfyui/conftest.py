"""Fixtures for the real-ComfyUI tests: one ComfyUI server per session with the pack and tiny models installed.

Needs ``COMFYUI_PATH`` pointing at a ComfyUI checkout (see ``tools/setup_comfyui.md``); without it every test here
skips with that instruction. The server runs ``--cpu`` on a free loopback port, with its own input/output/user folders
and an ``--extra-model-paths-config`` yaml that adds a private ``custom_nodes`` folder (the pack symlinked into it) and
the tiny model tree built by ``idvideo_core.testing.build_all``. The checkout itself is never modified.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import idv_comfy_support as support

WORKFLOWS = support.WORKFLOWS
SKIP_REASON = ("COMFYUI_PATH is not set (or has no main.py): point it at a ComfyUI checkout (0.3.64 and 0.8.0 are "
               "tested) to run the "
               "real-ComfyUI tests, see tools/setup_comfyui.md")


def _input_images(workflows: list[Path]) -> set[str]:
    """File names the templates' LoadImage nodes expect in ComfyUI's input folder."""
    names = set()
    for path in workflows:
        for node in json.loads(path.read_text()).get("nodes", []):
            if node.get("type") == "LoadImage" and node.get("widgets_values"):
                names.add(str(node["widgets_values"][0]))
    return names


def write_face_image(path: Path, size: tuple[int, int] = (1024, 708)) -> None:
    """A smooth RGB image of the size the tiny face detector plants its face in (see testing.tiny_faces)."""
    import numpy as np
    from PIL import Image

    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([xx * 255 // w, yy * 255 // h, np.full_like(xx, 128)], axis=-1).astype("uint8")
    Image.fromarray(rgb).save(path)


def pytest_report_header(config):
    root = support.comfyui_path()
    if root is None:
        return "ComfyUI: COMFYUI_PATH not set (tests/comfyui skip)"
    return f"ComfyUI {support.comfyui_version(root)} at {root}; comfyui-frontend-package {support.frontend_version()}"


@pytest.fixture(scope="session")
def comfy_root() -> Path:
    root = support.comfyui_path()
    if root is None:
        pytest.skip(SKIP_REASON)
    return root


@pytest.fixture(scope="session")
def comfy_server(comfy_root, tmp_path_factory):
    from idvideo_core.testing import build_all

    work = tmp_path_factory.mktemp("comfyui_instance")
    models = build_all(work / "models")
    model_dirs = {p.name: p for p in sorted(models.iterdir()) if p.is_dir()}
    yaml_path = support.prepare_instance(work, support.REPO_ROOT, model_dirs)
    settings = work / "user" / "default" / "comfy.settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps({"Comfy.TutorialCompleted": True, "Comfy.Validation.Workflows": True}))
    # --preview-method auto: the sampler's latent previews (tiny Wan latents have 16 channels) are exercised too
    server = support.ComfyServer(comfy_root, work, yaml_path, extra_args=["--preview-method", "auto"])
    server.input_dir.mkdir(parents=True, exist_ok=True)
    for name in _input_images(WORKFLOWS) | {"example.png"}:
        write_face_image(server.input_dir / name)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def object_info(comfy_server) -> dict:
    return comfy_server.object_info()


@pytest.fixture(scope="session")
def out_dir(tmp_path_factory) -> Path:
    """Where screenshots and other artefacts go: $IDVIDEO_TEST_OUT if set, else a pytest tmp folder."""
    import os

    target = os.environ.get("IDVIDEO_TEST_OUT")
    path = Path(target) if target else tmp_path_factory.mktemp("out")
    path.mkdir(parents=True, exist_ok=True)
    return path
