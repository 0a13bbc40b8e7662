"""Every template in workflows/ runs end to end on the tiny weights, in CI, without a ComfyUI checkout.

The UI workflow is converted to API format with the pack's converter (as `comfy run` / the frontend do), then executed
node by node in dependency order the way ComfyUI's executor calls V1 nodes (FUNCTION with the inputs as keywords,
`{"ui", "result"}` dicts unwrapped). The one core node the templates use, LoadImage, is provided with ComfyUI's
behaviour (RGB float IMAGE + MASK). The real-ComfyUI run of the same templates is in tests/comfyui/.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = sorted((ROOT / "workflows").glob("*.json"))
SMALL = {"IDVSampler": {"steps": 2}, "IDVGlobalIdentity": {}, "IDVMultiIdentityConcat": {"width": 64, "height": 32}}


class LoadImage:
    """ComfyUI's LoadImage, reduced to what the templates use: an RGB IMAGE and its MASK."""

    RETURN_TYPES = ("IMAGE", "MASK")
    FUNCTION = "load_image"
    photo: Path = None

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": (["example.png"], {"image_upload": True})}}

    def load_image(self, image):
        from PIL import Image

        img = np.asarray(Image.open(self.photo).convert("RGB"), np.float32) / 255.0
        return torch.from_numpy(img)[None], torch.zeros(1, img.shape[0], img.shape[1])


def run_api_prompt(prompt: dict, mappings: dict) -> dict:
    """Execute an API-format prompt in dependency order, with ComfyUI's list rules: a node whose inputs carry lists
    (an ``OUTPUT_IS_LIST`` output upstream) runs once per entry unless it declares ``INPUT_IS_LIST``, which receives
    every input as a list. Returns every node's outputs (a slot holding a single value is unwrapped)."""
    done: dict[str, tuple] = {}

    def run(nid: str):
        if nid in done:
            return done[nid]
        node = prompt[nid]
        cls = mappings[node["class_type"]]
        lists = {}
        for name, value in node["inputs"].items():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                lists[name] = run(value[0])[value[1]]
            else:
                lists[name] = [value]
        if getattr(cls, "INPUT_IS_LIST", False):
            calls = [lists]
        else:
            n = max((len(v) for v in lists.values()), default=1)
            calls = [{k: v[min(i, len(v) - 1)] for k, v in lists.items()} for i in range(n)]
        out_is_list = getattr(cls, "OUTPUT_IS_LIST", None) or (False,) * len(cls.RETURN_TYPES)
        slots = [[] for _ in cls.RETURN_TYPES]
        for kwargs in calls:
            out = getattr(cls(), cls.FUNCTION)(**kwargs)
            out = tuple(out["result"]) if isinstance(out, dict) else tuple(out)
            for k, value in enumerate(out):
                slots[k].extend(value) if out_is_list[k] else slots[k].append(value)
        done[nid] = tuple(slots)
        return done[nid]

    for nid in prompt:
        run(nid)
    return {nid: tuple(v[0] if len(v) == 1 else v for v in slots) for nid, slots in done.items()}


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    from idvideo_core.testing import build_all

    return build_all(tmp_path_factory.mktemp("template_models"))


@pytest.fixture(scope="module")
def group_models(tmp_path_factory):
    """The same tree with a detector that sees two people in the group photo t1.jpg (1024×708 once analysed)."""
    from idvideo_core.testing import build_all
    from idvideo_core.testing.tiny_faces import PlantedFace, write_tiny_scrfd

    root = build_all(tmp_path_factory.mktemp("group_models"))
    scrfd = root / "consisid" / "ConsisID-preview" / "face_encoder" / "models" / "antelopev2" / "scrfd_10g_bnkps.onnx"
    write_tiny_scrfd(scrfd, (1024, 708), [PlantedFace((620, 180, 780, 380)), PlantedFace((150, 200, 300, 390))])
    return root


