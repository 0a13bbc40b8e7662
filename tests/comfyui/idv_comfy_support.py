"""Helpers shared by the workflow tests and the real-ComfyUI tests.

Kept free of pytest fixtures so both ``tests/test_workflows.py`` (which loads this file by path) and the tests in this
folder can use it. Nothing here imports ComfyUI: the server always runs in its own process.
"""
from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

REPO_ROOT = Path(__file__).resolve().parents[2]
PACK_MODULE = "IDVideo"
WORKFLOWS = sorted((REPO_ROOT / "workflows").glob("*.json"))


# ------------------------------------------------------------------------------------------------------ pack import
def comfy_module_name(root: Path) -> str:
    """The ``sys.modules`` key ComfyUI 0.3.64 gives a custom-node folder: its path with '.' replaced by '_x_'."""
    return str(root).replace(".", "_x_")


def load_pack(root: Path = REPO_ROOT, name: str | None = None):
    """Import the pack's root folder as a package, the way ComfyUI's ``load_custom_node`` does.

    ComfyUI takes the folder's ``__init__.py`` with ``spec_from_file_location`` (module name = the folder path, see
    :func:`comfy_module_name`) and registers it in ``sys.modules`` before executing it, so the pack's relative imports
    (``from .nodes import …``) resolve. Doing the same here checks the import path ComfyUI will use, not a
    ``sys.path`` shortcut.
    """
    name = name or comfy_module_name(Path(root))
    if name in sys.modules:
        return sys.modules[name]
    init = Path(root) / "__init__.py"
    if not init.is_file():
        raise FileNotFoundError(f"{init} does not exist: the pack has no root __init__.py yet")
    spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(root)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


# ------------------------------------------------------------------------------------------------------- the server
def comfyui_path() -> Path | None:
    value = os.environ.get("COMFYUI_PATH")
    if not value:
        return None
    path = Path(value)
    return path if (path / "main.py").is_file() else None


def comfyui_version(root: Path) -> str:
    """The version a checkout declares (``comfyui_version.py``; ``pyproject.toml`` in older ones), or "unknown".

    The tests take everything version-dependent from the checkout ``COMFYUI_PATH`` points at (nothing is hard-coded
    per version); this is only reported in the pytest header and failure messages.
    """
    import re

    for name, pattern in (("comfyui_version.py", r'__version__\s*=\s*"([^"]+)"'),
                          ("pyproject.toml", r'^version\s*=\s*"([^"]+)"')):
        f = Path(root) / name
        if f.is_file():
            m = re.search(pattern, f.read_text(encoding="utf-8", errors="replace"), re.M)
            if m:
                return m.group(1)
    return "unknown"


def frontend_version() -> str:
    try:
        from importlib.metadata import version

        return version("comfyui-frontend-package")
    except Exception:  # noqa: BLE001 - not installed
        return "not installed"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url: str, payload: Any | None = None, timeout: float = 30.0) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        body = resp.read()
    return json.loads(body) if body else None


def prepare_instance(workdir: Path, pack_root: Path = REPO_ROOT, model_dirs: dict[str, Path] | None = None,
                     pack_name: str = PACK_MODULE) -> Path:
    """Make a private custom_nodes folder (pack symlinked as ``pack_name``) and an extra_model_paths yaml.

    Returns the yaml path. ``model_dirs`` maps ComfyUI folder keys (``consisid``, ``insightface``, ``checkpoints``…)
    to folders; the yaml also lists ``custom_nodes`` so ComfyUI loads the pack from there without touching the
    checkout's own custom_nodes folder.
    """
    custom = workdir / "custom_nodes"
    custom.mkdir(parents=True, exist_ok=True)
    link = custom / pack_name
    if not link.exists():
        link.symlink_to(pack_root, target_is_directory=True)
    lines = ["idvideo_test:", f"    base_path: {workdir}", "    custom_nodes: custom_nodes"]
    for key, folder in (model_dirs or {}).items():
        lines.append(f"    {key}: {folder}")
    yaml_path = workdir / "extra_model_paths.yaml"
    yaml_path.write_text("\n".join(lines) + "\n")
    return yaml_path


