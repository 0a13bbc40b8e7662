"""One source of truth for the video's size and length (issue 14, item 2).

The sampler's width/height/frames are 0 (auto) by default and follow what is connected (the global identity's or the
references' size, else the model's trained size and default length, read from the family's spec); a set value that
contradicts a connected identity is refused, and the same rule refuses the prompt when it is queued (the pack's
prompt handler + the sampler's VALIDATE_INPUTS) before any model loads."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from idvideo_core import errors as E

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------- the rule itself
def test_auto_follows_identity_then_model():
    from types import SimpleNamespace

    from idvideo_core.backbones import registry
    from idvideo_core.clip import resolve_clip

    for fam in registry.families():
        spec = registry.get(fam)
        d = spec.defaults
        clip = resolve_clip(spec, None, 0, 0, 0)
        assert (clip.width, clip.height, clip.num_frames) == (d.width, d.height, d.num_frames)
    wan = registry.get("phantom_wan")
    refs = [SimpleNamespace(image=torch.zeros(1, 32, 64, 3))] * 2
    auto = resolve_clip(wan, None, 0, 0, 5, references=refs)
    assert (auto.width, auto.height, auto.num_frames) == (64, 32, 5)
    assert resolve_clip(wan, None, 64, 32, 5, references=refs).width == 64          # set and agreeing: fine
    with pytest.raises(E.InputError, match="set to 32×32 but the identity .* was made at 64×32"):
        resolve_clip(wan, None, 32, 32, 5, references=refs)
    gi = SimpleNamespace(width=96, height=64)
    with pytest.raises(E.InputError, match="different sizes"):
        resolve_clip(wan, None, 0, 0, 5, global_identity=gi, references=refs)


# --------------------------------------------------------------------------------------------- through the nodes
@pytest.fixture(scope="module")
def graph(pack, consisid_folder, tmp_path_factory):
    from node_graphs import load_graph, models_tree

    root = models_tree(tmp_path_factory.mktemp("sizes_models"), consisid_folder)
    mp = pytest.MonkeyPatch()
    mp.setenv("IDVIDEO_MODELS_DIR", str(root))
    g = load_graph(pack.NODE_CLASS_MAPPINGS)
    g.M = pack.NODE_CLASS_MAPPINGS
    yield g
    mp.undo()


def test_sampler_auto_size_follows_the_references(graph):
    """Concatenator at 32×32 (node_graphs), sampler width/height/cfg 0: the video is 32×32, at Wan's cfg 5."""
    frames, = graph.sampler.sample(graph.wan, graph.wan_text, 0, 0, 5, 1, 0.0, 1, references=graph.refs)
    assert tuple(frames.shape[1:3]) == (32, 32)
    with pytest.raises(E.InputError) as err:
        graph.sampler.sample(graph.wan, graph.wan_text, 48, 32, 5, 1, 5.0, 1, references=graph.refs)
    assert "made at 32×32" in str(err.value) and "'IDVideo Multi-Identity Concatenator'" in str(err.value)


def test_global_identity_and_sampler_follow_the_consisid_model(graph):
    """Extractor width/height 0 = the model's trained size; the sampler at 0 takes the identity's size."""
    from idvideo_core.testing.tiny_consisid import TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH

    ident, _ = graph.M["IDVGlobalIdentity"]().extract(graph.model, graph.faces, 0, 0)
    assert (ident.width, ident.height) == (TINY_WIDTH, TINY_HEIGHT)
    frames, = graph.sampler.sample(graph.model, graph.text, 0, 0, TINY_FRAMES, 1, 0.0, 1, vae_tiling=False,
                                   global_identity=ident, local_identity=graph.local)
    assert tuple(frames.shape[1:3]) == (TINY_HEIGHT, TINY_WIDTH)


