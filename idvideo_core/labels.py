"""The words the node UI shows, in one place.

Node schemas build their option lists from these tables, and core messages that tell the creator to change a
setting name it with :func:`setting`, so a message never asks for an option the UI does not show (issue 14). Each
table maps the core value (what :mod:`idvideo_core.runtime` and the CLI use) to the label of the node's widget.
"""
from __future__ import annotations

# widget name -> {core value: UI label}
OPTIONS: dict[str, dict[str, str]] = {
    "on_no_face": {"error": "error", "whole_image": "use whole image"},
    "selection": {"largest": "largest", "center": "center", "index": "index", "all": "all (left to right)"},
    "provider": {"auto": "auto (best available)", "CPU": "CPU", "CUDA": "CUDA", "ROCm": "ROCm", "CoreML": "CoreML"},
}

# widget name -> the node (display name) that carries it, for messages that send the creator to another node
WIDGET_NODE: dict[str, str] = {
    "on_no_face": "IDVideo Face Loader",
    "selection": "IDVideo Face Loader",
    "provider": "IDVideo Face Models Loader",
}


def label(widget: str, value: str) -> str:
    """The UI label of a core value (the value itself when the widget has no table)."""
    return OPTIONS.get(widget, {}).get(value, value)


def labels(widget: str) -> list[str]:
    """The option list of a combo widget, in order."""
    return list(OPTIONS[widget].values())


def value(widget: str, text: str) -> str | None:
    """The core value of a UI label; core values are accepted too (the CLI passes them). None when unknown."""
    table = OPTIONS.get(widget, {})
    if text in table:
        return text
    for core, shown in table.items():
        if shown == text:
            return core
    return None


def setting(widget: str, value_: str, with_node: bool = True) -> str:
    """How a message asks for a setting: ``set 'on_no_face' to 'use whole image' on 'IDVideo Face Loader'``."""
    where = f" on '{WIDGET_NODE[widget]}'" if with_node and widget in WIDGET_NODE else ""
    from .errors import option

    # option(): the widget name inside ComfyUI, the flag on the command line (one error, two renderings)
    return f"set {option(widget)} to '{label(widget, value_)}'{where}"
