"""Semantic checks of a parsed UI workflow against node schemas: node types, widget values, links and their types.

Problems are collected, not raised, so one run reports all of them; ``blocking`` ones make conversion impossible.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .schema import UI_ONLY_NODES, InputSpec, NodeSchema, node_schemas
from .ui_format import UiLink, UiNode, UiWorkflow, parse_ui_workflow


@dataclass(frozen=True)
class Problem:
    """A semantic problem. ``blocking`` problems make the workflow impossible to convert to a prompt.

    ``kind`` says whose problem it is: ``"workflow"`` (the file itself is broken: a link that points nowhere, an
    input left unconnected), ``"pack"`` (the workflow was saved with other node definitions than the server's: an
    unknown node type, a changed input, output or widget list) or ``"value"`` (a widget value the server refuses,
    e.g. a model file it does not have).
    """

    message: str
    blocking: bool = True
    kind: str = "workflow"


def types_compatible(origin: str, target: str) -> bool:
    """ComfyUI's rule: ``*`` matches anything, otherwise comma-separated type sets must overlap (exact names)."""
    if origin in ("*", "") or target in ("*", ""):
        return True
    if origin == target:
        return True
    return bool({t.strip() for t in origin.split(",")} & {t.strip() for t in target.split(",")})


def _label(node: UiNode) -> str:
    return f"node {node.id} ({node.type}{', ' + repr(node.title) if node.title else ''})"


