"""Model loading and prompt encoding nodes."""
from __future__ import annotations

from idvideo_core import paths
from idvideo_core.runtime import WEIGHT_STORAGE

from ._common import CATEGORY, MODEL, TEXT, memory_inputs, user_errors

NO_MODELS = "(no ConsisID folder found: put ConsisID-preview in models/consisid)"


def consisid_choices() -> list[str]:
    names = paths.list_model_folders("consisid", "model_index.json")
    names += [n for n in paths.list_model_folders("consisid", "transformer/config.json") if n not in names]
    return names or [NO_MODELS]


class IDVConsisIDModelLoader:
    DESCRIPTION = ("Loads a ConsisID model (diffusers folder layout of BestWishYsh/ConsisID-preview: transformer/, "
                   "vae/, text_encoder/, tokenizer/, scheduler/) from ComfyUI's models/consisid folder.")
    SEARCH_ALIASES = ["consisid", "cogvideox", "load identity video model"]
    CATEGORY = f"{CATEGORY}/loaders"
    FUNCTION = "load"
    RETURN_TYPES = (MODEL,)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The loaded ConsisID model (transformer, VAE, T5 text encoder, scheduler).",)

    @classmethod
    def idv_family(cls, inputs):
        """The family this loader makes (the queue-time size check reads the model's defaults from its spec)."""
        return "consisid"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (consisid_choices(), {"tooltip": "A ConsisID folder under models/consisid (or a folder added "
                                                      "for the 'consisid' key in extra_model_paths.yaml)."}),
            **memory_inputs(20, WEIGHT_STORAGE),
        }}

    @user_errors
    def load(self, model, precision, memory_mode, blocks_to_swap=20, weight_storage="default"):
        from idvideo_core.backbones.consisid.loading import load_consisid
        from idvideo_core.errors import MissingModelError

        if model == NO_MODELS:
            raise MissingModelError("a ConsisID model folder", [str(p) for p in paths.search_dirs("consisid")],
                                    paths.PUBLISHED["consisid"])
        from idvideo_core.runtime import attach_memory

        loaded = load_consisid(model, precision)
        return (attach_memory(loaded, memory_mode, blocks_to_swap, weight_storage),)


class IDVTextEncode:
    DESCRIPTION = "Encodes the prompt and negative prompt with the model's own text encoder (T5 for ConsisID)."
    SEARCH_ALIASES = ["prompt", "t5", "text encode"]
    CATEGORY = f"{CATEGORY}/conditioning"
    FUNCTION = "encode"
    RETURN_TYPES = (TEXT,)
    RETURN_NAMES = ("text_embeds",)
    OUTPUT_TOOLTIPS = ("Prompt and negative prompt embeddings for the 'IDVideo DiT Sampler'.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (MODEL, {"tooltip": "The model whose text encoder is used."}),
            "prompt": ("STRING", {"multiline": True, "default": "", "tooltip": "What happens in the video. ConsisID "
                                  "reads at most 226 T5 tokens (longer prompts are cut, with a warning)."}),
            "negative_prompt": ("STRING", {"multiline": True, "default": "", "tooltip": "What to avoid. Empty = "
                                           "the reference pipeline's default (an empty prompt)."}),
        }}

    @user_errors
    def encode(self, model, prompt, negative_prompt=""):
        from idvideo_core.runtime import encode_prompt

        return (encode_prompt(model, prompt, negative_prompt),)


NODE_CLASS_MAPPINGS = {"IDVConsisIDModelLoader": IDVConsisIDModelLoader, "IDVTextEncode": IDVTextEncode}
NODE_DISPLAY_NAME_MAPPINGS = {"IDVConsisIDModelLoader": "IDVideo ConsisID Model Loader",
                              "IDVTextEncode": "IDVideo Text Encode"}
