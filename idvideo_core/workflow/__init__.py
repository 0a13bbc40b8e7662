"""Workflow JSON: load, validate against node schemas, and convert ComfyUI's UI format to the API prompt format.

Why this exists: the pack ships example workflows (UI-format JSON, what ComfyUI's *Save* writes and *Load* reads). A
template that no longer matches the nodes (a renamed input, a changed widget count, a wrong socket type) only shows up
when a creator opens it and gets a red node. These checks catch that in a plain pytest run, without ComfyUI, and the
converter lets integration tests queue the very same templates through ComfyUI's ``/prompt`` endpoint.

The widget rules mirror ComfyUI's frontend (``comfyui-frontend-package`` 1.27, the version pinned by ComfyUI 0.3.64):

* an input is a *widget* when its type has a widget constructor (INT, FLOAT, BOOLEAN, STRING, COMBO (a list of
  choices or ``"COMBO"`` with ``options``), MARKDOWN, …) and it is not ``forceInput``; every other input is a socket;
* an INT widget gets one extra ``control_after_generate`` value after it when its options say
  ``control_after_generate`` or, when the option is absent, when it is named ``seed`` or ``noise_seed``;
* a COMBO widget with ``control_after_generate`` gets two extra values (the control and a filter string);
* the first required combo with ``image_upload``/``video_upload``/``animated_image_upload`` adds an ``upload`` button
  widget after the required inputs; its value (``"image"``) is saved in ``widgets_values`` too;
* ``widgets_values`` holds one value per widget in order: required inputs, then optional ones. Values of control,
  filter and upload widgets are saved in the workflow but never sent in the prompt.

Structural damage (not JSON, wrong container types, duplicate ids) raises :class:`~idvideo_core.errors.InputError`;
semantic problems (unknown node types, wrong links, bad widget values) are returned as readable strings so one run
reports all of them.
"""
from __future__ import annotations

from .check import Problem, check_ui_workflow, types_compatible, validate_ui_workflow
from .convert import MODE_BYPASS, MODE_MUTED, api_types, ui_to_api
from .schema import (
    UI_ONLY_NODES,
    WIDGET_TYPES,
    InputSpec,
    NodeSchema,
    WidgetSlot,
    node_schema,
    node_schemas,
)
from .ui_format import (
    UiInput,
    UiLink,
    UiNode,
    UiOutput,
    UiWorkflow,
    load_workflow,
    parse_ui_workflow,
)

__all__ = [
    "MODE_BYPASS", "MODE_MUTED", "UI_ONLY_NODES", "WIDGET_TYPES", "InputSpec", "NodeSchema", "Problem", "UiInput",
    "UiLink", "UiNode", "UiOutput", "UiWorkflow", "WidgetSlot", "api_types", "check_ui_workflow", "load_workflow",
    "node_schema", "node_schemas", "parse_ui_workflow", "types_compatible", "ui_to_api", "validate_ui_workflow",
]