def _value_problem(spec: InputSpec, value: Any) -> str | None:
    """Why ``value`` is not acceptable for widget ``spec`` (None when it is)."""
    opts = spec.options
    if spec.type == "COMBO":
        if spec.is_upload_combo or opts.get("remote") or spec.choices is None:
            return None if isinstance(value, str) else f"must be a file name, got {value!r}"
        if not any(value == c and type(value) is type(c) for c in spec.choices):
            shown = ", ".join(repr(c) for c in spec.choices[:8]) + (" …" if len(spec.choices) > 8 else "")
            return f"is {value!r}, not one of the choices ({shown})"
        return None
    if spec.type == "BOOLEAN":
        return None if isinstance(value, bool) else f"must be true or false, got {value!r}"
    if spec.type in ("STRING", "MARKDOWN", "TEXTAREA"):
        return None if isinstance(value, str) else f"must be text, got {value!r}"
    if spec.type in ("INT", "FLOAT"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"must be a number, got {value!r}"
        if spec.type == "INT" and not float(value).is_integer():
            return f"must be a whole number, got {value!r}"
        lo, hi = opts.get("min"), opts.get("max")
        if isinstance(lo, (int, float)) and value < lo:
            return f"is {value}, below the minimum {lo}"
        if isinstance(hi, (int, float)) and value > hi:
            return f"is {value}, above the maximum {hi}"
    return None


def widget_values(node: UiNode, schema: NodeSchema, out: list[Problem]) -> dict[str, Any]:
    """Map widget input names to their saved values, reporting count and value problems."""
    slots = schema.widget_slots
    values = node.widgets_values
    named: dict[str, Any] = {}
    if isinstance(values, dict):
        named = {s.name: values[s.name] for s in slots if s.kind == "value" and s.name in values}
    elif values is not None or slots:
        values = values or []
        if len(values) != len(slots):
            expected = ", ".join(s.name for s in slots) or "none"
            out.append(Problem(f"{_label(node)} has {len(values)} widget values but {schema.class_type} expects "
                               f"{len(slots)} ({expected}).", kind="pack"))
            return {}
        named = {s.name: v for s, v in zip(slots, values) if s.kind == "value"}
        for slot, value in zip(slots, values):
            if slot.kind == "control" and value not in ("fixed", "increment", "decrement", "randomize",
                                                        "increment-wrap"):
                out.append(Problem(f"{_label(node)}: '{slot.spec.name}' control_after_generate value {value!r} "
                                   "is not fixed/increment/decrement/randomize."))
    for name, value in named.items():
        spec = schema.input(name)
        why = _value_problem(spec, value) if spec else None
        if why:
            out.append(Problem(f"{_label(node)}: widget '{name}' {why}.", blocking=False, kind="value"))
    return named


def _check_node(node: UiNode, schema: NodeSchema, wf: UiWorkflow, out: list[Problem]) -> None:
    named = widget_values(node, schema, out)
    linked = {i.name for i in node.inputs if i.link is not None}
    helpers = {s.name for s in schema.widget_slots if s.kind == "upload"}  # the frontend lists it as an input too
    for entry in node.inputs:
        if schema.input(entry.name) is None and entry.name not in helpers:
            out.append(Problem(f"{_label(node)} has an input '{entry.name}' that {schema.class_type} does not "
                               "declare.", kind="pack"))
    for i, entry in enumerate(node.outputs):
        if i >= len(schema.outputs):
            out.append(Problem(f"{_label(node)} has output #{i} '{entry.name}' but {schema.class_type} declares "
                               f"only {len(schema.outputs)} outputs.", kind="pack"))
        elif entry.type not in ("*", schema.outputs[i]):
            out.append(Problem(f"{_label(node)} output #{i} '{entry.name}' is saved as {entry.type} but "
                               f"{schema.class_type} now returns {schema.outputs[i]}.", kind="pack"))
    for spec in schema.inputs:
        if not spec.required or spec.name in linked:
            continue
        if spec.is_widget and (spec.name in named or isinstance(node.widgets_values, list)):
            continue  # a list of the right length carries every widget value (count checked above)
        what = "is not connected" if not spec.is_widget else "has no value"
        out.append(Problem(f"{_label(node)}: required input '{spec.name}' ({spec.type}) {what}.",
                           kind="workflow" if not spec.is_widget else "pack"))


def _source_type(wf: UiWorkflow, schemas: Mapping[str, NodeSchema], link: UiLink) -> tuple[str, UiNode] | None:
    """The type flowing through ``link`` and the node it comes from, looking through Reroute chains."""
    seen: set[int] = set()
    while True:
        origin = wf.nodes.get(link.origin_id)
        if origin is None or link.id in seen:
            return None
        seen.add(link.id)
        if origin.type == "Reroute":
            up = origin.inputs[0].link if origin.inputs else None
            if up is None or up not in wf.links:
                return None
            link = wf.links[up]
            continue
        schema = schemas.get(origin.type)
        if schema is None:
            return None  # PrimitiveNode (its type follows the target) or an unknown type reported elsewhere
        if not 0 <= link.origin_slot < len(schema.outputs):
            return None
        return schema.outputs[link.origin_slot], origin


def _check_links(wf: UiWorkflow, schemas: Mapping[str, NodeSchema], out: list[Problem]) -> None:
    for link in wf.links.values():
        origin, target = wf.nodes.get(link.origin_id), wf.nodes.get(link.target_id)
        if origin is None or target is None:
            missing = link.origin_id if origin is None else link.target_id
            out.append(Problem(f"link {link.id} refers to node {missing}, which is not in the workflow."))
            continue
        if not 0 <= link.origin_slot < len(origin.outputs):
            out.append(Problem(f"link {link.id} starts at output #{link.origin_slot} of {_label(origin)}, which "
                               "has no such output."))
        elif link.id not in origin.outputs[link.origin_slot].links:
            out.append(Problem(f"link {link.id} is missing from the links list of {_label(origin)} output "
                               f"'{origin.outputs[link.origin_slot].name}'."))
        if not 0 <= link.target_slot < len(target.inputs):
            out.append(Problem(f"link {link.id} ends at input #{link.target_slot} of {_label(target)}, which has "
                               "no such input."))
            continue
        entry = target.inputs[link.target_slot]
        if entry.link != link.id:
            out.append(Problem(f"link {link.id} ends at {_label(target)} input '{entry.name}', but that input "
                               f"records link {entry.link}."))
        schema = schemas.get(target.type)
        spec = schema.input(entry.name) if schema else None
        source = _source_type(wf, schemas, link)
        if spec is not None and source is not None and not types_compatible(source[0], spec.type):
            via = f" (through {_label(origin)})" if source[1] is not origin else ""
            out.append(Problem(f"link {link.id} connects a {source[0]} output of {_label(source[1])}{via} to input "
                               f"'{entry.name}' ({spec.type}) of {_label(target)}.", kind="pack"))
    for node in wf.nodes.values():
        for slot, entry in enumerate(node.inputs):
            link = wf.links.get(entry.link) if entry.link is not None else None
            if entry.link is not None and (link is None or (link.target_id, link.target_slot) != (node.id, slot)):
                out.append(Problem(f"{_label(node)} input '{entry.name}' refers to link {entry.link}, which is "
                                   "missing from the links table or ends elsewhere."))
        for slot, output in enumerate(node.outputs):
            for lid in output.links:
                link = wf.links.get(lid)
                if link is None or (link.origin_id, link.origin_slot) != (node.id, slot):
                    out.append(Problem(f"{_label(node)} output '{output.name}' lists link {lid}, which is missing "
                                       "from the links table or starts elsewhere."))


def check_ui_workflow(wf: Any, schemas: Mapping[str, Any]) -> tuple[UiWorkflow, dict[str, NodeSchema],
                                                                     list[Problem]]:
    parsed = parse_ui_workflow(wf)
    known = node_schemas(schemas)
    problems: list[Problem] = []
    for node in parsed.nodes.values():
        if node.type in UI_ONLY_NODES:
            continue
        if node.type in parsed.subgraph_ids:
            problems.append(Problem(f"{_label(node)} is a subgraph; IDVideo's checker does not expand subgraphs.",
                                    kind="value"))
            continue
        schema = known.get(node.type)
        if schema is None:
            problems.append(Problem(f"{_label(node)}: node type '{node.type}' is not installed (known types "
                                    "include the IDVideo pack and the core nodes given to the checker).", kind="pack"))
            continue
        _check_node(node, schema, parsed, problems)
    _check_links(parsed, known, problems)
    return parsed, known, problems


def explain_problems(problems: list[Problem], *, limit: int = 20) -> tuple[str, str]:
    """(message, fix) for blocking problems, telling a broken workflow apart from a pack mismatch."""
    broken = [p.message for p in problems if p.kind == "workflow"]
    mismatch = [p.message for p in problems if p.kind == "pack"]
    values = [p.message for p in problems if p.kind == "value"]
    parts, fixes = [], []
    if broken:
        parts.append("The workflow itself is broken (this is not a version mismatch):\n" +
                     "\n".join(f"  - {m}" for m in broken[:limit]))
        fixes.append("open the workflow in ComfyUI, reconnect the inputs and links named above and save it again")
    if mismatch:
        parts.append("The workflow does not match the installed nodes (it was saved with other node definitions):\n" +
                     "\n".join(f"  - {m}" for m in mismatch[:limit]))
        fixes.append("update the IDVideo pack on the server (or re-save the workflow with the server's version) so "
                     "both have the same nodes")
    if values:
        parts.append("Some widget values are not accepted by the server:\n" +
                     "\n".join(f"  - {m}" for m in values[:limit]))
        fixes.append("pick values the server lists (model files must exist on the server)")
    fix = "; ".join(fixes)
    return "\n".join(parts), fix[:1].upper() + fix[1:] + "."


def validate_ui_workflow(wf: Any, schemas: Mapping[str, Any]) -> list[str]:
    """Every semantic problem of a UI-format workflow, as readable sentences (empty when it is sound).

    ``schemas`` maps class types to V1/V3 node classes or ``/object_info`` entries. Malformed structure raises
    :class:`InputError`.
    """
    return [p.message for p in check_ui_workflow(wf, schemas)[2]]

