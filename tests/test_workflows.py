"""Workflow JSON checks: the shipped templates match the pack's nodes, and the checker/converter itself is right.

The per-template test imports the pack the way ComfyUI does (root ``__init__.py`` by path) and validates every
``workflows/*.json`` against its ``NODE_CLASS_MAPPINGS`` plus stubs of the few ComfyUI core nodes templates use. The
rest exercises :mod:`idvideo_core.workflow` on a small sample workflow written in the frontend's save format.
"""
from __future__ import annotations

import copy
import importlib.util
import json
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from idvideo_core.errors import InputError
from idvideo_core.workflow import (
    load_workflow,
    node_schema,
    ui_to_api,
    validate_ui_workflow,
)

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((REPO / "workflows").glob("*.json"))


def _support():
    """Load tests/comfyui/idv_comfy_support.py by path (tests/ is not a package)."""
    name = "idv_comfy_support"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "tests" / "comfyui" / "idv_comfy_support.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


# ------------------------------------------------------------------------------------------- ComfyUI core node stubs
# Signatures copied as data from ComfyUI 0.3.64 (nodes.py LoadImage/SaveImage/PreviewImage, comfy_extras/nodes_video.py
# CreateVideo/SaveVideo) in /object_info form. LoadImage's choices are the files of the input folder; templates name
# whatever image the creator uploads, so the upload combo is checked only for being a file name.
CORE_SCHEMAS = {
    "LoadImage": {"input": {"required": {"image": [["example.png"], {"image_upload": True}]}},
                  "output": ["IMAGE", "MASK"], "output_name": ["IMAGE", "MASK"], "display_name": "Load Image"},
    "PreviewImage": {"input": {"required": {"images": ["IMAGE"]}}, "output": []},
    "SaveImage": {"input": {"required": {"images": ["IMAGE"], "filename_prefix": ["STRING", {"default": "ComfyUI"}]}},
                  "output": []},
    "CreateVideo": {"input": {"required": {"images": ["IMAGE"], "fps": ["FLOAT", {"default": 30.0, "min": 1.0,
                                                                                    "max": 120.0}]},
                              "optional": {"audio": ["AUDIO"]}}, "output": ["VIDEO"]},
    "SaveVideo": {"input": {"required": {"video": ["VIDEO"], "filename_prefix": ["STRING", {"default": "video/ComfyUI"}],
                                         "format": [["auto", "mp4"], {"default": "auto"}],
                                         "codec": [["auto", "h264"], {"default": "auto"}]}}, "output": []},
}


@pytest.fixture(scope="module")
def pack_schemas(tmp_path_factory):
    """The pack's node classes plus core stubs, with the tiny model tree installed.

    Model combos list the folders found under the models directory, so the templates' model names only validate when
    the tiny checkpoints (real layouts, built by ``idvideo_core.testing.build_all``) are there.
    """
    if not WORKFLOWS:
        pytest.skip("workflows/ holds no *.json templates yet")
    from idvideo_core.testing import build_all

    models = build_all(tmp_path_factory.mktemp("models"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IDVIDEO_MODELS_DIR", str(models))
        pack = _support().load_pack(REPO)
        mappings = getattr(pack, "NODE_CLASS_MAPPINGS", None)
        assert mappings, "the pack's __init__.py exports no NODE_CLASS_MAPPINGS"
        yield {**CORE_SCHEMAS, **mappings}


@pytest.mark.parametrize("path", WORKFLOWS or [None], ids=[p.name for p in WORKFLOWS] or ["no-workflows"])
def test_shipped_workflow_matches_nodes(path, pack_schemas):
    if path is None:
        pytest.skip("workflows/ holds no *.json templates yet")
    wf = load_workflow(path)
    schemas = pack_schemas
    problems = validate_ui_workflow(wf, schemas)
    assert problems == [], f"{path.name}:\n" + "\n".join(problems)
    prompt = ui_to_api(wf, schemas, strict=True)
    assert prompt, f"{path.name} converts to an empty prompt"
    assert any(schemas[v["class_type"]] is not None for v in prompt.values())


# -------------------------------------------------------------------------------------------------- sample nodes
class FaceFake:
    """V1 node: IMAGE → IDV_FACE, with a provider combo."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE", {"tooltip": "face photo"}),
                             "provider": (["CPU", "CUDA"], {"default": "CPU"})}}

    RETURN_TYPES = ("IDV_FACE",)


class Blur:
    """V1 node: IMAGE → IMAGE (used for bypass: a bypassed node passes its IMAGE input through)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "radius": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0})}}

    RETURN_TYPES = ("IMAGE",)


