"""The pack's JS extension (web/js/idvideo.js) run in Node with stand-ins for the ComfyUI frontend: warnings sent for
a node appear in a box on it and clear when it runs again; the Wan loader's dit list follows the family (issue 14).
The same behaviour is checked in a real browser by tests/comfyui/test_browser.py when COMFYUI_PATH is set."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

APP_STUB = """
export const nodes = {};
const handlers = {};
export const api = {
  addEventListener(name, fn) { (handlers[name] ??= []).push(fn); },
  emit(name, detail) { for (const fn of handlers[name] ?? []) fn({ detail }); },
  apiURL: (p) => p,
};
export const app = {
  extensions: [],
  registerExtension(ext) { this.extensions.push(ext); },
  graph: { getNodeById: (id) => nodes[id] ?? null, setDirtyCanvas() {} },
};
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_extension_logic_in_node(tmp_path):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "app.js").write_text(APP_STUB)
    (tmp_path / "scripts" / "api.js").write_text('export { api } from "./app.js";\n')
    ext = tmp_path / "extensions" / "IDVideo"
    ext.mkdir(parents=True)
    # the real file's imports are "../../../scripts/{app,api}.js" (web/js/ under extensions/<pack>/ in the frontend)
    text = (ROOT / "web" / "js" / "idvideo.js").read_text()
    assert '"../../../scripts/app.js"' in text and '"../../../scripts/api.js"' in text
    (ext / "idvideo.js").write_text(text.replace("../../../scripts/", "../../scripts/"))
    run = subprocess.run(["node", str(ROOT / "tests" / "js" / "run_idvideo_js.mjs"), str(tmp_path)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["shown"] == "⚠ 7 frames is not 4k+1; using 5 frames." and out["visible"]
    assert out["afterRerun"] is True
    assert out["fromUi"] == "⚠ from ui"
    assert out["concatList"] == ["(from base folder)", "first_stage.pt", "second_stage_adaln.pt",
                                 "Phantom-Wan-1.3B.pth"]
    assert out["phantomList"] == ["(from base folder)", "first_stage.pt", "Phantom-Wan-1.3B.pth"]
    assert out["phantomValue"] == "first_stage.pt"
