"""Every template in ComfyUI's real frontend (headless Debian Chromium over CDP).

For each ``workflows/*.json``: load it with ``app.loadGraphData``, check every node type is registered, compare the
frontend's own ``graphToPrompt()`` with :func:`idvideo_core.workflow.ui_to_api` (so the converter is checked against
the real thing), validate what the frontend would save, and write a screenshot to the out folder
(``$IDVIDEO_TEST_OUT`` or a pytest tmp folder; ``tools/make_workflows.py --thumbnails`` makes the templates' .jpg
from them). Also checks the pack's JS extension loads without console errors, and that after a run the video plays
inside the Video Combiner node (exactly one <video>: the core frontend's or ours) and the face loader shows its crops. Skips without ``COMFYUI_PATH`` or ``/usr/bin/chromium``
(``apt-get install -y chromium``).
"""
from __future__ import annotations

import json
import shutil
import uuid

import idv_comfy_support as support
import pytest
from idv_browser import Chromium, chromium_available

from idvideo_core.workflow import ui_to_api, validate_ui_workflow

pytestmark = [pytest.mark.comfyui,
              pytest.mark.skipif(not chromium_available(),
                                 reason="/usr/bin/chromium is missing: apt-get install -y chromium")]
WORKFLOWS = support.WORKFLOWS
READY = ("window.app && window.app.graph && window.LiteGraph && "
         "Object.keys(LiteGraph.registered_node_types).length > 50")


def _without_meta_extras(prompt: dict) -> dict:
    """Newer frontends (1.4x+) copy node properties such as ``cnr_id`` into ``_meta``; the server ignores ``_meta``
    except its title, so compare that part only."""
    return {k: {**n, "_meta": {"title": n.get("_meta", {}).get("title")}} if "_meta" in n else n
            for k, n in prompt.items()}


@pytest.fixture(scope="module")
def page(comfy_server, tmp_path_factory):
    browser = Chromium(comfy_server.base + "/", tmp_path_factory.mktemp("chromium_profile"))
    browser.start()
    try:
        browser.wait_for(READY, timeout=120)
        yield browser
    finally:
        browser.stop()


def test_frontend_registers_pack_nodes(page, object_info):
    pack_nodes = [k for k, v in object_info.items() if v.get("python_module") == f"custom_nodes.{support.PACK_MODULE}"]
    assert pack_nodes
    missing = page.evaluate(f"{json.dumps(pack_nodes)}.filter(t => !LiteGraph.registered_node_types[t])")
    assert missing == []
    pack_errors = [e for e in page.page_errors() if support.PACK_MODULE in e]
    assert not pack_errors, "\n".join(pack_errors)


@pytest.mark.parametrize("path", WORKFLOWS or [None], ids=[p.name for p in WORKFLOWS] or ["no-workflows"])
def test_template_loads_in_frontend(path, page, object_info, out_dir):
    if path is None:
        pytest.skip("workflows/ holds no *.json templates yet")
    wf = json.loads(path.read_text())
    text = json.dumps(json.dumps(wf))
    page.evaluate(f"app.loadGraphData(JSON.parse({text}), true, true, null, "
                  "{showMissingNodesDialog: false, showMissingModelsDialog: false}).then(() => true)")
    page.wait_for(f"app.graph.nodes.length === {len(wf['nodes'])}", timeout=30)
    unknown = page.evaluate("app.graph.nodes.filter(n => !LiteGraph.registered_node_types[n.type]).map(n => n.type)")
    assert unknown == [], f"{path.name}: the frontend does not know {unknown}"

    result = page.evaluate("app.graphToPrompt().then(p => ({output: p.output, workflow: p.workflow}))")
    expected = ui_to_api(wf, object_info)
    assert _without_meta_extras(result["output"]) == expected, \
        f"{path.name}: ui_to_api differs from the frontend's graphToPrompt"
    saved = result["workflow"]
    assert validate_ui_workflow(saved, object_info) == [], f"{path.name}: what the frontend saves does not validate"
    # a node without widgets saves no widgets_values in newer frontends (1.5x) and [] in older ones: the same thing
    assert [n.get("widgets_values") or [] for n in sorted(saved["nodes"], key=lambda n: n["id"])] == \
        [n.get("widgets_values") or [] for n in sorted(wf["nodes"], key=lambda n: n["id"])], \
        f"{path.name}: the frontend changed widget values on load (template out of date with the node schemas)"

    page.evaluate("Promise.resolve(app.extensionManager?.command?.execute('Comfy.Canvas.FitView'))"
                  ".catch(() => { app.canvas.ds.scale = 0.6 }).then(() => { app.canvas.setDirty(true, true); "
                  "return true })")
    page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))")
    shot = page.screenshot(out_dir / f"{path.stem}.png")
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")


def _pack_errors(page) -> list[str]:
    return [e for e in page.page_errors() if "idvideo" in e.lower()]


def test_pack_js_extension_loads(page):
    state = page.evaluate("JSON.stringify(window.__idvideo || null)")
    assert state and json.loads(state)["loaded"], "web/js/idvideo.js did not run in the page"
    assert page.evaluate("app.extensions.some(e => e.name === 'IDVideo.Preview')")
    assert not _pack_errors(page), "\n".join(_pack_errors(page))