class SamplerFake:
    """V1 node with a seed (gets a control_after_generate value), a socket-only INT and an optional widget."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"face": ("IDV_FACE",), "image": ("IMAGE,MASK",),
                             "seed": ("INT", {"default": 0, "min": 0, "max": 2**64 - 1}),
                             "frames": ("INT", {"default": 9, "min": 1, "max": 49, "forceInput": True}),
                             "steps": ("INT", {"default": 4, "min": 1, "max": 100}),
                             "sampler": (["euler", "dpm"], {"control_after_generate": True})},
                "optional": {"prompt": ("STRING", {"multiline": True})},
                "hidden": {"unique_id": "UNIQUE_ID"}}

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("frames",)


class FramesFake:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"count": ("INT", {"default": 9, "min": 1, "max": 49})}}

    RETURN_TYPES = ("INT",)


SCHEMAS = {"LoadImage": CORE_SCHEMAS["LoadImage"], "FaceFake": FaceFake, "Blur": Blur, "SamplerFake": SamplerFake,
           "FramesFake": FramesFake}


def _node(nid, ntype, inputs=(), outputs=(), widgets=None, mode=0, **extra):
    node = {"id": nid, "type": ntype, "pos": [0, 0], "size": [200, 100], "flags": {}, "order": nid, "mode": mode,
            "inputs": [dict(i) for i in inputs], "outputs": [dict(o) for o in outputs],
            "properties": {"Node name for S&R": ntype}}
    if widgets is not None:
        node["widgets_values"] = widgets
    node.update(extra)
    return node


def sample_workflow() -> dict:
    """LoadImage → Blur → (Reroute) → FaceFake → SamplerFake, FramesFake → SamplerFake.frames, plus a Note."""
    return {
        "id": "0b4a1c1e-0000-4000-8000-000000000000", "revision": 0, "last_node_id": 7, "last_link_id": 6,
        "nodes": [
            _node(1, "LoadImage", [{"name": "image", "type": "COMBO", "widget": {"name": "image"}, "link": None},
                                   {"name": "upload", "type": "IMAGEUPLOAD", "widget": {"name": "upload"},
                                    "link": None}],
                  [{"name": "IMAGE", "type": "IMAGE", "links": [1]}, {"name": "MASK", "type": "MASK", "links": []}],
                  ["face.png", "image"]),
            _node(2, "Blur", [{"name": "image", "type": "IMAGE", "link": 1}],
                  [{"name": "IMAGE", "type": "IMAGE", "links": [2, 5]}], [1.5]),
            _node(3, "Reroute", [{"name": "", "type": "*", "link": 2}],
                  [{"name": "", "type": "IMAGE", "links": [3]}]),
            _node(4, "FaceFake", [{"name": "image", "type": "IMAGE", "link": 3}],
                  [{"name": "IDV_FACE", "type": "IDV_FACE", "links": [4]}], ["CPU"]),
            _node(5, "SamplerFake",
                  [{"name": "face", "type": "IDV_FACE", "link": 4}, {"name": "image", "type": "IMAGE,MASK", "link": 5},
                   {"name": "frames", "type": "INT", "link": 6},
                   {"name": "seed", "type": "INT", "widget": {"name": "seed"}, "link": None}],
                  [{"name": "frames", "type": "IMAGE", "links": []}],
                  [42, "randomize", 4, "dpm", "fixed", "", "a person walking"], title="Sampler"),
            _node(6, "FramesFake", [], [{"name": "INT", "type": "INT", "links": [6]}], [17]),
            _node(7, "Note", [], [], ["Set the face image first."]),
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "*"], [3, 3, 0, 4, 0, "IMAGE"],
                  [4, 4, 0, 5, 0, "IDV_FACE"], [5, 2, 0, 5, 1, "IMAGE"], [6, 6, 0, 5, 2, "INT"]],
        "groups": [], "config": {}, "extra": {"ds": {"scale": 1, "offset": [0, 0]}}, "version": 0.4,
    }


EXPECTED_API = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "face.png"}, "_meta": {"title": "Load Image"}},
    "2": {"class_type": "Blur", "inputs": {"radius": 1.5, "image": ["1", 0]}, "_meta": {"title": "Blur"}},
    "4": {"class_type": "FaceFake", "inputs": {"provider": "CPU", "image": ["2", 0]}, "_meta": {"title": "FaceFake"}},
    "5": {"class_type": "SamplerFake", "_meta": {"title": "Sampler"},
          "inputs": {"seed": 42, "steps": 4, "sampler": "dpm", "prompt": "a person walking", "face": ["4", 0],
                     "image": ["2", 0], "frames": ["6", 0]}},
    "6": {"class_type": "FramesFake", "inputs": {"count": 17}, "_meta": {"title": "FramesFake"}},
}


def _object_info(cls) -> dict:
    """What ComfyUI's server.node_info() returns for a V1 class (the subset the checker reads)."""
    declared = cls.INPUT_TYPES()
    return {"input": declared, "input_order": {k: list(v) for k, v in declared.items()},
            "output": list(cls.RETURN_TYPES), "output_name": list(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES))}


