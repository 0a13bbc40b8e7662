"""Wan-family nodes: the Wan / Concat-ID / Phantom model loader and the multi-identity concatenator."""
from __future__ import annotations

from idvideo_core import paths
from idvideo_core.runtime import WAN_WEIGHT_STORAGE

from ._common import CATEGORY, FACES, MODEL, REFERENCES, user_errors

FROM_BASE = "(from base folder)"
NONE = "(none)"
FAMILY_LABELS = {"Concat-ID-Wan": "concatid_wan", "Phantom-Wan": "phantom_wan", "Wan2.1 (plain T2V)": "wan"}
FACE_MODES = ("face crop + mask (Concat-ID)", "face crop, no mask", "whole image, white pad (Phantom)",
              "whole image, black pad")
SUBJECT_MODES = ("white pad (Phantom)", "black pad")


def _choices(keys, extra_first):
    return list(extra_first) + paths.list_files(keys)


class IDVWanModelLoader:
    DESCRIPTION = ("Loads a Wan2.1-T2V-1.3B family model: the base from a diffusers folder (models/wan/…) or from "
                   "ComfyUI's single files (diffusion_models, vae, text_encoders), with the DiT weights of "
                   "Concat-ID-Wan (first_stage.pt / second_stage_adaln.pt) or Phantom-Wan-1.3B. The format of each "
                   "file is detected from its keys.")
    SEARCH_ALIASES = ["wan", "concat-id", "phantom", "wan loader"]
    CATEGORY = f"{CATEGORY}/loaders"
    FUNCTION = "load"
    RETURN_TYPES = (MODEL,)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The loaded Wan-family model (DiT, VAE, UMT5 text encoder).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "family": (list(FAMILY_LABELS), {"default": "Concat-ID-Wan", "tooltip": "Which method the DiT "
                       "weights belong to: decides references' RoPE, attention routing and guidance."}),
            "base_folder": ([NONE] + paths.list_model_folders("wan"), {"tooltip": "Wan2.1-T2V-1.3B-Diffusers "
                            "folder under models/wan (optional when the three single files are chosen)."}),
            "dit": ([FROM_BASE] + paths.list_files(("concatid", "diffusion_models")), {"tooltip": "DiT weights: "
                    "Concat-ID .pt (models/concatid), Phantom .pth or a Wan .safetensors (models/diffusion_models), "
                    "bf16/fp16/fp8/fp8-scaled; for the sharded Phantom-Wan-14B pick any of its shards (the index "
                    "beside it is used)."}),
            "vae": ([FROM_BASE] + paths.list_files(("vae",)), {"tooltip": "wan_2.1_vae.safetensors "
                    "(models/vae), or the base folder's vae/."}),
            "text_encoder": ([FROM_BASE] + paths.list_files(("text_encoders",)), {"tooltip": "UMT5-XXL "
                             "(models/text_encoders/umt5_xxl_*.safetensors) or the base folder's text_encoder/."}),
            "precision": (["auto", "bf16", "fp16", "fp32"], {"default": "auto", "tooltip": "Compute precision "
                          "(bf16/fp16 on a CPU fall back to fp32)."}),
            "memory_mode": (["auto", "gpu", "model_offload", "block_swap", "sequential"], {"default": "auto",
                            "tooltip": "How the model is kept in VRAM (see the ConsisID loader)."}),
            "blocks_to_swap": ("INT", {"default": 10, "min": 0, "max": 64, "tooltip": "With block_swap: "
                               "transformer blocks kept in RAM and streamed in."}),
            "weight_storage": (list(WAN_WEIGHT_STORAGE), {"default": "auto", "tooltip": "fp8_e4m3 stores the DiT's "
                               "linear weights in 8 bits (upcast per layer when used): about half the VRAM of bf16, "
                               "with a small loss of precision; fp8 files stay fp8. auto picks fp8 (and runs the "
                               "guidance branches one at a time) only when the weights and one step's activations "
                               "would not fit otherwise; the plan is printed in the console."}),
        }}

    @user_errors
    def load(self, family, base_folder, dit, vae, text_encoder, precision, memory_mode, blocks_to_swap=10,
             weight_storage="auto"):
        from idvideo_core.runtime import load_wan

        return (load_wan(FAMILY_LABELS.get(family, family), None if base_folder == NONE else base_folder,
                         None if dit == FROM_BASE else dit, None if vae == FROM_BASE else vae,
                         None if text_encoder == FROM_BASE else text_encoder, precision, memory_mode,
                         blocks_to_swap, weight_storage),)


class IDVMultiIdentityConcat:
    DESCRIPTION = ("Collects the references for Concat-ID / Phantom in a stable, visible order: faces first (left "
                   "to right as the face loader gives them), then subject images (garments, objects) in socket "
                   "order. Each becomes one clean latent frame appended after the video; the DiT's 3D attention "
                   "does the rest. Concat-ID-Wan was trained with one reference; Concat-ID-CogVideoX "
                   "two-identities with two (face 1 = the leftmost person); Phantom takes up to 4.")
    SEARCH_ALIASES = ["concat-id", "phantom", "references", "multi identity", "virtual try-on", "garment"]
    CATEGORY = f"{CATEGORY}/identity"
    FUNCTION = "concat"
    RETURN_TYPES = (REFERENCES, "IMAGE")
    RETURN_NAMES = ("references", "preview")
    OUTPUT_TOOLTIPS = ("The ordered references for the sampler.",
                       "Each reference as the VAE will see it, in order.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "width": ("INT", {"default": 832, "min": 64, "max": 4096, "step": 16,
                              "tooltip": "Video width (references are fitted to the video size)."}),
            "height": ("INT", {"default": 480, "min": 64, "max": 4096, "step": 16, "tooltip": "Video height."}),
            "face_mode": (list(FACE_MODES), {"default": FACE_MODES[0], "tooltip": "Concat-ID: 448 px aligned "
                          "face, face-parsing mask (when ≥ 40 % foreground), black letterbox. Phantom: the whole "
                          "photo, white padding."}),
            "subject_mode": (list(SUBJECT_MODES), {"default": SUBJECT_MODES[0], "tooltip": "How subject images "
                             "(no face alignment) are fitted to the video size."}),
        }, "optional": {
            "faces": (FACES, {"tooltip": "Faces from 'IDVideo Face Loader' (use 'all (left to right)' for a "
                                        "group photo)."}),
            "subject_1": ("IMAGE", {"tooltip": "A subject reference (garment, object, background)."}),
            "subject_2": ("IMAGE", {"tooltip": "Another subject reference."}),
            "subject_3": ("IMAGE", {"tooltip": "Another subject reference."}),
            "references": (REFERENCES, {"tooltip": "References from another concatenator, placed first."}),
        }}

    @user_errors
    def concat(self, width, height, face_mode, subject_mode, faces=None, subject_1=None, subject_2=None,
               subject_3=None, references=None):
        from idvideo_core.runtime import concat_references

        refs, preview = concat_references(width, height, FACE_MODES.index(face_mode), subject_mode.startswith("white"),
                                          faces, [subject_1, subject_2, subject_3], references)
        return (refs, preview)


NODE_CLASS_MAPPINGS = {"IDVWanModelLoader": IDVWanModelLoader, "IDVMultiIdentityConcat": IDVMultiIdentityConcat}
NODE_DISPLAY_NAME_MAPPINGS = {"IDVWanModelLoader": "IDVideo Wan Model Loader (Concat-ID / Phantom)",
                              "IDVMultiIdentityConcat": "IDVideo Multi-Identity Concatenator"}
