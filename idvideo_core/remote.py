"""Run a workflow on a running ComfyUI server from the command line, with progress from its websocket.

``python -m idvideo_core run-workflow workflows/x.json --server http://127.0.0.1:8188``

Why: headless use (a render box, CI) without the browser. A UI-format workflow (what ComfyUI's *Save* writes and what
``workflows/`` holds) is converted to the API prompt with :func:`idvideo_core.workflow.ui_to_api` against the
server's own ``/object_info``, so widget values map exactly as the frontend maps them; an API-format prompt is sent
as it is. The UI workflow rides along in ``extra_pnginfo`` so the saved video embeds it, as from the browser.

Only the standard library is required (polling ``/history``); with ``websocket-client`` installed, progress and node
names are shown live from ComfyUI's ``/ws`` messages. Nothing here imports ComfyUI.
"""
from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import IDVideoError, InputError


@dataclass
class RunResult:
    prompt_id: str
    status: str                                   # success | error | interrupted
    outputs: list[dict] = field(default_factory=list)  # ui entries: filename, subfolder, type
    error: dict | None = None
    progress_events: int = 0
    preview_frames: int = 0


def _http(url: str, payload: Any = None, timeout: float = 60.0) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        body = resp.read()
    return json.loads(body) if body else None


def _server_error(server: str, exc: Exception) -> IDVideoError:
    return IDVideoError(f"Cannot reach ComfyUI at {server} ({exc}).",
                        "Start ComfyUI (python main.py --listen 127.0.0.1 --port 8188) or pass --server URL.")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["steps=20", "width=832"]`` → ``{"steps": 20, "width": 832}`` (JSON values, else strings)."""
    out = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InputError(f"--set {item!r} is not NAME=VALUE.", "Write for example --set steps=20")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def apply_overrides(prompt: dict, overrides: dict[str, Any]) -> dict:
    """Set every node input called NAME that holds a value (not a link) to VALUE."""
    for node in prompt.values():
        for name, value in overrides.items():
            if name in node.get("inputs", {}) and not isinstance(node["inputs"][name], list):
                node["inputs"][name] = value
    return prompt


def build_prompt(workflow: dict, object_info: dict) -> tuple[dict, dict | None]:
    """(API prompt, UI workflow or None). UI format is recognised by its ``nodes`` list."""
    from .workflow import check_ui_workflow, ui_to_api
    from .workflow.check import explain_problems

    if isinstance(workflow.get("nodes"), list):
        problems = check_ui_workflow(workflow, object_info)[2]
        if problems:
            raise InputError(*explain_problems(problems))
        return ui_to_api(workflow, object_info, strict=True), workflow
    if workflow and all(isinstance(v, dict) and "class_type" in v for v in workflow.values()):
        return workflow, None
    raise InputError("This JSON is neither a ComfyUI workflow (UI format) nor an API prompt.",
                     "Give a file saved by ComfyUI (Save or Export (API)).")


def _queue(server: str, prompt: dict, client_id: str, workflow: dict | None) -> str:
    payload: dict[str, Any] = {"prompt": prompt, "client_id": client_id}
    if workflow is not None:
        payload["extra_data"] = {"extra_pnginfo": {"workflow": workflow}}
    try:
        return _http(server + "/prompt", payload)["prompt_id"]
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        raise InputError(f"ComfyUI refused the prompt: {detail[:2000]}",
                         "Fix the inputs it names (missing model files are the usual cause).") from exc


def _outputs(server: str, prompt_id: str) -> tuple[dict | None, list[dict]]:
    entry = (_http(f"{server}/history/{prompt_id}") or {}).get(prompt_id)
    if not entry:
        return None, []
    files = []
    for node_out in (entry.get("outputs") or {}).values():
        for key in ("images", "gifs", "videos"):
            files += [e for e in node_out.get(key, []) if isinstance(e, dict) and "filename" in e]
    return entry.get("status") or {}, files


def _watch_ws(server: str, client_id: str, prompt_id: str, timeout: float, say: Callable[[str], None],
              result: RunResult, ws) -> None:
    deadline = time.monotonic() + timeout
    node_names: dict[str, str] = {}
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise IDVideoError(f"The prompt did not finish within {timeout:.0f} s.", "Pass a longer --timeout.")
        ws.settimeout(left)
        raw = ws.recv()
        if not isinstance(raw, str):
            result.preview_frames += 1       # binary frame: a live latent preview
            continue
        msg = json.loads(raw)
        kind, data = msg.get("type"), msg.get("data") or {}
        if data.get("prompt_id") not in (None, prompt_id):
            continue
        if kind == "executing" and data.get("node") is not None:
            node_names.setdefault(str(data["node"]), str(data.get("display_node") or data["node"]))
            say(f"node {data['node']} running")
        elif kind == "progress":
            result.progress_events += 1
            value, total = int(data.get("value", 0)), max(int(data.get("max", 1)), 1)
            bar = "#" * round(20 * value / total)
            say(f"node {data.get('node')} [{bar:<20}] {value}/{total}")
        elif kind == "execution_error":
            result.status, result.error = "error", data
            return
        elif kind == "execution_interrupted":
            result.status = "interrupted"
            return
        elif kind == "execution_success" or (kind == "executing" and data.get("node") is None):
            result.status = "success"
            return


def _watch_poll(server: str, prompt_id: str, timeout: float, say: Callable[[str], None], result: RunResult) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, _ = _outputs(server, prompt_id)
        if status is not None and status.get("completed") is not None:
            result.status = "success" if status.get("status_str") == "success" else "error"
            if result.status == "error":
                result.error = {"messages": status.get("messages")}
            return
        say("waiting (install websocket-client for live progress)")
        time.sleep(1.0)
    raise IDVideoError(f"The prompt did not finish within {timeout:.0f} s.", "Pass a longer --timeout.")


def run_workflow(path: Path | str, server: str = "http://127.0.0.1:8188", overrides: dict | None = None,
                 timeout: float = 3600.0, say: Callable[[str], None] = print) -> RunResult:
    """Queue ``path`` on ``server``, follow it to the end and return its outcome and output files."""
    server = server.rstrip("/")
    try:
        workflow = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"Cannot read the workflow {path}: {exc}", "Give a workflow .json file.") from exc
    try:
        object_info = _http(server + "/object_info", timeout=120)
    except (urllib.error.URLError, OSError) as exc:
        raise _server_error(server, exc) from exc
    prompt, ui = build_prompt(workflow, object_info)
    apply_overrides(prompt, overrides or {})
    client_id = uuid.uuid4().hex
    ws = None
    try:
        import websocket  # websocket-client

        parts = urllib.parse.urlsplit(server)
        scheme = "wss" if parts.scheme == "https" else "ws"
        ws = websocket.create_connection(f"{scheme}://{parts.netloc}/ws?clientId={client_id}", timeout=30)
    except ImportError:
        ws = None
    except OSError as exc:
        raise _server_error(server, exc) from exc
    try:
        prompt_id = _queue(server, prompt, client_id, ui)
        say(f"queued prompt {prompt_id} on {server}")
        result = RunResult(prompt_id=prompt_id, status="running")
        if ws is not None:
            _watch_ws(server, client_id, prompt_id, timeout, say, result, ws)
        else:
            _watch_poll(server, prompt_id, timeout, say, result)
    finally:
        if ws is not None:
            ws.close()
    # ComfyUI sends execution_success just before it writes the history entry: give it a moment
    for _ in range(50):
        status, result.outputs = _outputs(server, prompt_id)
        if status is not None:
            break
        time.sleep(0.1)
    return result


def main(args) -> int:
    """The ``run-workflow`` subcommand."""
    last = [0.0]

    def say(line: str) -> None:
        now = time.monotonic()
        if "[" not in line or now - last[0] > 0.2:   # progress lines at most 5 per second
            last[0] = now
            print(line, file=sys.stderr, flush=True)

    result = run_workflow(args.workflow, args.server, parse_overrides(args.set), args.timeout, say)
    if result.status != "success":
        err = result.error or {}
        print(f"IDVideo: the prompt ended with {result.status}: {err.get('exception_message') or err}",
              file=sys.stderr)
        return 1
    for entry in result.outputs:
        print(f"output: {entry.get('type', 'output')}/{entry.get('subfolder') or '.'}/{entry['filename']}")
    return 0
