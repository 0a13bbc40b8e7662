"""The pack's CLI against a real ComfyUI: ``python -m idvideo_core run-workflow <template> --server URL``.

Each template is converted with the server's ``/object_info``, queued, followed over the websocket (progress lines on
stderr) and its output files listed. With ``--preview-method auto`` on the server, the Wan sampler's live latent
previews (binary websocket frames) must arrive too. Skips without ``COMFYUI_PATH`` (see conftest.py).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import idv_comfy_support as support
import pytest

pytestmark = pytest.mark.comfyui
WORKFLOWS = support.WORKFLOWS


def _tiny_sets(seed: int) -> list[str]:
    from idvideo_core.testing.tiny_consisid import TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH

    values = {"width": TINY_WIDTH, "height": TINY_HEIGHT, "num_frames": TINY_FRAMES, "steps": 2, "seed": seed}
    return [arg for k, v in values.items() for arg in ("--set", f"{k}={v}")]


@pytest.mark.parametrize("path", WORKFLOWS or [None], ids=[p.name for p in WORKFLOWS] or ["no-workflows"])
def test_cli_runs_template_on_server(path, comfy_server):
    if path is None:
        pytest.skip("workflows/ holds no *.json templates yet")
    env = {k: v for k, v in os.environ.items() if k != "IDVIDEO_NO_COMFY"}
    cmd = [sys.executable, "-m", "idvideo_core", "run-workflow", str(path), "--server", comfy_server.base,
           "--timeout", "420", *_tiny_sets(seed=4242)]
    proc = subprocess.run(cmd, cwd=support.REPO_ROOT, env=env, capture_output=True, text=True, timeout=480, check=False)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}"
    assert "queued prompt" in proc.stderr and "running" in proc.stderr
    videos = [line.split("output: ", 1)[1] for line in proc.stdout.splitlines()
              if line.startswith("output: output/") and line.endswith((".mp4", ".webm", ".gif"))]
    assert videos, proc.stdout
    rel = videos[-1].split("/", 1)[1]
    assert (comfy_server.output_dir / rel).is_file()
    print(f"{path.name}: {videos[-1]}")


def test_wan_sampler_sends_latent_previews(comfy_server):
    from idvideo_core.remote import parse_overrides, run_workflow

    # a template whose model is Wan (its loader node says so; the names no longer do: multi_identity_concatid is
    # Concat-ID-CogVideoX)
    path = next((p for p in WORKFLOWS if any(n.get("type") == "IDVWanModelLoader"
                                             for n in json.loads(p.read_text()).get("nodes", []))), None)
    if path is None:
        pytest.skip("no Wan template in workflows/")
    lines: list[str] = []
    result = run_workflow(path, comfy_server.base, parse_overrides([a for a in _tiny_sets(seed=777) if a != "--set"]),
                          timeout=420, say=lines.append)
    assert result.status == "success", result.error
    assert result.progress_events >= 2, lines
    assert result.preview_frames >= 1, "no latent preview frame came over the websocket"
    print(f"{path.name}: {result.progress_events} progress messages, {result.preview_frames} preview frames")
