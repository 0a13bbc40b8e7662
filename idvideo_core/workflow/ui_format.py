"""The UI-format workflow (what ComfyUI's *Save* writes): strict structural parsing into typed nodes and links.

Anything structurally wrong (not JSON, wrong container types, duplicate ids) raises :class:`InputError` here, so the
checker and converter only ever see well-formed data and never fail with a KeyError or TypeError.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError


@dataclass
class UiInput:
    name: str
    type: str
    link: int | None


@dataclass
class UiOutput:
    name: str
    type: str
    links: tuple[int, ...]


@dataclass
class UiNode:
    id: str
    type: str
    mode: int
    title: str | None
    inputs: list[UiInput]
    outputs: list[UiOutput]
    widgets_values: list | dict | None


@dataclass(frozen=True)
class UiLink:
    id: int
    origin_id: str
    origin_slot: int
    target_id: str
    target_slot: int
    type: str


@dataclass
class UiWorkflow:
    nodes: dict[str, UiNode]
    links: dict[int, UiLink]
    subgraph_ids: frozenset[str] = field(default_factory=frozenset)


def _bad(where: str, what: str) -> InputError:
    return InputError(f"Malformed workflow: {where} {what}.",
                      "Load a workflow saved by ComfyUI (Workflow > Save / Export), not an API-format prompt or a "
                      "hand-edited file.")


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(where, f"must be an integer, got {value!r}")
    return value


def _node_id(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
        raise _bad(where, f"must be an integer id, got {value!r}")
    return str(value)


def _text(value: Any, where: str, default: str | None = None) -> str:
    if value is None and default is not None:
        return default
    if isinstance(value, (list, tuple)):  # COMBO sockets were once saved with their choice list as type
        return "COMBO"
    if not isinstance(value, str):
        raise _bad(where, f"must be a string, got {value!r}")
    return value


def _optional_link(value: Any, where: str) -> int | None:
    return None if value is None else _int(value, where)


def _parse_node(raw: Any, index: int) -> UiNode:
    where = f"nodes[{index}]"
    if not isinstance(raw, Mapping):
        raise _bad(where, "is not an object")
    nid = _node_id(raw.get("id"), f"{where}.id")
    ntype = raw.get("type")
    if not isinstance(ntype, str) or not ntype:
        raise _bad(f"{where}.type", f"must be the node's class name, got {ntype!r}")
    mode = raw.get("mode", 0)
    mode = 0 if mode is None else _int(mode, f"{where}.mode")
    title = raw.get("title")
    title = title if isinstance(title, str) else None
    inputs, outputs = [], []
    for key, target in (("inputs", inputs), ("outputs", outputs)):
        items = raw.get(key) or []
        if not isinstance(items, list):
            raise _bad(f"{where}.{key}", "is not a list")
        for i, item in enumerate(items):
            iw = f"{where}.{key}[{i}]"
            if not isinstance(item, Mapping):
                raise _bad(iw, "is not an object")
            name = _text(item.get("name"), f"{iw}.name")
            stype = _text(item.get("type"), f"{iw}.type", default="*")
            if key == "inputs":
                target.append(UiInput(name, stype, _optional_link(item.get("link"), f"{iw}.link")))
            else:
                links = item.get("links") or []
                if not isinstance(links, list):
                    raise _bad(f"{iw}.links", "is not a list")
                target.append(UiOutput(name, stype, tuple(_int(x, f"{iw}.links") for x in links)))
    values = raw.get("widgets_values")
    if values is not None and not isinstance(values, (list, dict)):
        raise _bad(f"{where}.widgets_values", "is neither a list nor an object")
    return UiNode(nid, ntype, mode, title, inputs, outputs, values)


def _parse_link(raw: Any, index: int) -> UiLink:
    where = f"links[{index}]"
    if isinstance(raw, Mapping):  # schema version 1 stores links as objects
        raw = [raw.get(k) for k in ("id", "origin_id", "origin_slot", "target_id", "target_slot", "type")]
    if not isinstance(raw, list) or len(raw) < 5:
        raise _bad(where, "must be [id, origin_id, origin_slot, target_id, target_slot, type]")
    ltype = raw[5] if len(raw) > 5 else "*"
    return UiLink(_int(raw[0], f"{where}[0]"), _node_id(raw[1], f"{where}[1]"), _int(raw[2], f"{where}[2]"),
                  _node_id(raw[3], f"{where}[3]"), _int(raw[4], f"{where}[4]"),
                  _text(ltype, f"{where}[5]", default="*"))


def _by_id(raws: list, parse, kind: str) -> dict:
    """Parse each entry of the ``{kind}s`` list and index it by id; a repeated id is an error."""
    out: dict = {}
    for i, raw in enumerate(raws):
        item = parse(raw, i)
        if item.id in out:
            raise _bad(f"{kind}s[{i}]", f"repeats {kind} id {item.id}")
        out[item.id] = item
    return out


def parse_ui_workflow(wf: Any) -> UiWorkflow:
    """Check the container structure of a UI-format workflow and return typed nodes and links."""
    if not isinstance(wf, Mapping):
        raise _bad("the top level", f"must be an object, got {type(wf).__name__}")
    if "nodes" not in wf:
        hint = " (this looks like an API-format prompt)" if wf and all(
            isinstance(v, Mapping) and "class_type" in v for v in wf.values()) else ""
        raise _bad("the top level", f"has no 'nodes' list{hint}")
    raw_nodes, raw_links = wf.get("nodes"), wf.get("links") or []
    if not isinstance(raw_nodes, list):
        raise _bad("'nodes'", "is not a list")
    if not isinstance(raw_links, list):
        raise _bad("'links'", "is not a list")
    nodes: dict[str, UiNode] = _by_id(raw_nodes, _parse_node, "node")
    links: dict[int, UiLink] = _by_id(raw_links, _parse_link, "link")
    subgraphs = set()
    definitions = wf.get("definitions")
    if isinstance(definitions, Mapping) and isinstance(definitions.get("subgraphs"), list):
        subgraphs = {str(s.get("id")) for s in definitions["subgraphs"] if isinstance(s, Mapping)}
    return UiWorkflow(nodes, links, frozenset(subgraphs))


def load_workflow(source: str | Path | bytes) -> dict:
    """Read UI-format workflow JSON from a path, a JSON string or bytes; bad JSON raises :class:`InputError`."""
    text: str | bytes
    if isinstance(source, Path) or (isinstance(source, str) and not source.lstrip().startswith("{")):
        path = Path(source)
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise InputError(f"Cannot read workflow file {path}: {exc.strerror or exc}",
                             "Check the path and file permissions.") from exc
    else:
        text = source
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"The workflow is not valid JSON: {exc}",
                         "Export the workflow again from ComfyUI (Workflow > Export).") from exc
    parse_ui_workflow(data)
    return data