@dataclass
class ComfyServer:
    """A ComfyUI process on a free loopback port, with its own input/output/user folders under ``workdir``."""

    comfy_root: Path
    workdir: Path
    extra_yaml: Path | None = None
    extra_args: list[str] = field(default_factory=list)
    port: int = 0
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def output_dir(self) -> Path:
        return self.workdir / "output"

    @property
    def input_dir(self) -> Path:
        return self.workdir / "input"

    def start(self, timeout: float = 240.0) -> Self:
        self.port = self.port or free_port()
        for sub in ("output", "input", "temp", "user"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
               "--disable-auto-launch", "--output-directory", str(self.output_dir),
               "--input-directory", str(self.input_dir), "--temp-directory", str(self.workdir / "temp"),
               "--user-directory", str(self.workdir / "user"),
               "--database-url", f"sqlite:///{self.workdir / 'user' / 'comfyui.db'}"]
        if self.extra_yaml is not None:
            cmd += ["--extra-model-paths-config", str(self.extra_yaml)]
        cmd += self.extra_args
        self.log_path = self.workdir / "comfyui.log"
        # the test session's IDVIDEO_* settings (IDVIDEO_NO_COMFY=1, a models dir) must not leak into ComfyUI
        env = {k: v for k, v in os.environ.items() if not k.startswith("IDVIDEO_")}
        env.update(PYTHONUNBUFFERED="1", TQDM_DISABLE="1")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=self.comfy_root, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.proc.returncode} during start-up:\n{self.log()[-4000:]}")
            try:
                http_json(self.base + "/system_stats", timeout=2)
                return self
            except (urllib.error.URLError, ConnectionError, OSError, ValueError):
                time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"ComfyUI did not answer within {timeout}s:\n{self.log()[-4000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------------------- prompts
    def object_info(self) -> dict:
        return http_json(self.base + "/object_info", timeout=60)

    def queue(self, prompt: dict, client_id: str, workflow: dict | None = None) -> str:
        payload: dict[str, Any] = {"prompt": prompt, "client_id": client_id}
        if workflow is not None:
            payload["extra_data"] = {"extra_pnginfo": {"workflow": workflow}}
        try:
            answer = http_json(self.base + "/prompt", payload)
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"/prompt refused the prompt: {exc.read().decode(errors='replace')}") from exc
        return answer["prompt_id"]

    def interrupt(self) -> None:
        http_json(self.base + "/interrupt", {})

    def history(self, prompt_id: str) -> dict:
        return http_json(f"{self.base}/history/{prompt_id}").get(prompt_id, {})


def new_client_id() -> str:
    return uuid.uuid4().hex


def wait_for_prompt(ws, prompt_id: str, timeout: float) -> dict:
    """Read websocket messages until ``prompt_id`` finishes; return ``{"status": success|error|interrupted, …}``.

    ``ws`` is a connected ``websocket.WebSocket`` (client id in the URL). Binary preview frames are skipped.
    """
    deadline = time.monotonic() + timeout
    events: list[str] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout}s; events: {events[-20:]}")
        ws.settimeout(left)
        raw = ws.recv()
        if not isinstance(raw, str):
            continue
        msg = json.loads(raw)
        kind, data = msg.get("type"), msg.get("data") or {}
        if data.get("prompt_id") not in (None, prompt_id):
            continue
        events.append(kind)
        if kind == "execution_success":
            return {"status": "success", "events": events}
        if kind == "execution_error":
            return {"status": "error", "events": events, "error": data}
        if kind == "execution_interrupted":
            return {"status": "interrupted", "events": events, "data": data}
        if kind == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id:
            return {"status": "success", "events": events}


def connect_ws(server: ComfyServer, client_id: str):
    import websocket  # websocket-client, installed with the test extras

    ws = websocket.WebSocket()
    ws.connect(f"ws://127.0.0.1:{server.port}/ws?clientId={client_id}", timeout=30)
    return ws