@pytest.mark.parametrize("path", TEMPLATES, ids=[p.stem for p in TEMPLATES])
def test_template_runs_end_to_end(path, pack, request, tmp_path, monkeypatch):
    tiny_models = request.getfixturevalue("group_models" if "multi" in path.stem else "tiny_models")
    import insightface

    from idvideo_core.testing.tiny_consisid import TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH
    from idvideo_core.video import read_video_metadata
    from idvideo_core.workflow import ui_to_api

    if "best_of" in path.stem:   # the scoring models: tiny buffalo_l (a face in every image) + IR-101
        from idvideo_core.testing.tiny_eval import write_tiny_scoring_models

        write_tiny_scoring_models(tiny_models, always_face=True)
    monkeypatch.setenv("IDVIDEO_MODELS_DIR", str(tiny_models))
    monkeypatch.setenv("IDVIDEO_OUTPUT_DIR", str(tmp_path / "output"))
    images = Path(insightface.__file__).parent / "data" / "images"
    LoadImage.photo = images / ("t1.jpg" if "multi" in path.stem else "Tom_Hanks_54745.png")
    mappings = {**pack.NODE_CLASS_MAPPINGS, "LoadImage": LoadImage}
    wf = json.loads(path.read_text())
    prompt = ui_to_api(wf, mappings)
    api_copy = json.loads(json.dumps(prompt))  # what ComfyUI hands output nodes as the hidden 'prompt'
    consisid = any(n["class_type"] == "IDVConsisIDModelLoader" for n in prompt.values())
    cogvideox = any(n["class_type"] == "IDVConcatIDCogVideoXLoader" for n in prompt.values())
    size = {"width": TINY_WIDTH, "height": TINY_HEIGHT} if consisid else {"width": 64, "height": 32}
    for node in prompt.values():   # the templates carry the real sizes; the tiny models need tiny ones
        ins = node["inputs"]
        if node["class_type"] in ("IDVSampler", "IDVGlobalIdentity", "IDVMultiIdentityConcat"):
            ins.update({k: v for k, v in size.items() if k in ins})
        if node["class_type"] == "IDVSampler":
            ins.update(steps=2, num_frames=TINY_FRAMES if consisid or cogvideox else 5)
        if node["class_type"] == "IDVideoCombine":
            ins["prompt"], ins["extra_pnginfo"] = api_copy, {"workflow": wf}
    outputs = run_api_prompt(prompt, mappings)
    combine = next(k for k, n in prompt.items() if n["class_type"] == "IDVideoCombine")
    frames, _video, video_path = outputs[combine]
    assert frames.shape[1:] == (size["height"], size["width"], 3)
    assert Path(video_path).is_file() and Path(video_path).stat().st_size > 0
    meta = read_video_metadata(video_path)
    embedded = meta["workflow"] if isinstance(meta["workflow"], dict) else json.loads(meta["workflow"])
    assert embedded["nodes"] == wf["nodes"]
    if "best_of" in path.stem:  # one video per seed came into the score node; the best one was saved
        score_id = next(k for k, n in prompt.items() if n["class_type"] == "IDVIdentityScore")
        seeds = next(n for n in prompt.values() if n["class_type"] == "IDVSeedList")["inputs"]["seeds"]
        sampler = next(k for k, n in prompt.items() if n["class_type"] == "IDVSampler")
        videos = outputs[sampler][0]
        n_seeds = len([s for s in seeds.split(",") if s.strip()])
        assert isinstance(videos, list) and len(videos) == n_seeds >= 2
        assert not torch.equal(videos[0], videos[1])                 # different seeds, different videos
        arc, cur, _clip, plot, report, best_frames, best = outputs[score_id]
        data = json.loads(report)
        assert len(data["videos"]) == n_seeds and data["best"] == best
        assert data["videos"][0]["models"]["facesim_arc"].startswith("buffalo_l")
        assert arc == pytest.approx(data["videos"][best]["facesim_arc"]) and cur > 0
        assert max(v["facesim_arc"] for v in data["videos"]) == pytest.approx(arc)
        assert torch.equal(best_frames, videos[best]) and torch.equal(frames, videos[best])
        assert plot.shape[0] == n_seeds and plot.shape[-1] == 3
    if "multi" in path.stem:  # a group photo: every face left to right became a reference
        concat = next(k for k, n in prompt.items() if n["class_type"] == "IDVMultiIdentityConcat")
        refs = outputs[concat][0]
        assert [r.label for r in refs if r.kind == "face"] == ["face 1", "face 2"]
        # left to right: the left face's reference comes first, whatever order the detector reported them in
        faces = outputs[next(k for k, n in prompt.items() if n["class_type"] == "IDVFaceLoader")][0]
        assert [round(float(f.bbox[0])) < 400 for f in faces] == [True, False]


def test_fast_tryon_template_runs_four_single_passes_with_the_lora(tiny_models, pack, tmp_path, monkeypatch):
    """phantom14b_fast_tryon: the LoRA loader's file is merged for the run and the sampler makes 4 transformer passes
    of batch 1 (distilled preset: no negative branch, no image-guidance passes)."""
    import insightface

    from idvideo_core import lora
    from idvideo_core.backbones.wan.transformer import WanDiT
    from idvideo_core.workflow import ui_to_api

    monkeypatch.setenv("IDVIDEO_MODELS_DIR", str(tiny_models))
    monkeypatch.setenv("IDVIDEO_OUTPUT_DIR", str(tmp_path / "output"))
    LoadImage.photo = Path(insightface.__file__).parent / "data" / "images" / "Tom_Hanks_54745.png"
    calls, merged = [], []
    original = WanDiT.forward

    def counting(self, latents, *args, **kwargs):
        calls.append(latents.shape[0])
        merged.append(lora.applied(self))
        return original(self, latents, *args, **kwargs)

    monkeypatch.setattr(WanDiT, "forward", counting)
    mappings = {**pack.NODE_CLASS_MAPPINGS, "LoadImage": LoadImage}
    wf = json.loads((ROOT / "workflows" / "phantom14b_fast_tryon.json").read_text())
    prompt = ui_to_api(wf, mappings)
    for node in prompt.values():
        ins = node["inputs"]
        if node["class_type"] in ("IDVSampler", "IDVMultiIdentityConcat"):
            ins.update(width=64, height=32)
        if node["class_type"] == "IDVSampler":
            ins.update(num_frames=5)
            assert (ins["steps"], ins["cfg"], ins["sampler_preset"]) == (4, 1.0, "distilled 4-step (lightx2v)")
        if node["class_type"] == "IDVideoCombine":
            ins["prompt"], ins["extra_pnginfo"] = json.loads(json.dumps(prompt)), {"workflow": wf}
    outputs = run_api_prompt(prompt, mappings)
    assert calls == [1, 1, 1, 1]
    lora_node = next(k for k, n in prompt.items() if n["class_type"] == "IDVLoraLoader")
    name = prompt[lora_node]["inputs"]["lora_name"]
    assert all(m == ((name, 1.0),) for m in merged)
    assert "NOT applied" not in outputs[lora_node][1]          # every key of the lightx2v-layout file applied