# --------------------------------------------------------------------------------------------------- behaviour
def test_sample_is_valid_and_converts():
    wf = sample_workflow()
    assert validate_ui_workflow(wf, SCHEMAS) == []
    assert ui_to_api(wf, SCHEMAS, strict=True) == EXPECTED_API


def test_object_info_schemas_behave_like_classes():
    info = {k: (v if isinstance(v, dict) else _object_info(v)) for k, v in SCHEMAS.items()}
    wf = sample_workflow()
    assert validate_ui_workflow(wf, info) == []
    assert ui_to_api(wf, info) == EXPECTED_API


def test_widget_slots_follow_frontend_rules():
    slots = [(s.name, s.kind) for s in node_schema("SamplerFake", SamplerFake).widget_slots]
    assert slots == [("seed", "value"), ("seed.control", "control"), ("steps", "value"), ("sampler", "value"),
                     ("sampler.control", "control"), ("sampler.filter", "filter"), ("prompt", "value")]
    load = [(s.name, s.kind) for s in node_schema("LoadImage", CORE_SCHEMAS["LoadImage"]).widget_slots]
    assert load == [("image", "value"), ("upload", "upload")]


def test_missing_control_value_is_reported():
    wf = sample_workflow()
    wf["nodes"][4]["widgets_values"].pop(1)  # a workflow saved without the seed's control_after_generate value
    problems = validate_ui_workflow(wf, SCHEMAS)
    assert len(problems) == 1 and "has 6 widget values but SamplerFake expects 7" in problems[0]
    with pytest.raises(InputError, match="does not match the installed nodes"):
        ui_to_api(wf, SCHEMAS)


@pytest.mark.parametrize("mutate, expected", [
    (lambda wf: wf["nodes"][3].update(type="FaceFakeRenamed"), "node type 'FaceFakeRenamed' is not installed"),
    (lambda wf: wf["links"][4].__setitem__(2, 1) or wf["nodes"][1]["outputs"][0]["links"].remove(5)
     or wf["nodes"][0]["outputs"][1]["links"].append(5) or wf["links"][4].__setitem__(1, 1),
     None),  # MASK into "IMAGE,MASK": allowed by the union
    (lambda wf: wf["nodes"][4]["widgets_values"].__setitem__(3, "heun"), "widget 'sampler' is 'heun', not one of"),
    (lambda wf: wf["nodes"][4]["widgets_values"].__setitem__(2, 500), "above the maximum 100"),
    (lambda wf: wf["nodes"][4]["widgets_values"].__setitem__(1, "sometimes"), "control_after_generate value"),
    (lambda wf: wf["nodes"][4]["inputs"][0].update(link=None) or wf["links"].pop(3)
     or wf["nodes"][3]["outputs"][0].update(links=[]), "required input 'face' (IDV_FACE) is not connected"),
    (lambda wf: wf["links"][3].__setitem__(3, 6), "link 4 ends at input #0 of node 6"),
    (lambda wf: wf["nodes"][3]["outputs"][0].update(links=[4, 99]), "lists link 99"),
    (lambda wf: wf["nodes"][4]["inputs"].append({"name": "strength", "type": "FLOAT", "link": None}),
     "input 'strength' that SamplerFake does not declare"),
    (lambda wf: wf["nodes"][3]["outputs"][0].update(type="FACE"), "saved as FACE but FaceFake now returns IDV_FACE"),
])
def test_problems_are_found(mutate, expected):
    wf = sample_workflow()
    mutate(wf)
    problems = validate_ui_workflow(wf, SCHEMAS)
    if expected is None:
        assert problems == []
    else:
        assert any(expected in p for p in problems), problems


