"""Concat-ID-CogVideoX loader: the SAT checkpoint folder + T5/VAE from a CogVideoX-5B diffusers folder."""
from __future__ import annotations

from idvideo_core.runtime import WEIGHT_STORAGE

from ._common import CATEGORY, MODEL, memory_inputs, user_errors

NO_DIT = "(no SAT folder found: put single-identity/ or two-identities/ in models/concatid)"
NO_BASE = "(no CogVideoX-5B folder found: put it in models/cogvideox)"
NONE = "(none: single files below)"
FROM_BASE = "(from base folder)"


def _dit_choices():
    from idvideo_core.backbones.concatid_cogvideox.loading import list_dit_choices

    return list_dit_choices() or [NO_DIT]


def _base_choices():
    from idvideo_core.backbones.concatid_cogvideox.loading import list_base_choices

    return (list_base_choices() or [NO_BASE]) + [NONE]


def _files(key):
    from idvideo_core import paths

    return [FROM_BASE] + paths.list_files((key,))


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
    def idv_family(cls, inputs):
        """The family this loader makes (the queue-time size check reads the model's defaults from its spec)."""
        from idvideo_core.backbones.concatid_cogvideox import FAMILY

        return FAMILY

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "weights": (_dit_choices(), {"tooltip": "A SAT checkpoint folder under models/concatid (holding "
                        "'latest' and <iteration>/mp_rank_00_model_states.pt): single-identity, two-identities or "
                        "Concat-ID-pre-training; or a .safetensors made by the pack's converter."}),
            "base_folder": (_base_choices(), {"tooltip": "CogVideoX-5B diffusers folder with text_encoder/, "
                            "tokenizer/ and vae/ (models/cogvideox, or a ConsisID-preview folder in "
                            "models/consisid: same T5 and VAE)."}),
            "vae": (_files("vae"), {"tooltip": "The CogVideoX VAE: the base folder's vae/, or a file in models/vae "
                    "(diffusers-named CogVideoX VAE .safetensors, or the official SAT 3d-vae.pt)."}),
            "text_encoder": (_files("text_encoders"), {"tooltip": "T5-XXL: the base folder's text_encoder/, or "
                             "ComfyUI's t5xxl_fp16 / fp8 file in models/text_encoders (the same T5 v1.1 XXL; its "
                             "tokenizer comes from the base folder or ComfyUI)."}),
            **memory_inputs(20, WEIGHT_STORAGE, blocks_note=" (of 42)"),
        }}

    @user_errors
    def load(self, weights, base_folder, vae=FROM_BASE, text_encoder=FROM_BASE, precision="auto",
             memory_mode="auto", blocks_to_swap=20, weight_storage="default"):
        from idvideo_core import paths
        from idvideo_core.backbones.concatid_cogvideox.loading import load_named
        from idvideo_core.errors import MissingModelError
        from idvideo_core.runtime import attach_memory

        if weights == NO_DIT:
            raise MissingModelError("a Concat-ID-CogVideoX SAT folder", paths.search_dirs("concatid"),
                                    paths.PUBLISHED["concatid_cogvideox"])
        singles = vae != FROM_BASE and text_encoder != FROM_BASE
        if base_folder == NO_BASE and not singles:
            raise MissingModelError("a CogVideoX-5B folder (text_encoder/, tokenizer/, vae/)",
                                    paths.search_dirs("cogvideox") + paths.search_dirs("consisid"),
                                    paths.PUBLISHED["cogvideox"])
        base = None if base_folder in (NO_BASE, NONE) else base_folder
        model = load_named(weights, base, precision, None if vae == FROM_BASE else vae,
                           None if text_encoder == FROM_BASE else text_encoder)
        return (attach_memory(model, memory_mode, blocks_to_swap, weight_storage),)


NODE_CLASS_MAPPINGS = {"IDVConcatIDCogVideoXLoader": IDVConcatIDCogVideoXLoader}
NODE_DISPLAY_NAME_MAPPINGS = {"IDVConcatIDCogVideoXLoader": "IDVideo Concat-ID CogVideoX Loader"}
