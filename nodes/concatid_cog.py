"""Concat-ID-CogVideoX loader: the SAT checkpoint folder + T5/VAE from a CogVideoX-5B diffusers folder."""
from __future__ import annotations

from idvideo_core.runtime import WEIGHT_STORAGE

from ._common import CATEGORY, MODEL, user_errors

NO_DIT = "(no SAT folder found: put single-identity/ or two-identities/ in models/concatid)"
NO_BASE = "(no CogVideoX-5B folder found: put it in models/cogvideox)"


def _dit_choices():
    from idvideo_core.backbones.concatid_cogvideox.loading import list_dit_choices

    return list_dit_choices() or [NO_DIT]


def _base_choices():
    from idvideo_core.backbones.concatid_cogvideox.loading import list_base_choices

    return list_base_choices() or [NO_BASE]


class IDVConcatIDCogVideoXLoader:
    DESCRIPTION = ("Loads Concat-ID-CogVideoX (CogVideoX-5B, SAT weights from ModelScope yongzhong/Concat-ID): "
                   "single-identity/ (one face), two-identities/ (two faces, prompt@@img1@@img2 order = left to right) "
                   "or Concat-ID-pre-training, read safely (weights only, no code) from models/concatid; T5-XXL and "
                   "the VAE come from a CogVideoX-5B diffusers folder (models/cogvideox; a ConsisID-preview folder "
                   "works too). Samples with the official SAT sampler: 720×480, 49 frames, 8 fps, 50 steps, CFG 6.")
    SEARCH_ALIASES = ["concat-id", "cogvideox", "two identities", "multi identity", "sat"]
    CATEGORY = f"{CATEGORY}/loaders"
    FUNCTION = "load"
    RETURN_TYPES = (MODEL,)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The loaded Concat-ID-CogVideoX model (DiT, VAE, T5 text encoder).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "weights": (_dit_choices(), {"tooltip": "A SAT checkpoint folder under models/concatid (holding "
                        "'latest' and <iteration>/mp_rank_00_model_states.pt): single-identity, two-identities or "
                        "Concat-ID-pre-training; or a .safetensors made by the pack's converter."}),
            "base_folder": (_base_choices(), {"tooltip": "CogVideoX-5B diffusers folder with text_encoder/, "
                            "tokenizer/ and vae/ (models/cogvideox, or a ConsisID-preview folder in "
                            "models/consisid: same T5 and VAE)."}),
            "precision": (["auto", "bf16", "fp16", "fp32"], {"default": "auto", "tooltip": "Compute precision. "
                          "auto = bf16 on GPUs that support it (the official runs bf16), fp32 on the CPU."}),
            "memory_mode": (["auto", "gpu", "model_offload", "block_swap", "sequential"], {"default": "auto",
                            "tooltip": "How the model is kept in VRAM (see the ConsisID loader)."}),
            "blocks_to_swap": ("INT", {"default": 20, "min": 0, "max": 64, "tooltip": "With block_swap: "
                               "transformer blocks (of 42) kept in RAM and streamed in each step."}),
            "weight_storage": (list(WEIGHT_STORAGE), {"default": "default", "tooltip": "fp8_e4m3 stores the DiT's "
                               "linear weights in 8 bits (upcast per layer when used): about half the VRAM of bf16, "
                               "with a small loss of precision."}),
        }}

    @user_errors
    def load(self, weights, base_folder, precision="auto", memory_mode="auto", blocks_to_swap=20,
             weight_storage="default"):
        from idvideo_core import paths
        from idvideo_core.backbones.concatid_cogvideox.loading import load_named
        from idvideo_core.errors import MissingModelError
        from idvideo_core.runtime import attach_memory

        if weights == NO_DIT:
            raise MissingModelError("a Concat-ID-CogVideoX SAT folder", paths.search_dirs("concatid"),
                                    paths.PUBLISHED["concatid_cogvideox"])
        if base_folder == NO_BASE:
            raise MissingModelError("a CogVideoX-5B folder (text_encoder/, tokenizer/, vae/)",
                                    paths.search_dirs("cogvideox") + paths.search_dirs("consisid"),
                                    paths.PUBLISHED["cogvideox"])
        model = load_named(weights, base_folder, precision)
        return (attach_memory(model, memory_mode, blocks_to_swap, weight_storage),)


NODE_CLASS_MAPPINGS = {"IDVConcatIDCogVideoXLoader": IDVConcatIDCogVideoXLoader}
NODE_DISPLAY_NAME_MAPPINGS = {"IDVConcatIDCogVideoXLoader": "IDVideo Concat-ID CogVideoX Loader"}