def test_wrong_link_type_is_reported():
    wf = sample_workflow()
    # wire LoadImage's MASK into FaceFake's IMAGE input via the reroute
    wf["links"][1] = [2, 1, 1, 3, 0, "MASK"]
    wf["nodes"][0]["outputs"][1]["links"] = [2]
    wf["nodes"][1]["outputs"][0]["links"] = [5]
    problems = validate_ui_workflow(wf, SCHEMAS)
    assert any("connects a MASK output of node 1" in p and "'image' (IMAGE) of node 4" in p for p in problems), problems


def test_bypass_passes_same_type_input_through():
    wf = sample_workflow()
    wf["nodes"][1]["mode"] = 4  # bypass Blur: its consumers get LoadImage's IMAGE
    prompt = ui_to_api(wf, SCHEMAS)
    assert "2" not in prompt
    assert prompt["4"]["inputs"]["image"] == ["1", 0] and prompt["5"]["inputs"]["image"] == ["1", 0]
    wf["nodes"][3]["mode"] = 4  # bypass FaceFake: it has no IDV_FACE input, so the sampler's face input stays empty
    prompt = ui_to_api(wf, SCHEMAS)
    assert "face" not in prompt["5"]["inputs"] and "4" not in prompt


def test_muted_node_and_its_links_are_left_out():
    wf = sample_workflow()
    wf["nodes"][5]["mode"] = 2
    prompt = ui_to_api(wf, SCHEMAS)
    assert "6" not in prompt and "frames" not in prompt["5"]["inputs"]


def test_primitive_node_value_is_used():
    wf = sample_workflow()
    wf["nodes"].append(_node(8, "PrimitiveNode", [], [{"name": "INT", "type": "INT", "links": [7],
                                                        "widget": {"name": "steps"}}], [12, "fixed"]))
    wf["nodes"][4]["inputs"].append({"name": "steps", "type": "INT", "widget": {"name": "steps"}, "link": 7})
    wf["links"].append([7, 8, 0, 5, 4, "INT"])
    assert validate_ui_workflow(wf, SCHEMAS) == []
    assert ui_to_api(wf, SCHEMAS)["5"]["inputs"]["steps"] == 12


def test_v1_links_as_objects():
    wf = sample_workflow()
    keys = ("id", "origin_id", "origin_slot", "target_id", "target_slot", "type")
    wf["links"] = [dict(zip(keys, link)) for link in wf["links"]]
    assert ui_to_api(wf, SCHEMAS) == EXPECTED_API


@pytest.mark.parametrize("bad, message", [
    ([], "top level must be an object"),
    ({"1": {"class_type": "LoadImage", "inputs": {}}}, "looks like an API-format prompt"),
    ({"nodes": {}}, "'nodes' is not a list"),
    ({"nodes": [{"id": 1}]}, "nodes[0].type"),
    ({"nodes": [{"id": True, "type": "Blur"}]}, "nodes[0].id must be an integer"),
    ({"nodes": [{"id": 1, "type": "Blur"}, {"id": 1, "type": "Blur"}]}, "repeats node id 1"),
    ({"nodes": [{"id": 1, "type": "Blur", "inputs": [{"name": "image", "link": "3"}]}]}, "link must be an integer"),
    ({"nodes": [{"id": 1, "type": "Blur", "widgets_values": 3}]}, "widgets_values is neither"),
    ({"nodes": [], "links": [[1, 2, 0]]}, "links[0] must be"),
])
def test_malformed_structure_raises_input_error(bad, message):
    with pytest.raises(InputError) as err:
        validate_ui_workflow(bad, SCHEMAS)
    assert message in str(err.value) and "Fix:" in str(err.value)


