"""Evaluation nodes: the identity score (FaceSim-Arc / FaceSim-Cur / CLIPScore, plot, JSON) and a seed list for
best-of-N.

Best of N the ComfyUI way: 'IDVideo Seed List' outputs a *list* of seeds (``OUTPUT_IS_LIST``); ComfyUI then runs the
sampler once per seed, and the score node, which takes its inputs as lists (``INPUT_IS_LIST``), receives every
video, scores each and outputs the best one.
"""
from __future__ import annotations

from ._common import CATEGORY, FACE_MODELS, FACES, user_errors

PROTOCOL_CHOICES = ("OpenS2V-Eval (32 frames)", "ConsisID (16 frames)")


def _first(value, default=None):
    """INPUT_IS_LIST hands every input as a list (one entry per upstream run); the settings are the first entry."""
    if isinstance(value, list):
        return value[0] if value else default
    return default if value is None else value


class IDVSeedList:
    DESCRIPTION = ("Turns '1, 2, 3' into a list of seeds. Connect it to the sampler's seed: ComfyUI runs the sampler "
                   "once per seed, and 'IDVideo Identity Score' receives all the videos and keeps the best.")
    SEARCH_ALIASES = ["seeds", "best of n", "seed batch", "multiple seeds"]
    CATEGORY = f"{CATEGORY}/evaluate"
    FUNCTION = "seeds"
    RETURN_TYPES = ("INT",)
    RETURN_NAMES = ("seed",)
    OUTPUT_IS_LIST = (True,)
    OUTPUT_TOOLTIPS = ("One seed per entry, as a list: every node after it runs once per seed.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "seeds": ("STRING", {"default": "1, 2, 3", "tooltip": "Comma-separated seeds, e.g. '1, 2, 3'. Ranges "
                                 "work too: '10-13' = 10, 11, 12, 13."}),
        }}

    @user_errors
    def seeds(self, seeds):
        from idvideo_core.evaluate.seeds import parse_seeds

        return (parse_seeds(seeds),)


class IDVIdentityScore:
    DESCRIPTION = ("Measures how well the video kept the identity of the reference face(s): FaceSim-Arc (ArcFace, "
                   "insightface's buffalo_l as the benchmarks use), FaceSim-Cur (CurricularFace IR-101, when its "
                   "file is present) and CLIPScore (when a clip-vit-base-patch32 folder is present and a prompt is "
                   "given), with the OpenS2V-Eval or ConsisID protocol. Several people are matched to faces one to "
                   "one per frame; frames without a matching face are reported as missing, never scored 0. Draws "
                   "the similarity per frame. Given several videos (a seed list), scores each and outputs the best.")
    SEARCH_ALIASES = ["facesim", "identity score", "face similarity", "arcface score", "clip score", "evaluate",
                      "best of n", "curricularface"]
    CATEGORY = f"{CATEGORY}/evaluate"
    FUNCTION = "score"
    OUTPUT_NODE = True
    INPUT_IS_LIST = True
    RETURN_TYPES = ("FLOAT", "FLOAT", "FLOAT", "IMAGE", "STRING", "IMAGE", "INT")
    RETURN_NAMES = ("facesim_arc", "facesim_cur", "clip_score", "plot", "report", "best_frames", "best_index")
    OUTPUT_TOOLTIPS = (
        "FaceSim-Arc of the (best) video, 0-1, mean over identities; 0 when no face matched (see the report).",
        "FaceSim-Cur of the (best) video, 0-1; 0 when CurricularFace is not installed (see the report).",
        "CLIPScore (×100 logit scale, ~25-35 for good prompt alignment); 0 without a CLIP model or prompt.",
        "Similarity per frame per identity, missing frames marked with a red ✕, means as dotted lines; one chart "
        "per video.",
        "The full report as JSON: models used, protocol, per identity and per frame scores, missing frames, notes.",
        "The frames of the best-scoring video (the only one when a single video comes in).",
        "Which video was best, counting from 0 in the order they arrived (the seed list's order).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "frames": ("IMAGE", {"tooltip": "The video frames from the sampler. With a seed list before the "
                                            "sampler, every seed's video arrives here."}),
            "faces": (FACES, {"tooltip": "The reference face(s) from 'IDVideo Face Loader' (with 'all (left to "
                                         "right)' each person is one identity)."}),
            "face_models": (FACE_MODELS, {"tooltip": "From 'IDVideo Face Models Loader'; its provider is used and "
                                                     "its folder is searched for buffalo_l and CurricularFace."}),
            "protocol": (list(PROTOCOL_CHOICES), {"default": PROTOCOL_CHOICES[0], "tooltip": "OpenS2V-Eval: 32 "
                         "frames, FaceSim-Cur leaves zero frames out. ConsisID: 16 frames, zeros averaged in."}),
        }, "optional": {
            "prompt": ("STRING", {"default": "", "multiline": True, "tooltip": "The video's prompt, for the "
                                  "CLIPScore (leave empty to skip it)."}),
            "sample_frames": ("INT", {"default": -1, "min": -1, "max": 10000, "tooltip": "-1: the protocol's frame "
                                      "count; 0: every frame; N: N evenly spaced frames."}),
        }}

    @user_errors
    def score(self, frames, faces, face_models, protocol, prompt=None, sample_frames=None):
        from idvideo_core.evaluate.graph import score_for_node
        from idvideo_core.preview import temp_previews_for_ui

        videos = frames if isinstance(frames, list) else [frames]   # INPUT_IS_LIST: one IMAGE per seed
        out = score_for_node(_first(face_models), videos, _first(faces), _first(protocol), _first(prompt, "") or "",
                             int(_first(sample_frames, -1)))
        ui = {"images": temp_previews_for_ui(out["plot"], "idvideo_score"), "text": [out["summary"]],
              "idv_score": [{"title": out["title"]}]}
        return {"ui": ui, "result": (out["facesim_arc"], out["facesim_cur"], out["clip_score"], out["plot"],
                                     out["report"], out["best_frames"], out["best_index"])}


NODE_CLASS_MAPPINGS = {"IDVIdentityScore": IDVIdentityScore, "IDVSeedList": IDVSeedList}
NODE_DISPLAY_NAME_MAPPINGS = {"IDVIdentityScore": "IDVideo Identity Score", "IDVSeedList": "IDVideo Seed List"}
