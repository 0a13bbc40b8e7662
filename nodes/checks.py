"""Queue-time checks of the whole graph (issue 14): conflicting sizes are refused when the prompt is queued, before
any model loads.

ComfyUI validates each node alone (``VALIDATE_INPUTS`` sees the node's own constants, not what its links carry), so
the pack registers a prompt handler that reads the API prompt as posted: for each sampler it follows the
``global_identity`` / ``references`` links to the nodes that make them, reads their size widgets (0 = the connected
model's size, from the family's spec via the model loader's widgets) and compares them with the sampler's own width
and height (0 = auto), using the same rules the sampler applies when it runs (:mod:`idvideo_core.clip`). A conflict is
written into the sampler's hidden ``idv_check`` input, and the sampler's ``VALIDATE_INPUTS`` refuses the prompt with
that sentence: ComfyUI shows it on the node, and nothing has loaded.

Node classes take part by declaring (no family test here):
* loaders: ``idv_family(inputs) -> family key | None``;
* identity makers: ``idv_size(inputs, spec) -> (width, height) | None`` and ``IDV_NODE_NAME``;
* samplers: ``IDV_CLIP_INPUTS`` (the inputs whose producers carry the size).
"""
from __future__ import annotations

import logging
from typing import Any, Mapping, Optional

from idvideo_core import clip

from ._common import CHECK_INPUT

log = logging.getLogger("idvideo")


def _link(value) -> Optional[str]:
    if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int):
        return str(value[0])
    return None


def _int(value) -> Optional[int]:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _spec(prompt, mappings, model_link):
    """The spec of the family behind a ``model`` link: the loader's, looking through nodes that pass the model on
    (the LoRA loader) by their own ``model`` input."""
    from idvideo_core.backbones import registry

    fam, seen = None, set()
    nid = _link(model_link)
    while nid is not None and nid not in seen:
        seen.add(nid)
        node = prompt.get(nid)
        cls = mappings.get(node.get("class_type")) if isinstance(node, dict) else None
        if cls is None:
            return None
        inputs = node.get("inputs") or {}
        if hasattr(cls, "idv_family"):
            fam = cls.idv_family(inputs)
            break
        nid = _link(inputs.get("model"))
    if not fam:
        return None
    try:
        return registry.get(fam)
    except Exception:  # noqa: BLE001 - an unknown family is the loader's own error
        return None


def _sizes(prompt, mappings, link, spec, seen: set) -> list[tuple[int, int, str]]:
    """(w, h, node name) of the node behind ``link`` and of identity nodes chained into it."""
    nid = _link(link)
    if nid is None or nid in seen or nid not in prompt:
        return []
    seen.add(nid)
    node = prompt[nid]
    cls = mappings.get(node.get("class_type"))
    inputs = node.get("inputs") or {}
    out = []
    if hasattr(cls, "idv_size"):
        spec_here = _spec(prompt, mappings, inputs.get("model")) or spec
        size = cls.idv_size(inputs, spec_here)
        if size is not None:
            out.append((size[0], size[1], f"'{getattr(cls, 'IDV_NODE_NAME', node.get('class_type'))}'"))
    for name in getattr(cls, "IDV_CLIP_INPUTS", ()):
        out += _sizes(prompt, mappings, inputs.get(name), spec, seen)
    return out


def prompt_problems(prompt: Mapping[str, Any], mappings: Mapping[str, Any]) -> dict[str, str]:
    """{sampler node id: why its inputs conflict} for an API prompt (empty when everything agrees)."""
    problems: dict[str, str] = {}
    for nid, node in (prompt or {}).items():
        if not isinstance(node, dict):
            continue
        cls = mappings.get(node.get("class_type"))
        names = getattr(cls, "IDV_CLIP_INPUTS", None)
        if not names or hasattr(cls, "idv_size"):
            continue
        inputs = node.get("inputs") or {}
        spec = _spec(prompt, mappings, inputs.get("model"))
        if spec is not None and spec.identity == "face" and _link(inputs.get("global_identity")) is None:
            problems[str(nid)] = (f"The model is {spec.label}, which takes the face as a global identity, but the "
                                  f"sampler's global_identity input is not connected. Fix: connect "
                                  f"'{clip.GLOBAL_ID_NODE}' to it.")
            continue
        sources = []
        for name in names:
            sources += _sizes(prompt, mappings, inputs.get(name), spec, {str(nid)})
        if len({(w, h) for w, h, _ in sources}) > 1:
            listed = ", ".join(f"{w}×{h} from {who}" for w, h, who in dict.fromkeys(sources))
            problems[str(nid)] = (f"The identities connected to the sampler have different sizes: {listed}. Fix: give "
                                  "them the same width and height (0 = the model's size).")
            continue
        width, height = _int(inputs.get("width")), _int(inputs.get("height"))
        if sources and width is not None and height is not None:
            problem = clip.conflict(width, height, sources[0])
            if problem:
                problems[str(nid)] = f"{problem} Fix: {clip.CONFLICT_FIX}"
    return problems


def mark_prompt(json_data: dict, mappings: Mapping[str, Any]) -> dict:
    """The prompt handler: write each sampler's verdict into its hidden ``idv_check`` input (and clear old ones)."""
    prompt = json_data.get("prompt") if isinstance(json_data, dict) else None
    if not isinstance(prompt, dict):
        return json_data
    try:
        problems = prompt_problems(prompt, mappings)
    except Exception as exc:  # noqa: BLE001 - a bug here must never block a prompt; the sampler checks again
        log.warning("IDVideo: the queue-time size check failed (%s); the sampler will check when it runs.", exc)
        return json_data
    for nid, node in prompt.items():
        if isinstance(node, dict) and isinstance(node.get("inputs"), dict):
            node["inputs"].pop(CHECK_INPUT, None)
            if str(nid) in problems:
                node["inputs"][CHECK_INPUT] = problems[str(nid)]
    return json_data


def install(mappings: Mapping[str, Any]) -> bool:
    """Register the queue-time check with ComfyUI's server (a no-op outside ComfyUI)."""
    from idvideo_core import bridge

    def handler(json_data):
        return mark_prompt(json_data, mappings)

    handler.__qualname__ = "idvideo_queue_check"
    return bridge.add_prompt_handler(handler)
