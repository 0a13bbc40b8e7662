"""UI format → API prompt format, following the 1.27 frontend's ``graphToPrompt`` (checked against it in
``tests/comfyui/test_browser.py``).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import InputError
from .check import check_ui_workflow, explain_problems, types_compatible, widget_values
from .schema import UI_ONLY_NODES
from .ui_format import UiLink, UiNode, UiWorkflow

MODE_MUTED = 2   # "Never": the node and everything fed only by it is left out of the prompt
MODE_BYPASS = 4  # inputs are passed through to outputs of the same type


def _litegraph_valid(a: str, b: str) -> bool:
    """The frontend's LiteGraph.isValidConnection: like :func:`types_compatible` but case-insensitive."""
    return types_compatible(a.lower(), b.lower())


def _bypass_slot(node: UiNode, slot: int, want: str) -> int | None:
    """Which input a bypassed node hands to its output ``slot`` for a consumer of type ``want``.

    Same order as the 1.27 frontend (ExecutableNodeDTO's bypass resolution): the input at the same index if it fits
    both the output and the wanted type, then the first input of exactly the wanted type, then the first that fits both.
    """
    inputs = node.inputs
    if not inputs:
        return None
    if want in ("*", ""):
        return slot if 0 <= slot < len(inputs) else 0
    out_type = node.outputs[slot].type if 0 <= slot < len(node.outputs) else "*"
    fits = [_litegraph_valid(i.type, out_type) and _litegraph_valid(i.type, want) for i in inputs]
    if 0 <= slot < len(inputs) and fits[slot]:
        return slot
    exact = next((i for i, entry in enumerate(inputs) if entry.type == want), None)
    if exact is not None:
        return exact
    return next((i for i, ok in enumerate(fits) if ok), None)


def _resolve_origin(wf: UiWorkflow, link: UiLink, want: str) -> tuple[UiNode, UiLink] | None:
    """Follow a link upstream through Reroutes and bypassed nodes, as the frontend's graphToPrompt does."""
    for _ in range(len(wf.nodes) + 1):
        parent = wf.nodes.get(link.origin_id)
        if parent is None:
            return None
        if parent.type == "Reroute":
            nxt = parent.inputs[0].link if parent.inputs else None
        elif parent.mode == MODE_BYPASS and parent.type not in UI_ONLY_NODES:
            slot = _bypass_slot(parent, link.origin_slot, want)
            nxt = parent.inputs[slot].link if slot is not None else None
        else:
            return parent, link
        if nxt is None or nxt not in wf.links:
            return None
        link = wf.links[nxt]
    return None  # a cycle


def ui_to_api(wf: Any, schemas: Mapping[str, Any], *, strict: bool = False) -> dict[str, dict]:
    """Convert a UI-format workflow to the API prompt ``/prompt`` expects: ``{id: {class_type, inputs, _meta}}``.

    Widget values are taken in schema order; control_after_generate, combo filter and upload values are dropped; UI-only
    nodes are skipped; muted nodes (mode 2) are left out together with inputs that pointed at them; bypassed nodes
    (mode 4) are left out and their consumers are wired to the bypassed node's input of the same type. Raises
    :class:`InputError` when the workflow cannot be converted (``strict=True``: on any problem, bad widget values
    included).
    """
    parsed, known, problems = check_ui_workflow(wf, schemas)
    blocking = [p for p in problems if p.blocking or strict]
    if blocking:
        raise InputError(*explain_problems(blocking))
    prompt: dict[str, dict] = {}
    wired: list[tuple[str, str]] = []
    for node in parsed.nodes.values():
        if node.type in UI_ONLY_NODES or node.mode in (MODE_MUTED, MODE_BYPASS):
            continue
        schema = known[node.type]
        inputs: dict[str, Any] = dict(widget_values(node, schema, []))
        for entry in node.inputs:
            spec = schema.input(entry.name)
            if entry.link is None or spec is None or entry.link not in parsed.links:
                continue
            resolved = _resolve_origin(parsed, parsed.links[entry.link], entry.type)
            if resolved is None:
                continue  # dangling after bypass/reroute: a widget keeps its saved value, a socket stays empty
            origin, link = resolved
            if origin.type == "PrimitiveNode":
                if isinstance(origin.widgets_values, list) and origin.widgets_values:
                    inputs[entry.name] = origin.widgets_values[0]
            elif origin.type not in UI_ONLY_NODES:
                inputs[entry.name] = [origin.id, link.origin_slot]
                wired.append((node.id, entry.name))
        meta_title = node.title or schema.display_name or node.type
        prompt[node.id] = {"class_type": node.type, "inputs": inputs, "_meta": {"title": meta_title}}
    for node_id, name in wired:  # drop inputs fed by nodes that were left out (muted ones)
        if prompt[node_id]["inputs"][name][0] not in prompt:
            del prompt[node_id]["inputs"][name]
    return prompt


def api_types(prompt: Mapping[str, Any]) -> Iterable[str]:
    """Class types used by an API prompt (handy for assertions)."""
    return sorted({v.get("class_type") for v in prompt.values() if isinstance(v, Mapping)})