def test_video_plays_in_combiner_after_run(page, comfy_server, object_info, out_dir):
    from test_integration import tiny_prompt

    path = next((p for p in WORKFLOWS if p.stem == "virtual_tryon"), WORKFLOWS[0] if WORKFLOWS else None)
    if path is None:
        pytest.skip("workflows/ holds no *.json templates yet")
    wf = json.loads(path.read_text())
    page.evaluate(f"app.loadGraphData(JSON.parse({json.dumps(json.dumps(wf))}), true, true, null, "
                  "{showMissingNodesDialog: false, showMissingModelsDialog: false}).then(() => true)")
    page.wait_for(f"app.graph.nodes.length === {len(wf['nodes'])}", timeout=30)
    before = page.evaluate("JSON.stringify(window.__idvideo)")
    prompt = tiny_prompt(ui_to_api(wf, object_info))
    fresh = f"browser_{uuid.uuid4().hex[:8]}.png"  # a new input file: ComfyUI's cache cannot skip the face loader
    shutil.copy(comfy_server.input_dir / "example.png", comfy_server.input_dir / fresh)
    for node in prompt.values():
        if node["class_type"] == "LoadImage":
            node["inputs"]["image"] = fresh
    client = page.evaluate("app.api.clientId || app.api.initialClientId")
    assert client, "the page has no websocket client id"
    comfy_server.queue(prompt, client, wf)  # the page's client id: its websocket gets the executed messages
    page.wait_for("window.__idvideo.videos + window.__idvideo.coreVideo > " +
                  str(sum(json.loads(before)[k] for k in ("videos", "coreVideo"))), timeout=300)
    combiner = [n["id"] for n in wf["nodes"] if n["type"] == "IDVideoCombine"][0]
    page.wait_for("[...document.querySelectorAll('video')].some(v => v.readyState >= 2 && v.videoWidth > 0)",
                  timeout=30)
    videos = page.evaluate("[...document.querySelectorAll('video')].map(v => v.src)")
    assert len(videos) == 1, f"expected one video player (no double preview), found {videos}"
    assert "/view?" in videos[0] and "type=output" in videos[0] and "filename=IDVideo_" in videos[0]
    shown_by = page.evaluate(f"(n => n.videoContainer ? 'core' : (n.__idvVideoSrc ? 'idvideo' : 'none'))"
                             f"(app.graph.getNodeById({combiner}))")
    assert shown_by in ("core", "idvideo")
    faces = [n["id"] for n in wf["nodes"] if n["type"] == "IDVFaceLoader"][0]
    page.wait_for(f"(app.graph.getNodeById({faces}).imgs || []).length > 0", timeout=30)
    assert page.evaluate(f"app.graph.getNodeById({faces}).__idvFaces") >= 1  # the JS read ui.idv_faces
    page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))")
    shot = page.screenshot(out_dir / f"{path.stem}_after_run.png")
    print(f"video shown by: {shown_by}; screenshot: {shot}")
    assert not _pack_errors(page), "\n".join(_pack_errors(page))


def test_warnings_show_on_the_node_and_dit_list_follows_family(page, comfy_server, object_info):
    """Issue 14: a warning logged while the sampler runs appears in a box on the sampler; the Wan loader's dit list
    shows only the files the chosen family can load."""
    from test_integration import tiny_prompt

    wan = [p for p in WORKFLOWS if any(n["type"] == "IDVWanModelLoader" for n in json.loads(p.read_text())["nodes"])]
    if not wan:
        pytest.skip("no Wan template in workflows/")
    wf = json.loads(wan[0].read_text())
    page.evaluate(f"app.loadGraphData(JSON.parse({json.dumps(json.dumps(wf))}), true, true, null, "
                  "{showMissingNodesDialog: false, showMissingModelsDialog: false}).then(() => true)")
    page.wait_for(f"app.graph.nodes.length === {len(wf['nodes'])}", timeout=30)
    loader = [n["id"] for n in wf["nodes"] if n["type"] == "IDVWanModelLoader"][0]
    listed = page.evaluate(f"(n => {{ const f = n.widgets.find(w => w.name === 'family'); f.value = 'Phantom-Wan'; "
                           f"f.callback?.(f.value); return n.widgets.find(w => w.name === 'dit').options.values; }})"
                           f"(app.graph.getNodeById({loader}))")
    assert "second_stage_adaln.pt" not in listed and "Phantom-Wan-1.3B.pth" in listed, listed
    page.evaluate(f"(n => {{ const f = n.widgets.find(w => w.name === 'family'); f.value = 'Concat-ID-Wan'; "
                  f"f.callback?.(f.value); }})(app.graph.getNodeById({loader}))")
    prompt = tiny_prompt(ui_to_api(wf, object_info))
    sampler = next(k for k, n in prompt.items() if n["class_type"] == "IDVSampler")
    prompt[sampler]["inputs"]["num_frames"] = 6           # no family makes 6 frames: the sampler warns
    prompt[sampler]["inputs"]["seed"] += 4321
    client = page.evaluate("app.api.clientId || app.api.initialClientId")
    comfy_server.queue(prompt, client, wf)
    page.wait_for(f"(window.__idvideo.warnings['{sampler}'] || []).length > 0", timeout=300)
    text = page.evaluate(f"(n => n.widgets.find(w => w.name === 'idv_warnings').element.textContent)"
                         f"(app.graph.getNodeById({sampler}))")
    assert "k+1" in text, text
    assert not _pack_errors(page), "\n".join(_pack_errors(page))
