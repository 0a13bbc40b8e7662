"""The one module of ``idvideo_core`` that knows about ComfyUI.

Inside ComfyUI it adapts to ``comfy.model_management`` (devices, memory, interrupts), ``comfy.utils.ProgressBar``
(progress bars, which are also ComfyUI's cancel checkpoints) and ``folder_paths`` (model folders,
``extra_model_paths.yaml``). Outside ComfyUI (the CLI, tests) it falls back to plain torch, a console progress bar and
folders under ``IDVIDEO_MODELS_DIR`` (default ``./models``).
"""
from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Callable, Iterable

log = logging.getLogger("idvideo")

_CANCEL = threading.Event()


class GenerationCancelled(Exception):
    """Raised at a step boundary when a cancel was requested outside ComfyUI."""


def _comfy(name: str):
    """Return a ComfyUI module if ComfyUI is running in this process, else None."""
    if os.environ.get("IDVIDEO_NO_COMFY") == "1":
        return None
    if name in sys.modules:
        return sys.modules[name]
    # Only import when ComfyUI itself is loaded: importing comfy.model_management on its own initialises CUDA.
    if "comfy" not in sys.modules and "folder_paths" not in sys.modules:
        return None
    try:
        return importlib.import_module(name)
    except Exception:  # noqa: BLE001 - any failure means "not inside a usable ComfyUI"
        return None


def in_comfyui() -> bool:
    return _comfy("comfy.model_management") is not None


# ----------------------------------------------------------------------------------------------------------- devices
def torch_device():
    import torch

    mm = _comfy("comfy.model_management")
    if mm is not None:
        return mm.get_torch_device()
    forced = os.environ.get("IDVIDEO_DEVICE")
    if forced:
        return torch.device(forced)
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def offload_device():
    import torch

    mm = _comfy("comfy.model_management")
    if mm is not None:
        return mm.unet_offload_device()
    return torch.device("cpu")


def vram_state() -> str:
    """One of ``cpu``, ``novram``, ``lowvram``, ``normal``, ``high`` (ComfyUI's flags), or ``normal`` outside it."""
    import torch

    mm = _comfy("comfy.model_management")
    if mm is None:
        return "normal" if torch.cuda.is_available() else "cpu"
    if mm.cpu_mode() if hasattr(mm, "cpu_mode") else False:
        return "cpu"
    state = getattr(mm, "vram_state", None)
    name = getattr(state, "name", "NORMAL_VRAM")
    return {"DISABLED": "cpu", "NO_VRAM": "novram", "LOW_VRAM": "lowvram", "HIGH_VRAM": "high",
            "SHARED": "high"}.get(name, "normal")


def free_memory_for(bytes_needed: int, device=None) -> None:
    """Ask ComfyUI to unload its cached models so ours fit; a no-op outside ComfyUI."""
    mm = _comfy("comfy.model_management")
    if mm is None:
        return
    device = device or mm.get_torch_device()
    try:
        mm.free_memory(bytes_needed, device)
    except Exception as exc:  # noqa: BLE001
        log.warning("IDVideo: ComfyUI could not free memory (%s)", exc)


def unload_comfy_models() -> None:
    mm = _comfy("comfy.model_management")
    if mm is not None:
        mm.unload_all_models()


def soft_empty_cache() -> None:
    mm = _comfy("comfy.model_management")
    if mm is not None:
        mm.soft_empty_cache()
        return
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def free_device_memory(device) -> int | None:
    mm = _comfy("comfy.model_management")
    if mm is not None:
        try:
            return int(mm.get_free_memory(device))
        except Exception:  # noqa: BLE001
            return None
    import torch

    if getattr(device, "type", str(device)) == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.mem_get_info(device)[0])
    return None


# ------------------------------------------------------------------------------------------ messages to the browser
def executing_node_id() -> str | None:
    """The id of the node ComfyUI is running now (None outside ComfyUI or when it cannot tell)."""
    utils = _comfy("comfy_execution.utils")
    get = getattr(utils, "get_executing_context", None) if utils is not None else None
    if get is not None:
        try:
            ctx = get()
            if ctx is not None and getattr(ctx, "node_id", None) is not None:
                return str(ctx.node_id)
        except Exception:  # noqa: BLE001
            pass
    server = _comfy("server")
    instance = getattr(getattr(server, "PromptServer", None), "instance", None) if server is not None else None
    node = getattr(instance, "last_node_id", None)
    return None if node is None else str(node)


_PROMPT_HANDLERS: list = []


def add_prompt_handler(handler: Callable[[dict], dict]) -> bool:
    """Run ``handler(json_data) -> json_data`` on every prompt posted to ComfyUI's /prompt, before it is validated
    (``PromptServer.add_on_prompt_handler``); False outside ComfyUI. Added once per handler name."""
    server = _comfy("server")
    instance = getattr(getattr(server, "PromptServer", None), "instance", None) if server is not None else None
    if instance is None or not hasattr(instance, "add_on_prompt_handler"):
        return False
    name = getattr(handler, "__qualname__", repr(handler))
    if name not in _PROMPT_HANDLERS:
        instance.add_on_prompt_handler(handler)
        _PROMPT_HANDLERS.append(name)
    return True


def send_ui_event(event: str, data: dict) -> bool:
    """Send a message to the browser that queued the prompt (ComfyUI's websocket); False outside ComfyUI."""
    server = _comfy("server")
    instance = getattr(getattr(server, "PromptServer", None), "instance", None) if server is not None else None
    if instance is None or not hasattr(instance, "send_sync"):
        return False
    try:
        instance.send_sync(event, data, getattr(instance, "client_id", None))
    except Exception as exc:  # noqa: BLE001 - a message the browser misses must never fail the node
        log.debug("IDVideo: could not send %s to the browser (%s)", event, exc)
        return False
    return True


