"""The LoRA loader: chainable, one LoRA per node, a strength each."""
from __future__ import annotations

from ._common import CATEGORY, MODEL, user_errors

NO_LORAS = "(no LoRA found: put .safetensors files in models/loras)"


def lora_choices() -> list[str]:
    from idvideo_core.lora import list_loras

    return list_loras() or [NO_LORAS]


class IDVLoraLoader:
    DESCRIPTION = ("Adds a LoRA to an IDVideo model (Wan: Concat-ID-Wan / Phantom-Wan; CogVideoX: ConsisID). Chain "
                   "several loaders for several LoRAs, each with its own strength. Reads ComfyUI/kohya, "
                   "diffusers/PEFT and the lightx2v / CausVid releases. The LoRA is merged just before sampling and "
                   "removed exactly when a later run uses the model without it; on fp8 weights it is merged one "
                   "layer at a time. Keys the model does not have are listed in the report, never dropped silently.")
    SEARCH_ALIASES = ["lora", "lightx2v", "causvid", "distill lora", "load lora"]
    CATEGORY = f"{CATEGORY}/loaders"
    FUNCTION = "load"
    RETURN_TYPES = (MODEL, "STRING")
    RETURN_NAMES = ("model", "report")
    OUTPUT_TOOLTIPS = ("The same model with this LoRA added to its chain (the weights are shared with the input).",
                       "What was loaded: the key format, how many layers it patches, and every key it could not "
                       "apply, by name.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (MODEL, {"tooltip": "A model from an IDVideo model loader, or from another LoRA loader."}),
            "lora_name": (lora_choices(), {"tooltip": ("A .safetensors LoRA under models/loras (or a folder added "
                                                       "for 'loras' in extra_model_paths.yaml).")}),
            "strength": ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01,
                                   "tooltip": "How strongly the LoRA changes the weights; 0 = off (base weights, "
                                              "bit for bit). Distillation LoRAs (lightx2v) are made for 1.0."}),
        }}

    @user_errors
    def load(self, model, lora_name, strength=1.0):
        from idvideo_core.errors import MissingModelError
        from idvideo_core.lora import PUBLISHED, with_lora

        if lora_name == NO_LORAS:
            from idvideo_core import paths

            raise MissingModelError("a LoRA file", [str(p) for p in paths.search_dirs("loras")], PUBLISHED)
        return with_lora(model, lora_name, strength)


NODE_CLASS_MAPPINGS = {"IDVLoraLoader": IDVLoraLoader}
NODE_DISPLAY_NAME_MAPPINGS = {"IDVLoraLoader": "IDVideo LoRA Loader"}
