"""A creator's first minutes in a real ComfyUI (issue 14): warnings reach the browser and the video, a conflicting
size is refused when the prompt is queued, the Wan loader's lists follow the models found. Skips without
``COMFYUI_PATH`` (see conftest.py)."""
from __future__ import annotations

import json
import time
import urllib.error

import idv_comfy_support as support
import pytest
from test_integration import tiny_prompt

from idvideo_core.workflow import ui_to_api

pytestmark = pytest.mark.comfyui
TEMPLATE = support.REPO_ROOT / "workflows" / "multi_identity_concatid.json"


def _template_prompt(object_info):
    wf = json.loads(TEMPLATE.read_text())
    return wf, tiny_prompt(ui_to_api(wf, object_info, strict=True))


def _sampler(prompt):
    return next(n for n in prompt.values() if n["class_type"] == "IDVSampler")


def _run_collecting(server, prompt, workflow, timeout=420.0):
    """Queue and read the websocket until the prompt ends; return (status, [idvideo.warnings data])."""
    client = support.new_client_id()
    ws = support.connect_ws(server, client)
    warnings, status = [], None
    try:
        pid = server.queue(prompt, client, workflow)
        deadline = time.monotonic() + timeout
        while status is None:
            ws.settimeout(max(deadline - time.monotonic(), 0.1))
            raw = ws.recv()
            if not isinstance(raw, str):
                continue
            msg = json.loads(raw)
            kind, data = msg.get("type"), msg.get("data") or {}
            if kind == "idvideo.warnings":
                warnings.append(data)
            elif data.get("prompt_id") == pid and kind in ("execution_success", "execution_error"):
                status = kind
            elif kind == "executing" and data.get("node") is None and data.get("prompt_id") == pid:
                status = "execution_success"
    finally:
        ws.close()
    return status, warnings


def test_warnings_reach_the_browser_and_the_video(comfy_server, object_info):
    from idvideo_core.video import read_video_metadata

    wf, prompt = _template_prompt(object_info)
    _sampler(prompt)["inputs"]["num_frames"] = 6          # not 4k+1 (Wan) nor 8k+1 (CogVideoX): snapped, with a warning
    _sampler(prompt)["inputs"]["seed"] += 1234
    before = {p for p in comfy_server.output_dir.rglob("*.mp4")}
    status, warnings = _run_collecting(comfy_server, prompt, wf)
    assert status == "execution_success"
    sampler_id = next(k for k, n in prompt.items() if n["class_type"] == "IDVSampler")
    on_sampler = [w for d in warnings if str(d["node"]) == sampler_id for w in d["warnings"]]
    assert any("k+1" in w for w in on_sampler), warnings
    new = sorted({p for p in comfy_server.output_dir.rglob("*.mp4")} - before)
    listed = read_video_metadata(new[-1])["idvideo_warnings"]
    assert any(w["node"] == sampler_id and "k+1" in w["message"] for w in listed)


def test_conflicting_size_is_refused_when_queued(comfy_server, object_info):
    wf, prompt = _template_prompt(object_info)
    concat = next(n for n in prompt.values() if n["class_type"] == "IDVMultiIdentityConcat")
    _sampler(prompt)["inputs"]["width"] = concat["inputs"]["width"] + 16
    payload = {"prompt": prompt, "client_id": support.new_client_id()}
    with pytest.raises(urllib.error.HTTPError) as err:
        support.http_json(comfy_server.base + "/prompt", payload)
    body = err.value.read().decode(errors="replace")
    assert err.value.code == 400 and "was made at" in body and "Concatenator" in body, body[:2000]
    _sampler(prompt)["inputs"]["width"] = 0                # auto: follows the concatenator, accepted
    assert support.http_json(comfy_server.base + "/prompt", payload)["prompt_id"]


def test_wan_loader_lists_follow_the_models(object_info):
    required = object_info["IDVWanModelLoader"]["input"]["required"]
    dit = required["dit"]
    opts = dit[1] if len(dit) > 1 else {}
    assert opts.get("default") == "second_stage_adaln.pt"
    assert opts["idv_families"]["second_stage_adaln.pt"] == ["Concat-ID-Wan"]
    assert required["base_folder"][1].get("default") == "Wan2.1-T2V-1.3B-Diffusers"
    faces = object_info["IDVFaceModelsLoader"]["input"]["required"]["provider"]
    assert faces[1].get("default") == "auto (best available)"