def test_load_workflow_reports_bad_json(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"nodes": [')
    with pytest.raises(InputError, match="not valid JSON"):
        load_workflow(broken)
    with pytest.raises(InputError, match="Cannot read workflow file"):
        load_workflow(tmp_path / "missing.json")
    good = tmp_path / "good.json"
    good.write_text(json.dumps(sample_workflow()))
    assert load_workflow(good) == sample_workflow() == load_workflow(good.read_text())


def test_support_loads_pack_like_comfyui(tmp_path):
    pack = tmp_path / "Pack.v2"
    (pack / "nodes").mkdir(parents=True)
    (pack / "nodes" / "__init__.py").write_text("from .blur import Blur\n")
    (pack / "nodes" / "blur.py").write_text("class Blur:\n    RETURN_TYPES = ('IMAGE',)\n")
    (pack / "__init__.py").write_text("from .nodes import Blur\nNODE_CLASS_MAPPINGS = {'Blur': Blur}\n")
    support = _support()
    module = support.load_pack(pack)
    assert module.__name__ == str(pack).replace(".", "_x_") and "Blur" in module.NODE_CLASS_MAPPINGS


# -------------------------------------------------------------------------------------------------------- fuzzing
_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-3, 2**65), st.floats(allow_nan=True),
                       st.text(max_size=6), st.sampled_from(["IMAGE", "Reroute", "PrimitiveNode", "*", "COMBO"]))
_json_value = st.recursive(_json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                              st.dictionaries(st.text(max_size=5), inner, max_size=4)),
                           max_leaves=8)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


@st.composite
def mutated_workflows(draw):
    wf = sample_workflow()
    for _ in range(draw(st.integers(1, 4))):
        paths = list(_paths(wf))
        path = draw(st.sampled_from(paths))
        if not path:
            continue
        parent = wf
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        action = draw(st.sampled_from(["replace", "delete", "duplicate", "small-int"]))
        if action == "replace":
            parent[key] = draw(_json_value)
        elif action == "small-int":
            parent[key] = draw(st.integers(-2, 9))
        elif action == "delete":
            del parent[key]
        elif isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
    return wf


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_workflows(), st.booleans())
def test_fuzzed_workflows_only_raise_input_error(wf, strict):
    try:
        problems = validate_ui_workflow(wf, SCHEMAS)
        assert all(isinstance(p, str) for p in problems)
        prompt = ui_to_api(wf, SCHEMAS, strict=strict)
        json.dumps(prompt)
    except InputError:
        pass


# ------------------------------------------------------------------------ run-workflow: broken file vs pack mismatch
def _template(name="single_identity_consisid.json"):
    return copy.deepcopy(load_workflow(REPO / "workflows" / name))


def test_run_workflow_names_the_broken_link(pack_schemas):
    """A link deleted from the links table is the file's fault: the message names the link and the input, and does
    not send the creator to update the pack (issue 14)."""
    from idvideo_core.remote import build_prompt

    wf = _template()
    gone = wf["links"].pop(0)
    with pytest.raises(InputError) as err:
        build_prompt(wf, pack_schemas)
    text = str(err.value)
    assert "workflow itself is broken" in text and f"link {gone[0]}" in text
    assert "node definitions" not in text and "update the idvideo pack" not in text.lower()


def test_run_workflow_reports_a_pack_mismatch(pack_schemas):
    from idvideo_core.remote import build_prompt

    wf = _template()
    sampler = next(n for n in wf["nodes"] if n["type"] == "IDVSampler")
    sampler["widgets_values"] = sampler["widgets_values"][:-1]   # saved by another version of the pack
    with pytest.raises(InputError) as err:
        build_prompt(wf, pack_schemas)
    text = str(err.value)
    assert "saved with other node definitions" in text and "update the idvideo pack" in text.lower()
    assert "broken" not in text