# ------------------------------------------------------------------------------------------------ at queue time
def _prompt(pack, name):
    from idvideo_core.workflow import ui_to_api

    class LoadImage:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"image": ([name for name in ("example.png",)], {"image_upload": True})}}
        RETURN_TYPES = ("IMAGE", "MASK")
        RETURN_NAMES = ("IMAGE", "MASK")

    wf = json.loads((ROOT / "workflows" / name).read_text())
    return ui_to_api(wf, {**pack.NODE_CLASS_MAPPINGS, "LoadImage": LoadImage})


def _node(prompt, cls):
    return next(n for n in prompt.values() if n["class_type"] == cls)


def queue_verdicts(pack, prompt) -> dict:
    checks = __import__(f"{pack.__name__}.nodes.checks", fromlist=["mark_prompt"])
    data = checks.mark_prompt({"prompt": copy.deepcopy(prompt)}, pack.NODE_CLASS_MAPPINGS)
    out = {}
    for nid, node in data["prompt"].items():
        cls = pack.NODE_CLASS_MAPPINGS.get(node["class_type"])
        if cls is not None and hasattr(cls, "VALIDATE_INPUTS") and "idv_check" in node["inputs"]:
            out[nid] = cls.VALIDATE_INPUTS(idv_check=node["inputs"]["idv_check"])
    return out


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "workflows").glob("*.json")))
def test_templates_pass_the_queue_check(pack, name):
    assert queue_verdicts(pack, _prompt(pack, name)) == {}


def test_conflicting_sampler_size_is_refused_when_queued(pack):
    for name in ("multi_identity_concatid.json", "virtual_tryon.json"):
        prompt = _prompt(pack, name)
        concat = _node(prompt, "IDVMultiIdentityConcat")["inputs"]
        sampler = _node(prompt, "IDVSampler")
        sampler["inputs"].update(width=concat["width"] + 16, height=0)
        verdicts = queue_verdicts(pack, prompt)
        assert len(verdicts) == 1, name
        msg = next(iter(verdicts.values()))
        assert isinstance(msg, str) and f"set to {concat['width'] + 16}×auto" in msg
        assert f"made at {concat['width']}×{concat['height']}" in msg and "Concatenator" in msg and "Fix:" in msg
        sampler["inputs"]["width"], sampler["inputs"]["height"] = 0, 0      # auto: follows the concatenator
        assert queue_verdicts(pack, prompt) == {}


def test_consisid_identity_default_follows_the_model_at_queue_time(pack):
    from idvideo_core.backbones import registry

    d = registry.get("consisid").defaults
    prompt = _prompt(pack, "single_identity_consisid.json")
    assert _node(prompt, "IDVGlobalIdentity")["inputs"]["width"] == 0       # model's size
    _node(prompt, "IDVSampler")["inputs"].update(width=832, height=480)
    msg = next(iter(queue_verdicts(pack, prompt).values()))
    assert f"made at {d.width}×{d.height}" in msg
    # the sampler of a ConsisID model without the face is refused too
    prompt = _prompt(pack, "single_identity_consisid.json")
    del _node(prompt, "IDVSampler")["inputs"]["global_identity"]
    msg = next(iter(queue_verdicts(pack, prompt).values()))
    assert "global_identity input is not connected" in msg and "'IDVideo Global Identity Extractor'" in msg


def test_a_stale_check_value_from_a_client_is_dropped(pack):
    prompt = _prompt(pack, "multi_identity_concatid.json")
    _node(prompt, "IDVSampler")["inputs"]["idv_check"] = "left over"
    assert queue_verdicts(pack, prompt) == {}


def test_sampler_defaults_are_auto(pack):
    req = pack.NODE_CLASS_MAPPINGS["IDVSampler"].INPUT_TYPES()["required"]
    assert [req[k][1]["default"] for k in ("width", "height", "num_frames", "cfg")] == [0, 0, 0, 0.0]
    gi = pack.NODE_CLASS_MAPPINGS["IDVGlobalIdentity"].INPUT_TYPES()["required"]
    assert (gi["width"][1]["default"], gi["height"][1]["default"]) == (0, 0)
