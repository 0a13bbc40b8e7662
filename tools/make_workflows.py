"""Write the UI-format templates in workflows/ from the registered node schemas.

Run ``python tools/make_workflows.py`` after changing a node's inputs: widget order and link types always follow the
schemas, so the templates cannot drift from the nodes (tests/test_workflows.py validates them independently).
``python tools/make_workflows.py --thumbnails DIR`` turns the browser test's screenshots in DIR into the templates'
same-name .jpg thumbnails.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}

CORE = {  # the few core nodes the templates use, as ComfyUI 0.3.64 declares them
    "LoadImage": {"required": {"image": (["example.png"], {"image_upload": True})}, "RETURN_TYPES": ("IMAGE", "MASK"),
                  "RETURN_NAMES": ("IMAGE", "MASK")},
}


def load_pack():
    spec = importlib.util.spec_from_file_location("idvideo_pack", ROOT / "__init__.py",
                                                  submodule_search_locations=[str(ROOT)])
    mod = importlib.util.module_from_spec(spec)
    sys.modules["idvideo_pack"] = mod
    spec.loader.exec_module(mod)
    return mod.NODE_CLASS_MAPPINGS


def schema(mappings, type_):
    if type_ in CORE:
        c = CORE[type_]
        return {"required": c["required"]}, c["RETURN_TYPES"], c["RETURN_NAMES"]
    cls = mappings[type_]
    return cls.INPUT_TYPES(), cls.RETURN_TYPES, getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)


def is_widget(spec) -> bool:
    t = spec[0]
    return isinstance(t, list) or t in WIDGET_TYPES


class Graph:
    def __init__(self, mappings):
        self.m = mappings
        self.nodes: list[dict] = []
        self.links: list[list] = []

    def add(self, type_, pos, widgets=None, size=(320, 160), title=None):
        inputs, rtypes, rnames = schema(self.m, type_)
        widgets = dict(widgets or {})
        node = {"id": len(self.nodes) + 1, "type": type_, "pos": list(pos), "size": list(size), "flags": {},
                "order": len(self.nodes), "mode": 0, "inputs": [], "outputs": [],
                "properties": {"Node name for S&R": type_, "cnr_id": "idvideo" if type_ not in CORE else "comfy-core"},
                "widgets_values": []}
        if title:
            node["title"] = title
        for section in ("required", "optional"):
            for name, spec in inputs.get(section, {}).items():
                if is_widget(spec):
                    opts = spec[1] if len(spec) > 1 else {}
                    if name in widgets:
                        val = widgets.pop(name)
                    elif isinstance(spec[0], list):
                        val = opts.get("default", spec[0][0])
                    else:
                        val = opts.get("default")
                    node["widgets_values"].append(val)
                    if opts.get("control_after_generate"):
                        node["widgets_values"].append("fixed")
                    if opts.get("image_upload"):
                        node["widgets_values"].append("image")
                else:
                    node["inputs"].append({"name": name, "type": spec[0], "link": None})
        if widgets:
            raise KeyError(f"{type_}: unknown widgets {sorted(widgets)}")
        for i, (t, n) in enumerate(zip(rtypes, rnames)):
            node["outputs"].append({"name": n, "type": t, "slot_index": i, "links": []})
        self.nodes.append(node)
        return node

    def note(self, pos, text, size=(420, 300), title="Read me"):
        node = {"id": len(self.nodes) + 1, "type": "Note", "pos": list(pos), "size": list(size), "flags": {},
                "order": len(self.nodes), "mode": 0, "inputs": [], "outputs": [], "title": title,
                "properties": {}, "widgets_values": [text]}
        self.nodes.append(node)
        return node

    def link(self, src, out_name, dst, in_name):
        o = next(i for i, x in enumerate(src["outputs"]) if x["name"] == out_name)
        j = next(i for i, x in enumerate(dst["inputs"]) if x["name"] == in_name)
        lid = len(self.links) + 1
        t = src["outputs"][o]["type"]
        self.links.append([lid, src["id"], o, dst["id"], j, t])
        src["outputs"][o]["links"].append(lid)
        dst["inputs"][j]["link"] = lid

    def link_widget(self, src, out_name, dst, widget):
        """Feed a widget from a link (the frontend's 'convert widget to input'); its saved value stays in place."""
        o = next(i for i, x in enumerate(src["outputs"]) if x["name"] == out_name)
        lid = len(self.links) + 1
        t = src["outputs"][o]["type"]
        self.links.append([lid, src["id"], o, dst["id"], len(dst["inputs"]), t])
        src["outputs"][o]["links"].append(lid)
        dst["inputs"].append({"name": widget, "type": t, "widget": {"name": widget}, "link": lid})

    def dump(self, path: Path):
        wf = {"last_node_id": len(self.nodes), "last_link_id": len(self.links), "nodes": self.nodes,
              "links": self.links, "groups": [], "config": {}, "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}},
              "version": 0.4}
        path.write_text(json.dumps(wf, indent=1, ensure_ascii=False) + "\n")


CONSISID_NOTE = """IDVideo — single-identity video with ConsisID

1. Replace example.png in 'Load Image' with a clear photo of one person (face at least ~100 px wide).
2. Weights (nothing is downloaded):
   - ConsisID model: the whole repository huggingface.co/BestWishYsh/ConsisID-preview as a folder
     ComfyUI/models/consisid/ConsisID-preview/ (transformer/, vae/, text_encoder/, tokenizer/, scheduler/, face_encoder/).
   - Face models are read from that folder's face_encoder/, or from the shared folders other face packs use:
     ComfyUI/models/insightface/models/antelopev2/{scrfd_10g_bnkps,glintr100}.onnx (insightface antelopev2 pack),
     ComfyUI/models/facexlib/{detection_Resnet50_Final,parsing_bisenet}.pth (facexlib releases),
     ComfyUI/models/clip_vision/EVA02_CLIP_L_336_psz14_s6B.pt (in ConsisID-preview/face_encoder/).
3. ConsisID-preview makes 720x480, 49 frames (about 6 s at 8 fps). Needs about 24 GB VRAM in 'gpu' mode; choose
   block_swap or sequential on the model loader for smaller cards.
"""


PARK_PROMPT = ("The video shows a person walking through a sunlit park, smiling and looking around. Cinematic light, "
               "shallow depth of field, natural colours.")


def consisid_chain(g: Graph, prompt: str = PARK_PROMPT) -> dict:
    """The ConsisID graph up to the sampler (photo → faces → global + local identity, model → text → sampler);
    returns the node ids the templates built on it connect to."""
    img = g.add("LoadImage", (0, 0), {"image": "example.png"}, size=(300, 320))
    fm = g.add("IDVFaceModelsLoader", (0, 380))
    fl = g.add("IDVFaceLoader", (360, 0))
    kp = g.add("IDVKeypointRenderer", (360, 260))
    ml = g.add("IDVConsisIDModelLoader", (0, 560), {"model": "ConsisID-preview"})
    te = g.add("IDVTextEncode", (360, 560), {"prompt": prompt}, size=(380, 240))
    gi = g.add("IDVGlobalIdentity", (780, 0))
    li = g.add("IDVLocalIdentity", (780, 260))
    sm = g.add("IDVSampler", (1160, 0), size=(340, 480))
    g.link(img, "IMAGE", fl, "image")
    g.link(fm, "face_models", fl, "face_models")
    g.link(fl, "faces", kp, "faces")
    g.link(ml, "model", te, "model")
    g.link(ml, "model", gi, "model")
    g.link(fl, "faces", gi, "faces")
    g.link(kp, "kps_image", gi, "kps_image")
    g.link(fm, "face_models", li, "face_models")
    g.link(fl, "faces", li, "faces")
    g.link(ml, "model", sm, "model")
    g.link(te, "text_embeds", sm, "text_embeds")
    g.link(gi, "global_identity", sm, "global_identity")
    g.link(li, "local_identity", sm, "local_identity")
    return {"face_models": fm, "faces": fl, "sampler": sm}


def single_identity(g: Graph):
    c = consisid_chain(g)
    vc = g.add("IDVideoCombine", (1540, 0), size=(360, 480))
    g.note((780, 560), CONSISID_NOTE, size=(560, 360))
    g.link(c["sampler"], "frames", vc, "images")


WAN_NOTE = """IDVideo — {title}

1. Replace the images in the 'Load Image' nodes with your own ({what}).
2. Weights (nothing is downloaded):
   - Wan2.1-T2V-1.3B base: the folder huggingface.co/Wan-AI/Wan2.1-T2V-1.3B-Diffusers as
     ComfyUI/models/wan/Wan2.1-T2V-1.3B-Diffusers/, or ComfyUI's single files:
     models/diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors, models/vae/wan_2.1_vae.safetensors,
     models/text_encoders/umt5_xxl_fp16.safetensors (huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged).
   - {weights}
   - Face models (shared with other face packs): ComfyUI/models/insightface/models/antelopev2/
     {{scrfd_10g_bnkps,glintr100}}.onnx (insightface antelopev2 pack) and ComfyUI/models/facexlib/
     {{detection_Resnet50_Final,parsing_bisenet}}.pth (github.com/xinntao/facexlib releases); both are also inside
     huggingface.co/BestWishYsh/ConsisID-preview under face_encoder/.
3. Defaults: 832x480, 81 frames at 16 fps, 50 steps, cfg {cfg}.
"""


def _wan(g: Graph, family, dit, face_mode, cfg, prompt, note, subject: bool):
    img = g.add("LoadImage", (0, 0), {"image": "example.png"}, size=(300, 320))
    fm = g.add("IDVFaceModelsLoader", (0, 380))
    fl = g.add("IDVFaceLoader", (360, 0), {"selection": "all (left to right)" if not subject else "largest"})
    cc = g.add("IDVMultiIdentityConcat", (760, 0), {"face_mode": face_mode}, size=(340, 300))
    ml = g.add("IDVWanModelLoader", (0, 560), {"family": family, "base_folder": "Wan2.1-T2V-1.3B-Diffusers",
                                                "dit": dit}, size=(380, 280))
    te = g.add("IDVTextEncode", (420, 560), {"prompt": prompt}, size=(380, 240))
    sm = g.add("IDVSampler", (1140, 0), {"cfg": cfg},  # size and length follow the concatenator and the model
               size=(340, 480))
    vc = g.add("IDVideoCombine", (1520, 0), {"frame_rate": 16.0}, size=(360, 480))
    g.note((840, 560), note, size=(560, 340))
    g.link(img, "IMAGE", fl, "image")
    g.link(fm, "face_models", fl, "face_models")
    g.link(fl, "faces", cc, "faces")
    if subject:
        garment = g.add("LoadImage", (0, 880), {"image": "example.png"}, size=(300, 320), title="Garment")
        g.link(garment, "IMAGE", cc, "subject_1")
    g.link(ml, "model", te, "model")
    g.link(ml, "model", sm, "model")
    g.link(te, "text_embeds", sm, "text_embeds")
    g.link(cc, "references", sm, "references")
    g.link(sm, "frames", vc, "images")


def virtual_tryon(g: Graph):
    _wan(g, "Phantom-Wan", "Phantom-Wan-1.3B.pth", "whole image, white pad (Phantom)", 7.5,
         "The person wears the garment and walks down a city street, turning towards the camera.",
         WAN_NOTE.format(title="virtual try-on with Phantom-Wan (person + garment)",
                         what="a photo of the person and a photo of the garment",
                         weights="Phantom-Wan: Phantom-Wan-1.3B.pth (huggingface.co/bytedance-research/Phantom) in "
                                 "ComfyUI/models/diffusion_models/. Up to 4 references.",
                         cfg=7.5), subject=True)


CONCATID_COG_NOTE = """IDVideo — {title}

1. Replace the image in 'Load Image' with your own ({what}).
2. Weights (nothing is downloaded):
   - Concat-ID-CogVideoX (SAT checkpoints, ModelScope): {weights}
     Each folder holds 'latest' and '<iteration>/mp_rank_00_model_states.pt'; it is read as plain data only
     (weights_only). Optional: convert once with
     python -m idvideo_core.backbones.concatid_cogvideox.convert models/concatid/{folder} models/concatid/{folder}.safetensors
   - T5-XXL + VAE: the CogVideoX-5B diffusers folder huggingface.co/THUDM/CogVideoX-5b as
     ComfyUI/models/cogvideox/CogVideoX-5b/ (text_encoder/, tokenizer/, vae/; the transformer/ is not needed).
     A ConsisID-preview folder in models/consisid/ has the same T5 and VAE and can be picked instead.
   - Face crops: ComfyUI/models/insightface/models/antelopev2/{{scrfd_10g_bnkps,glintr100}}.onnx (insightface
     antelopev2 pack) and the face-parsing folder huggingface.co/jonathandinu/face-parsing as
     ComfyUI/models/concatid/face-parsing/.
3. Official settings: 720x480, 49 frames at 8 fps, 50 steps, CFG 6, seed 42 (SAT sampler; the negative prompt is
   not used: the unconditional branch is the zeroed T5 embedding). About 24 GB VRAM in 'gpu' mode; choose
   block_swap or sequential on the loader for smaller cards.
{extra}"""


def _concatid_cog(g: Graph, weights, selection, prompt, note):
    img = g.add("LoadImage", (0, 0), {"image": "example.png"}, size=(300, 320))
    fm = g.add("IDVFaceModelsLoader", (0, 380))
    fl = g.add("IDVFaceLoader", (360, 0), {"selection": selection})
    cc = g.add("IDVMultiIdentityConcat", (760, 0), {"width": 720, "height": 480,
                                                     "face_mode": "face crop + mask (Concat-ID)"}, size=(340, 300))
    ml = g.add("IDVConcatIDCogVideoXLoader", (0, 560), {"weights": weights, "base_folder": "CogVideoX-5b"},
               size=(380, 260))
    te = g.add("IDVTextEncode", (420, 560), {"prompt": prompt}, size=(380, 240))
    sm = g.add("IDVSampler", (1140, 0), {"width": 720, "height": 480, "num_frames": 49, "steps": 50, "cfg": 6.0,
                                         "seed": 42}, size=(340, 480))
    vc = g.add("IDVideoCombine", (1520, 0), {"frame_rate": 8.0}, size=(360, 480))
    g.note((840, 560), note, size=(600, 400))
    g.link(img, "IMAGE", fl, "image")
    g.link(fm, "face_models", fl, "face_models")
    g.link(fl, "faces", cc, "faces")
    g.link(ml, "model", te, "model")
    g.link(ml, "model", sm, "model")
    g.link(te, "text_embeds", sm, "text_embeds")
    g.link(cc, "references", sm, "references")
    g.link(sm, "frames", vc, "images")


def multi_identity(g: Graph):
    _concatid_cog(g, "two-identities", "all (left to right)",
                  "Two people talk and laugh at a cafe table, warm evening light, handheld camera.",
                  CONCATID_COG_NOTE.format(
                      title="two identities with Concat-ID-CogVideoX (the model Concat-ID trained for it)",
                      what="a group photo with two people, faces clearly visible",
                      weights="models/concatid/two-identities/ from modelscope.cn/models/yongzhong/Concat-ID "
                              "(folder two-identities/).", folder="two-identities",
                      extra="4. Order: the Face Loader takes every face left to right; the leftmost person is "
                            "reference 1 (the official prompt@@img1@@img2), the next reference 2. The concatenator's "
                            "preview and log show the order. Two photos: chain two concatenators (references input)."
                            "\n"))


def single_identity_concatid(g: Graph):
    _concatid_cog(g, "single-identity", "largest",
                  "A person walks through a sunlit park, smiling and looking around. Cinematic light.",
                  CONCATID_COG_NOTE.format(
                      title="single identity with Concat-ID-CogVideoX",
                      what="a clear photo of one person; the largest face is used",
                      weights="models/concatid/single-identity/ from modelscope.cn/models/yongzhong/Concat-ID "
                              "(folder single-identity/), or models/concatid/Concat-ID-pre-training/ from "
                              "modelscope.cn/models/yongzhong/Concat-ID-pre-training (stronger identity, less "
                              "editable).", folder="single-identity", extra=""))


PHANTOM_14B_NOTE = """IDVideo — {title}

1. Replace the images in the 'Load Image' nodes with your own ({what}).
2. Weights (nothing is downloaded):
   - Phantom-Wan-14B: a ComfyUI single file in ComfyUI/models/diffusion_models/ (fp8_e4m3fn, fp8 scaled, fp16 or
     bf16; this template names Phantom-Wan-14B_fp8_e4m3fn.safetensors), or the official shards
     (huggingface.co/bytedance-research/Phantom).
   - Wan2.1 base components, the same files as for 1.3B (UMT5-XXL text encoder, Wan2.1 VAE): the folder
     huggingface.co/Wan-AI/Wan2.1-T2V-1.3B-Diffusers as ComfyUI/models/wan/Wan2.1-T2V-1.3B-Diffusers/, or
     models/vae/wan_2.1_vae.safetensors + models/text_encoders/umt5_xxl_fp16.safetensors
     (huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged).
   - {lora}
   - Face models (shared with other face packs): ComfyUI/models/insightface/models/antelopev2/
     {{scrfd_10g_bnkps,glintr100}}.onnx and ComfyUI/models/facexlib/{{detection_Resnet50_Final,parsing_bisenet}}.pth.
3. {settings}
   Memory: the loader's memory_mode auto picks fp8 storage and block swap for 12-24 GB cards (plan in the console).
"""
DISTILL_LORA = "wan2.1_t2v_14b_lora_rank64_lightx2v_4step.safetensors"
PHANTOM_14B = "Phantom-Wan-14B_fp8_e4m3fn.safetensors"


def _phantom14b(g: Graph, *, selection, face_mode, prompt, note, subject_title, lora: bool, sampler: dict):
    img = g.add("LoadImage", (0, 0), {"image": "example.png"}, size=(300, 320))
    fm = g.add("IDVFaceModelsLoader", (0, 380))
    fl = g.add("IDVFaceLoader", (360, 0), {"selection": selection})
    cc = g.add("IDVMultiIdentityConcat", (760, 0), {"face_mode": face_mode}, size=(340, 300))
    obj = g.add("LoadImage", (0, 880), {"image": "example.png"}, size=(300, 320), title=subject_title)
    ml = g.add("IDVWanModelLoader", (0, 560), {"family": "Phantom-Wan", "base_folder": "Wan2.1-T2V-1.3B-Diffusers",
                                                "dit": PHANTOM_14B}, size=(380, 280))
    te = g.add("IDVTextEncode", (420, 560), {"prompt": prompt}, size=(380, 240))
    sm = g.add("IDVSampler", (1140, 0), {"width": 832, "height": 480, "num_frames": 121, **sampler}, size=(340, 520))
    vc = g.add("IDVideoCombine", (1520, 0), {"frame_rate": 24.0}, size=(360, 480))
    g.note((840, 620), note, size=(600, 380))
    g.link(img, "IMAGE", fl, "image")
    g.link(fm, "face_models", fl, "face_models")
    g.link(fl, "faces", cc, "faces")
    g.link(obj, "IMAGE", cc, "subject_1")
    g.link(ml, "model", te, "model")
    model = ml
    if lora:
        lo = g.add("IDVLoraLoader", (420, 860), {"lora_name": DISTILL_LORA, "strength": 1.0}, size=(380, 130))
        g.link(ml, "model", lo, "model")
        model = lo
    g.link(model, "model", sm, "model")
    g.link(te, "text_embeds", sm, "text_embeds")
    g.link(cc, "references", sm, "references")
    g.link(sm, "frames", vc, "images")


def phantom14b_fast_tryon(g: Graph):
    _phantom14b(g, selection="largest", face_mode="whole image, white pad (Phantom)", subject_title="Garment",
                prompt="The person wears the garment and walks down a city street, turning towards the camera.",
                note=PHANTOM_14B_NOTE.format(
                    title="fast virtual try-on with Phantom-Wan-14B (person + garment, 4 steps)",
                    what="a photo of the person and a photo of the garment",
                    lora=f"lightx2v's 4-step distillation LoRA {DISTILL_LORA} "
                         "(huggingface.co/lightx2v/Wan2.1-Distill-Loras) in ComfyUI/models/loras/, strength 1.",
                    settings="Distilled sampling (the sampler's 'distilled 4-step (lightx2v)' preset): 4 steps, "
                             "timesteps 1000/750/500/250, shift 5, CFG 1 = one transformer pass per step instead of "
                             "Phantom's three (about 37x fewer passes than 50 steps x 3). 832x480, 121 frames at 24 fps "
                             "(Phantom-Wan-14B's trained clip, official README)."),
                lora=True, sampler={"steps": 4, "cfg": 1.0, "sampler_preset": "distilled 4-step (lightx2v)"})


def multi_subject_phantom(g: Graph):
    _phantom14b(g, selection="all (left to right)", face_mode="face crop, no mask", subject_title="Object",
                prompt="Two friends sit on a park bench and share the object, laughing; soft afternoon light.",
                note=PHANTOM_14B_NOTE.format(
                    title="multi-subject video with Phantom-Wan-14B (two people from a group photo + an object)",
                    what="a group photo (every face, left to right, becomes a reference) and a photo of the "
                         "object on a plain background; Phantom takes at most 4 references",
                    lora="optional, for speed: add 'IDVideo LoRA Loader' with lightx2v's 4-step LoRA between the "
                         "model loader and the sampler and pick the 'distilled 4-step (lightx2v)' preset.",
                    settings="Phantom's reference sampling: 50 steps, text guidance 7.5 (image guidance 5), three "
                             "passes per step. 832x480, 121 frames at 24 fps (Phantom-Wan-14B's trained clip, "
                             "official README)."),
                lora=False, sampler={"steps": 50, "cfg": 7.5})


BEST_OF_NOTE = """IDVideo - best of N seeds, kept by identity score

1. 'IDVideo Seed List' feeds the sampler a list of seeds: ComfyUI runs the sampler once per seed (ComfyUI's own
   list execution, no loop nodes needed). 'IDVideo Identity Score' receives every video, scores each against the
   reference face (FaceSim-Arc, FaceSim-Cur, CLIPScore when a prompt is given) and passes the best one on; only that
   one is saved. Its plot shows the similarity per frame of every seed; its report lists all of them.
2. Weights as in single_identity_consisid.json, plus the scoring models (nothing is downloaded):
   - insightface's buffalo_l pack (det_10g.onnx, w600k_r50.onnx) in ComfyUI/models/insightface/models/buffalo_l/
     (also in ConsisID-preview/face_encoder/models/buffalo_l/); without it antelopev2 is used, labelled FALLBACK.
   - optional: glint360k_curricular_face_r101_backbone.bin (huggingface.co/BestWishYsh/OpenS2V-Weight, also in
     ConsisID-preview/face_encoder/) for FaceSim-Cur; clip-vit-base-patch32/ in ComfyUI/models/idvideo/ for CLIPScore.
3. Time grows with the number of seeds.
"""


def best_of_seeds(g: Graph):
    c = consisid_chain(g)
    sm, fl, fm = c["sampler"], c["faces"], c["face_models"]
    seeds = g.add("IDVSeedList", (780, 520), {"seeds": "1, 2, 3"}, size=(300, 100))
    sc = g.add("IDVIdentityScore", (1540, 0), {"prompt": PARK_PROMPT}, size=(380, 420))
    vc = g.add("IDVideoCombine", (1960, 0), size=(360, 480))
    g.note((1160, 560), BEST_OF_NOTE, size=(620, 360))
    g.link_widget(seeds, "seed", sm, "seed")
    g.link(sm, "frames", sc, "frames")
    g.link(fl, "faces", sc, "faces")
    g.link(fm, "face_models", sc, "face_models")
    g.link(sc, "best_frames", vc, "images")


TEMPLATES = {"single_identity_consisid.json": single_identity, "multi_identity_concatid.json": multi_identity,
             "single_identity_concatid.json": single_identity_concatid, "virtual_tryon.json": virtual_tryon,
             "best_of_seeds.json": best_of_seeds, "phantom14b_fast_tryon.json": phantom14b_fast_tryon,
             "multi_subject_phantom.json": multi_subject_phantom}


THUMB_WIDTH = 480


def add_check_line(g: Graph, template: str) -> None:
    """Every template's Note ends with how to check its files (python -m idvideo_core models)."""
    for node in g.nodes:
        if node["type"] == "Note":
            text = node["widgets_values"][0].rstrip("\n")
            node["widgets_values"][0] = (
                text + "\n\nBefore the first run, check the files: in ComfyUI/custom_nodes/<this pack> run\n"
                f"   python -m idvideo_core models --template {template}\n"
                "It lists every file this template needs, each folder searched in order, what is missing, damaged "
                "or\nthe wrong kind, and the exact path to put each missing file.\n")
            node["size"][1] = node["size"][1] + 60


def make_thumbnails(screenshots: Path) -> None:
    """``workflows/<name>.jpg`` from the browser test's screenshots of each loaded template (``<name>.png``).

    The screenshots come from tests/comfyui/test_browser.py (``IDVIDEO_TEST_OUT=<dir>``); ComfyUI's template browser
    shows a same-name .jpg next to each workflow. Downscaled to 480 px wide so they stay small in git.
    """
    from PIL import Image

    for name in TEMPLATES:
        stem = Path(name).stem
        shot = screenshots / f"{stem}.png"
        if not shot.is_file():
            raise SystemExit(f"{shot} is missing: run the browser test with IDVIDEO_TEST_OUT={screenshots} first")
        img = Image.open(shot).convert("RGB")
        img = img.resize((THUMB_WIDTH, round(img.height * THUMB_WIDTH / img.width)), Image.Resampling.LANCZOS)
        target = ROOT / "workflows" / f"{stem}.jpg"
        img.save(target, quality=82, optimize=True)
        print("wrote", target, f"{target.stat().st_size // 1024} KiB")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--thumbnails":
        make_thumbnails(Path(sys.argv[2]))
        return
    mappings = load_pack()
    out = ROOT / "workflows"
    out.mkdir(exist_ok=True)
    for name, build in TEMPLATES.items():
        g = Graph(mappings)
        build(g)
        add_check_line(g, Path(name).stem)
        g.dump(out / name)
        print("wrote", out / name)


if __name__ == "__main__":
    main()
