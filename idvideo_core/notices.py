"""Warnings a creator must see: every warning the pack logs while a node runs is caught here, per node.

:func:`capture` is a context manager around one node's run: a logging handler on the ``idvideo`` logger keeps the
WARNING (and higher) records of the running thread. The node wrapper (``nodes/_common.py``) shows them on the node
(a server message the pack's JS extension draws, and the ``ui`` output of nodes that return one), and the Video
Combiner lists the warnings of the nodes that fed it in the video's metadata (:func:`for_output`). No ComfyUI here.
"""
from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Optional

LOGGER = "idvideo"
METADATA_KEY = "idvideo_warnings"

_LOCK = threading.Lock()
_BY_NODE: dict[str, "NodeWarnings"] = {}      # the last run of each node id (a cached node keeps its warnings)
_UNKEYED: list["NodeWarnings"] = []            # runs without a node id (CLI, direct calls), until a video takes them


@dataclass
class NodeWarnings:
    node_id: Optional[str]
    class_type: str
    messages: list[str] = field(default_factory=list)

    def as_records(self) -> list[dict[str, Any]]:
        return [{"node": self.node_id, "class_type": self.class_type, "message": m} for m in self.messages]


def clean(message: str) -> str:
    """The message as shown on a node: without the ``IDVideo:`` prefix every log line carries."""
    for prefix in ("IDVideo: ", "IDVideo "):
        if message.startswith(prefix):
            return message[len(prefix):]
    return message


class _Handler(logging.Handler):
    def __init__(self, sink: NodeWarnings):
        super().__init__(logging.WARNING)
        self.sink = sink
        self.thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread:
            return
        try:
            text = clean(record.getMessage())
        except Exception:  # noqa: BLE001 - a bad log call must not break the node
            return
        if text not in self.sink.messages:
            self.sink.messages.append(text)


@contextlib.contextmanager
def capture(node_id: Optional[str], class_type: str) -> Iterator[NodeWarnings]:
    """Collect the pack's warnings logged in this thread while the block runs; remember them for ``node_id``."""
    sink = NodeWarnings(None if node_id is None else str(node_id), class_type)
    handler = _Handler(sink)
    logger = logging.getLogger(LOGGER)
    logger.addHandler(handler)
    try:
        yield sink
    finally:
        logger.removeHandler(handler)
        with _LOCK:
            if sink.node_id is not None:
                _BY_NODE[sink.node_id] = sink
            elif sink.messages:
                _UNKEYED.append(sink)


def last(node_id: str) -> Optional[NodeWarnings]:
    with _LOCK:
        return _BY_NODE.get(str(node_id))


def _ancestors(prompt: Mapping[str, Any], node_id: str) -> list[str]:
    """Node ids that feed ``node_id`` in an API prompt (``{id: {"class_type", "inputs"}}``), nearest last."""
    seen: list[str] = []
    stack = [str(node_id)]
    while stack:
        nid = stack.pop()
        inputs = (prompt.get(nid) or {}).get("inputs") or {}
        for value in inputs.values():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int):
                up = str(value[0])
                if up in prompt and up not in seen and up != str(node_id):
                    seen.append(up)
                    stack.append(up)
    return seen


def for_output(node_id: Optional[str], prompt: Optional[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Warnings of the nodes that produced an output, for its metadata.

    Inside ComfyUI (``prompt`` given): the last run of every node upstream of ``node_id`` whose class matches the
    prompt (cached nodes did not run again, and their warnings still describe their output), in prompt order.
    Without a prompt: every warning caught without a node id since the previous call.
    """
    with _LOCK:
        if prompt is not None and node_id is not None:
            ups = set(_ancestors(prompt, str(node_id)))
            out = []
            for nid in sorted(ups, key=lambda n: (len(n), n)):
                rec = _BY_NODE.get(nid)
                if rec is not None and rec.class_type == (prompt.get(nid) or {}).get("class_type"):
                    out += rec.as_records()
            return out
        out = [r for rec in _UNKEYED for r in rec.as_records()]
        _UNKEYED.clear()
        return out


def forget() -> None:
    """Drop everything remembered (tests)."""
    with _LOCK:
        _BY_NODE.clear()
        _UNKEYED.clear()
