"""The pack inside a real ComfyUI (``--cpu``): it imports, describes its nodes well, and runs every template.

Each template is converted with :func:`idvideo_core.workflow.ui_to_api` against the server's own ``/object_info`` and
queued with the UI workflow in ``extra_pnginfo`` (as the frontend does), so the written video must carry the workflow
in its metadata. Skips without ``COMFYUI_PATH`` (see conftest.py).
"""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import idv_comfy_support as support
import pytest

from idvideo_core.workflow import ui_to_api, validate_ui_workflow

pytestmark = pytest.mark.comfyui
WORKFLOWS = support.WORKFLOWS
VIDEO_EXTS = {".mp4", ".webm", ".mkv", ".mov", ".gif"}
RUN_TIMEOUT = 420.0


def _pack_nodes(object_info: dict) -> dict:
    module = f"custom_nodes.{support.PACK_MODULE}"
    return {k: v for k, v in object_info.items() if v.get("python_module") == module}


def _videos(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_EXTS}


def test_pack_imports_cleanly(comfy_server):
    log = comfy_server.log()
    failed = [line for line in log.splitlines() if "IMPORT FAILED" in line and "custom_nodes" in line]
    assert not failed, "\n".join(failed)
    assert f"custom_nodes/{support.PACK_MODULE}" in log, "the pack was not loaded from the private custom_nodes"
    cannot = [line for line in log.splitlines() if "Cannot import" in line and support.PACK_MODULE in line]
    assert not cannot, "\n".join(cannot)


def test_object_info_describes_every_pack_node(object_info):
    pack = support.load_pack()
    nodes = _pack_nodes(object_info)
    assert set(nodes) == set(pack.NODE_CLASS_MAPPINGS), "ComfyUI lists a different node set than the pack registers"
    problems = []
    for name, info in sorted(nodes.items()):
        if not str(info.get("category", "")).startswith("IDVideo/"):
            problems.append(f"{name}: category {info.get('category')!r} is not under IDVideo/")
        if not info.get("display_name") or info["display_name"] == name:
            problems.append(f"{name}: no display name (NODE_DISPLAY_NAME_MAPPINGS)")
        if not str(info.get("description", "")).strip():
            problems.append(f"{name}: empty DESCRIPTION")
        for section in ("required", "optional"):
            for inp, spec in (info.get("input", {}).get(section) or {}).items():
                opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
                if not str(opts.get("tooltip", "")).strip():
                    problems.append(f"{name}.{inp}: no tooltip")
    assert not problems, "\n".join(problems)


def test_templates_are_served(comfy_server):
    if not WORKFLOWS:
        pytest.skip("workflows/ holds no *.json templates yet")
    listed = support.http_json(comfy_server.base + "/workflow_templates")
    assert sorted(listed.get(support.PACK_MODULE, [])) == sorted(p.stem for p in WORKFLOWS)


def tiny_prompt(prompt: dict, steps: int = 2) -> dict:
    """Shrink a template's prompt to what the tiny random checkpoints generate (their size, few frames and steps).

    The templates carry the real models' settings (e.g. ConsisID 720x480, 49 frames, 50 steps); the tiny
    ConsisID only has positional embeddings for its own size. Only the values change, never the graph.
    """
    from idvideo_core.testing.tiny_consisid import TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH

    overrides = {"width": TINY_WIDTH, "height": TINY_HEIGHT, "num_frames": TINY_FRAMES, "steps": steps}
    prompt = copy.deepcopy(prompt)
    for node in prompt.values():
        for name, value in overrides.items():
            if name in node["inputs"] and not isinstance(node["inputs"][name], list):
                node["inputs"][name] = value
    return prompt


def _run(server, prompt: dict, workflow: dict | None, timeout: float = RUN_TIMEOUT) -> dict:
    client = support.new_client_id()
    ws = support.connect_ws(server, client)
    try:
        pid = server.queue(prompt, client, workflow)
        return support.wait_for_prompt(ws, pid, timeout)
    finally:
        ws.close()


@pytest.mark.parametrize("path", WORKFLOWS or [None], ids=[p.name for p in WORKFLOWS] or ["no-workflows"])
def test_template_runs_and_embeds_workflow(path, comfy_server, object_info):
    if path is None:
        pytest.skip("workflows/ holds no *.json templates yet")
    wf = json.loads(path.read_text())
    assert validate_ui_workflow(wf, object_info) == []
    prompt = ui_to_api(wf, object_info, strict=True)
    before = _videos(comfy_server.output_dir)
    t0 = time.monotonic()
    result = _run(comfy_server, tiny_prompt(prompt), wf)
    elapsed = time.monotonic() - t0
    assert result["status"] == "success", json.dumps(result.get("error"), indent=1)[:4000]
    new = sorted(_videos(comfy_server.output_dir) - before)
    assert new, f"{path.name} ran ({elapsed:.1f}s) but wrote no video into {comfy_server.output_dir}"
    from idvideo_core.video import read_video_metadata

    meta = read_video_metadata(new[-1])
    assert meta.get("workflow") == wf, f"{new[-1].name} does not carry the template's workflow"
    assert isinstance(meta.get("prompt"), dict) and set(meta["prompt"]) == set(prompt)
    print(f"{path.name}: {elapsed:.1f}s -> {new[-1].name}")


def _bust_cache(prompt: dict, salt: int) -> dict:
    """Change every seed so ComfyUI's cache cannot answer the rerun without sampling."""
    prompt = copy.deepcopy(prompt)
    for node in prompt.values():
        for name in ("seed", "noise_seed"):
            if isinstance(node["inputs"].get(name), int):
                node["inputs"][name] += salt
    return prompt


def test_interrupt_then_rerun(comfy_server, object_info):
    if not WORKFLOWS:
        pytest.skip("workflows/ holds no *.json templates yet")
    wf = json.loads(WORKFLOWS[0].read_text())
    prompt = _bust_cache(tiny_prompt(ui_to_api(wf, object_info), steps=40), 1000)
    client = support.new_client_id()
    ws = support.connect_ws(comfy_server, client)
    try:
        pid = comfy_server.queue(prompt, client, wf)
        deadline = time.monotonic() + RUN_TIMEOUT
        while True:  # interrupt at the first progress step of the run (the sampler's ProgressBar)
            ws.settimeout(max(1.0, deadline - time.monotonic()))
            raw = ws.recv()
            if not isinstance(raw, str):
                continue
            msg = json.loads(raw)
            if msg.get("type") == "progress" and msg["data"].get("prompt_id") == pid:
                comfy_server.interrupt()
                break
            if msg.get("type") in ("execution_success", "execution_error") and msg["data"].get("prompt_id") == pid:
                pytest.fail(f"the run ended ({msg['type']}) before any progress message: nothing to interrupt")
        result = support.wait_for_prompt(ws, pid, 120)
    finally:
        ws.close()
    assert result["status"] == "interrupted", result
    rerun = _run(comfy_server, _bust_cache(tiny_prompt(prompt), 1), wf)
    assert rerun["status"] == "success", json.dumps(rerun.get("error"), indent=1)[:4000]
