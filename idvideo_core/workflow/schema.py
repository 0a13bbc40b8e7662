"""Node schemas, normalised from V1 classes, V3 classes or ``/object_info`` entries, plus the frontend's widget rules.

Why a normalised form: the checker must work both in plain pytest (node classes from ``NODE_CLASS_MAPPINGS``) and
against a running server (``/object_info`` JSON), and the widget layout (which inputs are widgets, which extra
values the frontend stores after them) must be computed the same way for both.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InputError

UI_ONLY_NODES = frozenset({"Note", "MarkdownNote", "Reroute", "PrimitiveNode"})
"""Frontend-only node types: they never reach the server."""

WIDGET_TYPES = frozenset({
    "INT", "FLOAT", "BOOLEAN", "STRING", "COMBO", "MARKDOWN", "IMAGEUPLOAD", "FILEUPLOAD", "COLOR", "IMAGECOMPARE",
    "TREESELECT", "MULTISELECT", "CHART", "GALLERIA", "SELECTBUTTON", "TEXTAREA",
})
"""Types the frontend builds a widget for (its ``ComfyWidgets`` table). Widgets added by JS extensions are not known."""

UPLOAD_OPTIONS = ("image_upload", "video_upload", "animated_image_upload")
SEED_NAMES = ("seed", "noise_seed")


@dataclass(frozen=True)
class InputSpec:
    """One declared node input (required or optional; hidden inputs never appear in a workflow)."""

    name: str
    type: str
    options: Mapping[str, Any]
    required: bool
    choices: tuple | None = None  # COMBO choices

    @property
    def is_widget(self) -> bool:
        return self.type in WIDGET_TYPES and not self.options.get("forceInput", False)

    @property
    def is_upload_combo(self) -> bool:
        return self.type == "COMBO" and any(self.options.get(k) is True for k in UPLOAD_OPTIONS)

    @property
    def control_widgets(self) -> tuple[str, ...]:
        """Extra widget kinds the frontend adds after this widget (see module docstring)."""
        ctl = self.options.get("control_after_generate")
        if self.type == "INT":
            if ctl is None:
                ctl = self.name in SEED_NAMES
            return ("control",) if ctl else ()
        if self.type == "COMBO" and ctl:
            return ("control", "filter")
        return ()


@dataclass(frozen=True)
class WidgetSlot:
    """One entry of ``widgets_values``: the value of an input (``kind="value"``) or a frontend-only helper."""

    name: str
    kind: str  # "value" | "control" | "filter" | "upload"
    spec: InputSpec


@dataclass(frozen=True)
class NodeSchema:
    class_type: str
    inputs: tuple[InputSpec, ...]
    outputs: tuple[str, ...]
    output_names: tuple[str, ...]
    display_name: str = ""

    def input(self, name: str) -> InputSpec | None:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        return None

    @property
    def widget_slots(self) -> tuple[WidgetSlot, ...]:
        slots: list[WidgetSlot] = []
        upload: InputSpec | None = None
        required = [s for s in self.inputs if s.required]
        optional = [s for s in self.inputs if not s.required]
        for group in (required, optional):
            for spec in group:
                if not spec.is_widget:
                    continue
                slots.append(WidgetSlot(spec.name, "value", spec))
                slots += [WidgetSlot(f"{spec.name}.{kind}", kind, spec) for kind in spec.control_widgets]
                if group is required and upload is None and spec.is_upload_combo:
                    upload = spec
            if group is required and upload is not None:
                slots.append(WidgetSlot("upload", "upload", upload))
        return tuple(slots)


def _parse_input_spec(name: str, raw: Any, required: bool, where: str) -> InputSpec:
    if isinstance(raw, str):  # tolerated shorthand: "IMAGE" instead of ("IMAGE",)
        raw = (raw,)
    if not isinstance(raw, (list, tuple)) or not raw:
        raise InputError(f"{where}: input '{name}' is declared as {raw!r}, not as (TYPE, options).",
                         "Fix the node's INPUT_TYPES.")
    kind = raw[0]
    options = raw[1] if len(raw) > 1 and isinstance(raw[1], Mapping) else {}
    if isinstance(kind, (list, tuple)):
        return InputSpec(name, "COMBO", options, required, tuple(kind))
    kind = str(kind)
    choices = options.get("options") if kind == "COMBO" else None
    return InputSpec(name, kind, options, required, tuple(choices) if isinstance(choices, (list, tuple)) else None)


def _schema_from_info(class_type: str, info: Mapping[str, Any]) -> NodeSchema:
    """Build a schema from an ``/object_info`` entry (also what V3 nodes' ``GET_NODE_INFO_V1`` returns)."""
    where = f"schema of {class_type}"
    sections = info.get("input") or {}
    order = info.get("input_order") or {}
    if not isinstance(sections, Mapping):
        raise InputError(f"{where}: 'input' is not a mapping.", "Fix the node definition.")
    inputs: list[InputSpec] = []
    for section in ("required", "optional"):
        declared = sections.get(section) or {}
        if not isinstance(declared, Mapping):
            raise InputError(f"{where}: '{section}' inputs are not a mapping.", "Fix the node definition.")
        names = [n for n in (order.get(section) or []) if n in declared] if isinstance(order, Mapping) else []
        names += [n for n in declared if n not in names]
        inputs += [_parse_input_spec(n, declared[n], section == "required", where) for n in names]
    outputs = tuple(str(t) if not isinstance(t, (list, tuple)) else "COMBO" for t in (info.get("output") or ()))
    names = tuple(info.get("output_name") or outputs)
    return NodeSchema(class_type, tuple(inputs), outputs, names, str(info.get("display_name") or class_type))


def node_schema(class_type: str, source: Any) -> NodeSchema:
    """Normalise one schema source: an ``/object_info`` dict, a V1 node class, or a V3 ``io.ComfyNode`` class."""
    if isinstance(source, NodeSchema):
        return source
    if isinstance(source, Mapping):
        return _schema_from_info(class_type, source)
    if hasattr(source, "GET_NODE_INFO_V1"):  # V3 node: ComfyUI synthesises the V1 description
        return _schema_from_info(class_type, source.GET_NODE_INFO_V1())
    if hasattr(source, "INPUT_TYPES"):
        try:
            declared = source.INPUT_TYPES()
        except Exception as exc:
            raise InputError(f"{class_type}.INPUT_TYPES() failed: {exc}", "Fix the node definition.") from exc
        info = {"input": declared, "output": tuple(getattr(source, "RETURN_TYPES", ())),
                "output_name": getattr(source, "RETURN_NAMES", None)}
        return _schema_from_info(class_type, info)
    raise InputError(f"No usable schema for node type {class_type!r} (got {type(source).__name__}).",
                     "Pass node classes (NODE_CLASS_MAPPINGS values) or /object_info entries.")


def node_schemas(schemas: Mapping[str, Any]) -> dict[str, NodeSchema]:
    if not isinstance(schemas, Mapping):
        raise InputError("Node schemas must be a mapping {class_type: node class or /object_info entry}.")
    return {str(k): node_schema(str(k), v) for k, v in schemas.items()}

