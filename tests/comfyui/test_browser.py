"""Every template in ComfyUI's real frontend (headless Debian Chromium over CDP).

For each ``workflows/*.json``: load it with ``app.loadGraphData``, check every node type is registered, compare the
frontend's own ``graphToPrompt()`` with :func:`idvideo_core.workflow.ui_to_api` (so the converter is checked against
the real thing), validate what the frontend would save, and write a screenshot to the out folder
(``$IDVIDEO_TEST_OUT`` or a pytest tmp folder). Skips without ``COMFYUI_PATH`` or ``/usr/bin/chromium``
(``apt-get install -y chromium``).
"""
from __future__ import annotations

import json

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
    assert result["output"] == expected, f"{path.name}: ui_to_api differs from the frontend's graphToPrompt"
    saved = result["workflow"]
    assert validate_ui_workflow(saved, object_info) == [], f"{path.name}: what the frontend saves does not validate"
    assert [n.get("widgets_values") for n in sorted(saved["nodes"], key=lambda n: n["id"])] == \
        [n.get("widgets_values") for n in sorted(wf["nodes"], key=lambda n: n["id"])], \
        f"{path.name}: the frontend changed widget values on load (template out of date with the node schemas)"

    page.evaluate("Promise.resolve(app.extensionManager?.command?.execute('Comfy.Canvas.FitView'))"
                  ".catch(() => { app.canvas.ds.scale = 0.6 }).then(() => { app.canvas.setDirty(true, true); "
                  "return true })")
    page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))")
    shot = page.screenshot(out_dir / f"{path.stem}.png")
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
