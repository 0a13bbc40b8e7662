"""Wan-family nodes: the Wan / Concat-ID / Phantom model loader and the multi-identity concatenator."""
from __future__ import annotations

from idvideo_core import paths
from idvideo_core.runtime import WAN_WEIGHT_STORAGE

from ._common import CATEGORY, FACES, MODEL, REFERENCES, memory_inputs, user_errors

FROM_BASE = "(from base folder)"
NONE = "(none)"
FAMILY_LABELS = {"Concat-ID-Wan": "concatid_wan", "Phantom-Wan": "phantom_wan", "Wan2.1 (plain T2V)": "wan"}
FACE_MODES = ("face crop + mask (Concat-ID)", "face crop, no mask", "whole image, white pad (Phantom)",
              "whole image, black pad")
SUBJECT_MODES = ("white pad (Phantom)", "black pad")


DEFAULT_FAMILY = "Concat-ID-Wan"
DIT_KEYS = ("concatid", "diffusion_models")
IDV_DIT_FAMILIES = "idv_families"   # dit option -> family labels that can load it (web/js/idvideo.js filters by it)


def _kinds(keys) -> dict[str, str]:
    """{file name: kind read from its header} for every weight file under the folders of ``keys`` (cached)."""
    from idvideo_core.backbones.wan.files import file_kind

    out = {}
    for name in paths.list_files(keys):
        try:
            out[name] = file_kind(paths.resolve_file(keys, name, "a weights file"))
        except Exception:  # noqa: BLE001 - vanished between listing and reading
            out[name] = "unknown"
    return out


def wan_choices() -> dict:
    """The Wan loader's lists and defaults, so that a freshly added loader works when the models sit in the
    documented folders: the first Wan base folder, the best DiT for the default family (AdaLN first for
    Concat-ID), and the base folder's VAE / text encoder, else the single files whose keys say what they are."""
    from idvideo_core.backbones.wan.files import ACCEPTS, WAN_DIT_ADALN, accepts

    bases = paths.list_model_folders("wan")
    dits = {n: k for n, k in _kinds(DIT_KEYS).items() if any(k in kinds for kinds in ACCEPTS.values())}
    fams = {n: [lab for lab, fam in FAMILY_LABELS.items() if accepts(fam, k)] for n, k in dits.items()}
    default_fam = FAMILY_LABELS[DEFAULT_FAMILY]
    fit = sorted((n for n, k in dits.items() if accepts(default_fam, k)), key=lambda n: dits[n] != WAN_DIT_ADALN)
    vaes, tes = _kinds(("vae",)), _kinds(("text_encoders",))

    def first(table, kind):
        return next((n for n, k in table.items() if k == kind), None)

    return {
        "base_folder": [NONE] + bases, "base_default": bases[0] if bases else NONE,
        "dit": [FROM_BASE] + list(dits), "dit_default": fit[0] if fit else FROM_BASE,
        "dit_families": {FROM_BASE: list(FAMILY_LABELS), **fams},
        "vae": [FROM_BASE] + list(vaes),
        "vae_default": FROM_BASE if bases else (first(vaes, "wan_vae") or FROM_BASE),
        "text_encoder": [FROM_BASE] + list(tes),
        "te_default": FROM_BASE if bases else (first(tes, "umt5") or FROM_BASE),
    }


def check_dit_choice(family_key: str, family_label: str, dit: str) -> None:
    """The chosen DiT file exists and its keys fit the family (a clear WrongModelError otherwise)."""
    from idvideo_core.backbones import registry
    from idvideo_core.backbones.wan.files import check_dit_file

    published = paths.PUBLISHED.get(registry.get(family_key).published)
    path = paths.resolve_file(DIT_KEYS, dit, "the DiT weights", published)
    check_dit_file(family_key, path, family_label)


WAN_STORAGE_TIP = ("fp8_e4m3 stores the DiT's linear weights in 8 bits (upcast per layer when used): about half the "
                   "VRAM of bf16, with a small loss of precision; fp8 files stay fp8. auto picks fp8 (and runs the "
                   "guidance branches one at a time) only when the weights and one step's activations would not fit "
                   "otherwise; the plan is printed in the console.")


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
        c = wan_choices()
        return {"required": {
            "family": (list(FAMILY_LABELS), {"default": DEFAULT_FAMILY, "tooltip": "Which method the DiT "
                       "weights belong to: decides references' RoPE, attention routing and guidance. The dit list "
                       "shows only the files this family can load (read from their keys)."}),
            "base_folder": (c["base_folder"], {"default": c["base_default"], "tooltip": "Wan2.1-T2V-1.3B-Diffusers "
                            "folder under models/wan (optional when the three single files are chosen)."}),
            "dit": (c["dit"], {"default": c["dit_default"], IDV_DIT_FAMILIES: c["dit_families"],
                               "tooltip": "DiT weights: Concat-ID .pt (models/concatid), Phantom .pth or a Wan "
                                          ".safetensors (models/diffusion_models), bf16/fp16/fp8/fp8-scaled; for the "
                                          "sharded Phantom-Wan-14B pick any of its shards (the index beside it is "
                                          "used). Only files the chosen family can load are listed."}),
            "vae": (c["vae"], {"default": c["vae_default"], "tooltip": "wan_2.1_vae.safetensors "
                    "(models/vae), or the base folder's vae/."}),
            "text_encoder": (c["text_encoder"], {"default": c["te_default"], "tooltip": "UMT5-XXL "
                             "(models/text_encoders/umt5_xxl_*.safetensors) or the base folder's text_encoder/."}),
            **memory_inputs(10, WAN_WEIGHT_STORAGE, "auto", WAN_STORAGE_TIP),
        }}

    @classmethod
    def idv_family(cls, inputs):
        """The family chosen on the loader (for the queue-time size check), None while it is linked."""
        label = inputs.get("family")
        keys = set(FAMILY_LABELS.values())
        return FAMILY_LABELS.get(label) or (label if label in keys else None)

    @classmethod
    def VALIDATE_INPUTS(cls, family=None, dit=None):
        """At queue time: the family exists and the DiT file's keys fit it (before any weight is read).

        Taking ``family`` and ``dit`` here replaces ComfyUI's own list check for them, so membership is checked too.
        """
        if family is None or dit is None:        # converted to inputs and linked: checked when the node runs
            return True
        if family not in FAMILY_LABELS and family not in FAMILY_LABELS.values():
            return f"family '{family}' is not one of: {', '.join(FAMILY_LABELS)}."
        if dit == FROM_BASE:
            return True
        from idvideo_core.errors import IDVideoError

        try:
            check_dit_choice(FAMILY_LABELS.get(family, family), family, dit)
        except IDVideoError as exc:
            return str(exc)
        return True

    @user_errors
    def load(self, family, base_folder, dit, vae, text_encoder, precision, memory_mode, blocks_to_swap=10,
             weight_storage="auto"):
        from idvideo_core.runtime import load_wan

        key = FAMILY_LABELS.get(family, family)
        if dit != FROM_BASE:
            check_dit_choice(key, family, dit)
        return (load_wan(key, None if base_folder == NONE else base_folder,
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
    IDV_NODE_NAME = "IDVideo Multi-Identity Concatenator"
    IDV_CLIP_INPUTS = ("references",)        # references from another concatenator must have the same size

    @classmethod
    def idv_size(cls, inputs, spec=None):
        """(width, height) the references are fitted to, for the queue-time size check (None while linked)."""
        w, h = inputs.get("width"), inputs.get("height")
        return (int(w), int(h)) if isinstance(w, int) and isinstance(h, int) else None
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