# --------------------------------------------------------------------------------------------- interrupts, progress
def request_cancel() -> None:
    """Cancel the running generation at its next step boundary (CLI, tests; ComfyUI uses its own interrupt)."""
    _CANCEL.set()


def clear_cancel() -> None:
    _CANCEL.clear()


def check_interrupt() -> None:
    """Raise if the user cancelled. In ComfyUI this raises ComfyUI's own interrupt exception."""
    mm = _comfy("comfy.model_management")
    if mm is not None:
        mm.throw_exception_if_processing_interrupted()
    if _CANCEL.is_set():
        _CANCEL.clear()
        raise GenerationCancelled("Generation cancelled.")


_console_factory: Callable[[int, str], object] | None = None


def set_console_progress(factory: Callable[[int, str], object] | None) -> None:
    """Install a console progress factory (the CLI uses a text bar); ``None`` disables console output."""
    global _console_factory
    _console_factory = factory


class Progress:
    """A progress bar: ComfyUI's ``ProgressBar`` when running inside ComfyUI, else the console factory if set.

    Every ``update`` is also a cancel checkpoint.
    """

    def __init__(self, total: int, desc: str = "", node_id: str | None = None):
        self.total = max(int(total), 1)
        self.value = 0
        self._comfy_bar = None
        self._console = None
        utils = _comfy("comfy.utils")
        if utils is not None and hasattr(utils, "ProgressBar"):
            try:
                self._comfy_bar = utils.ProgressBar(self.total, node_id=node_id) if node_id else \
                    utils.ProgressBar(self.total)
            except TypeError:
                self._comfy_bar = utils.ProgressBar(self.total)
        elif _console_factory is not None:
            self._console = _console_factory(self.total, desc)

    def update(self, n: int = 1, preview=None) -> None:
        """Advance by ``n``. ``preview``: a PIL image or ComfyUI's ``(format, PIL image, max_size)`` tuple."""
        self.value = min(self.value + n, self.total)
        if self._comfy_bar is not None:
            # ComfyUI's progress hook raises its interrupt exception here when the user pressed Cancel.
            self._comfy_bar.update_absolute(self.value, self.total, _preview_tuple(preview))
        elif self._console is not None:
            self._console.update(n)
        check_interrupt()

    def close(self) -> None:
        if self._console is not None and hasattr(self._console, "close"):
            self._console.close()


def _preview_tuple(preview):
    """ComfyUI's progress hook sends ``("JPEG" or "PNG", PIL.Image, max_size)`` to the browser (server.send_image);
    a bare PIL image would break its websocket sender, so wrap one here."""
    if preview is None or isinstance(preview, tuple):
        return preview
    return ("JPEG", preview, preview_max_size())


def previews_enabled() -> bool:
    """True only inside ComfyUI started with ``--preview-method`` other than ``none`` (ComfyUI's own rule in
    ``latent_preview.get_previewer``): the CLI and tests never pay for previews. ``taesd`` has no tiny decoder for
    CogVideoX/Wan latents, so like core ComfyUI without one, latent→RGB factors are used."""
    cli = _comfy("comfy.cli_args")
    if cli is None or not in_comfyui():
        return False
    method = getattr(getattr(cli, "args", None), "preview_method", None)
    value = getattr(method, "value", method)
    return value not in (None, "none")


def preview_max_size() -> int:
    """ComfyUI's ``--preview-size`` (default 512)."""
    cli = _comfy("comfy.cli_args")
    size = getattr(getattr(cli, "args", None), "preview_size", None) if cli is not None else None
    return int(size or 512)


# ------------------------------------------------------------------------------------------------------- folders
def _fallback_models_dir() -> Path:
    return Path(os.environ.get("IDVIDEO_MODELS_DIR", "models")).expanduser().resolve()


def models_dir() -> Path:
    fp = _comfy("folder_paths")
    if fp is not None:
        return Path(fp.models_dir)
    return _fallback_models_dir()


def register_folder(key: str, default_subdir: str, extensions: Iterable[str] = ()) -> None:
    """Register a model folder key with ComfyUI (so ``extra_model_paths.yaml`` entries for it work)."""
    fp = _comfy("folder_paths")
    if fp is None:
        return
    path = os.path.join(fp.models_dir, default_subdir)
    exts = set(extensions)
    if key in fp.folder_names_and_paths:
        paths, old_exts = fp.folder_names_and_paths[key]
        if path not in paths:
            paths.append(path)
        # yaml may have created the key with an empty extension set; an empty set matches everything, keep it open.
        if old_exts and exts:
            old_exts.update(exts)
    else:
        fp.folder_names_and_paths[key] = ([path], exts)


def folder_paths_for(key: str) -> list[Path]:
    """All folders registered for ``key`` (ComfyUI), or ``<models>/<key>`` outside ComfyUI."""
    fp = _comfy("folder_paths")
    if fp is not None:
        try:
            return [Path(p) for p in fp.get_folder_paths(key)]
        except Exception:  # noqa: BLE001 - unknown key
            return [Path(fp.models_dir) / key]
    return [_fallback_models_dir() / key]


def output_dir() -> Path:
    fp = _comfy("folder_paths")
    if fp is not None:
        return Path(fp.get_output_directory())
    return Path(os.environ.get("IDVIDEO_OUTPUT_DIR", "output")).expanduser().resolve()


def temp_dir() -> Path:
    fp = _comfy("folder_paths")
    if fp is not None:
        return Path(fp.get_temp_directory())
    return output_dir() / "temp"


def args_disable_metadata() -> bool:
    cli = _comfy("comfy.cli_args")
    return bool(getattr(getattr(cli, "args", None), "disable_metadata", False)) if cli is not None else False
