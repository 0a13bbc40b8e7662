"""What the Comfy Registry and ComfyUI-Manager read: ``pyproject.toml`` ([project] + [tool.comfy]), requirements.txt,
the registry's code standards (no runtime pip installs, no eval/exec), and the templates' thumbnails and notes.

``comfy node validate`` (comfy-cli) runs too when the ``comfy`` command is installed (``pip install comfy-cli ruff``).
"""
from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
SHIPPED_PY = [REPO / "__init__.py", *sorted((REPO / "nodes").rglob("*.py")), *sorted((REPO / "idvideo_core").rglob("*.py")),
              *sorted((REPO / "tools").rglob("*.py"))]
TORCH_FAMILY = {"torch", "torchvision", "torchaudio"}
WORKFLOWS = sorted((REPO / "workflows").glob("*.json"))


def _req_name(line: str) -> str:
    return re.split(r"[<>=!~;\[ ]", line.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _requirements() -> list[str]:
    lines = (REPO / "requirements.txt").read_text(encoding="utf-8").splitlines()
    return [ln.split("#", 1)[0].strip() for ln in lines if ln.split("#", 1)[0].strip()]


def test_project_table_is_registry_valid():
    project = PYPROJECT["project"]
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]*(?:[-_.][A-Za-z0-9]+)*", project["name"]) and len(project["name"]) < 100
    assert "comfyui" not in project["name"].lower()
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"]), "version must be semver X.Y.Z"
    assert project.get("description", "").strip()
    assert project.get("license"), "license = { file = \"LICENSE\" }"
    if isinstance(project["license"], dict) and "file" in project["license"]:
        assert (REPO / project["license"]["file"]).is_file()
    assert project.get("requires-python")
    assert project.get("urls", {}).get("Repository", "").startswith("https://")
    for c in project.get("classifiers", []):
        assert c.startswith(("Operating System ::", "Environment :: GPU ::", "Environment :: NPU ::")), c


def test_tool_comfy_table():
    comfy = PYPROJECT["tool"]["comfy"]
    assert comfy.get("PublisherId", "").strip()
    assert comfy.get("DisplayName", "").strip()
    init = (REPO / "__init__.py").read_text(encoding="utf-8")
    # both would make ComfyUI 0.3.64 register web/ twice (once per name) and load every .js twice
    assert not ("WEB_DIRECTORY" in init and comfy.get("web")), "set WEB_DIRECTORY or [tool.comfy] web, not both"


def test_requirements_mirror_dependencies():
    deps = PYPROJECT["project"]["dependencies"]
    reqs = _requirements()
    assert sorted(d.replace(" ", "") for d in deps) == sorted(r.replace(" ", "") for r in reqs), \
        "requirements.txt must list exactly [project].dependencies (ComfyUI-Manager installs requirements.txt)"


def test_no_torch_in_dependencies():
    names = {_req_name(d) for d in PYPROJECT["project"]["dependencies"]} | {_req_name(r) for r in _requirements()}
    assert not names & TORCH_FAMILY, "torch/torchvision/torchaudio come with ComfyUI and must never be listed"


def _call_name(node: ast.Call) -> str:
    f = node.func
    if isinstance(f, ast.Name):
        return f.id
    if isinstance(f, ast.Attribute):
        base = f.value.id if isinstance(f.value, ast.Name) else "?"
        return f"{base}.{f.attr}"
    return ""


def _strings(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def test_no_runtime_pip_install_eval_or_exec():
    problems = []
    for path in SHIPPED_PY:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        rel = path.relative_to(REPO)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                if any(m == "pip" or m.startswith("pip.") for m in mods):
                    problems.append(f"{rel}:{node.lineno}: imports pip")
            if not isinstance(node, ast.Call):
                continue
            name = _call_name(node)
            if name in ("eval", "exec", "builtins.eval", "builtins.exec"):
                problems.append(f"{rel}:{node.lineno}: {name}()")
            if name.split(".")[-1] in ("run", "Popen", "call", "check_call", "check_output", "system", "spawnv",
                                       "execv", "main"):
                text = " ".join(_strings(node)).lower()
                if "pip" in text.split() or "pip install" in text or "ensurepip" in text:
                    problems.append(f"{rel}:{node.lineno}: runs pip at runtime")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_template_has_thumbnail_and_note(path):
    from PIL import Image

    thumb = path.with_suffix(".jpg")
    assert thumb.is_file(), f"{thumb.name} missing: python tools/make_workflows.py --thumbnails <screenshots dir>"
    assert thumb.stat().st_size < 200_000
    with Image.open(thumb) as img:
        assert img.format == "JPEG" and 200 <= img.width <= 800
    notes = [n for n in json.loads(path.read_text())["nodes"] if n["type"] in ("Note", "MarkdownNote")]
    assert notes, f"{path.name} has no Note node"
    text = " ".join(str(v) for n in notes for v in n.get("widgets_values", []))
    assert "huggingface.co/" in text, "the note must say where the weights are published"
    assert "ComfyUI/models/" in text, "the note must name the exact folders"


def test_comfy_node_validate():
    comfy = shutil.which("comfy")
    if comfy is None:
        pytest.skip("comfy-cli is not installed (pip install comfy-cli ruff) - `comfy node validate` not run")
    proc = subprocess.run([comfy, "--skip-prompt", "--no-enable-telemetry", "node", "validate"], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "passed" in out.lower(), out
