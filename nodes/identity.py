"""Identity extraction nodes: global (VAE latent of the face) and local (ArcFace + EVA-CLIP features)."""
from __future__ import annotations

from ._common import CATEGORY, FACE_MODELS, FACES, GLOBAL_ID, LOCAL_ID, MODEL, user_errors


class IDVGlobalIdentity:
    DESCRIPTION = ("Low-frequency identity: the aligned colour face on white, stretched to the video size as "
                   "ConsisID does, encoded by the model's VAE into latent frame 0 (the key-point image into frame 1 "
                   "when the model uses key points). The sampler concatenates it on channels.")
    SEARCH_ALIASES = ["global facial extractor", "face latent", "consisid identity"]
    CATEGORY = f"{CATEGORY}/identity"
    FUNCTION = "extract"
    IDV_NODE_NAME = "IDVideo Global Identity Extractor"
    RETURN_TYPES = (GLOBAL_ID, "IMAGE")
    RETURN_NAMES = ("global_identity", "vae_input")
    OUTPUT_TOOLTIPS = ("The face's VAE posterior, sampled by the sampler with its seed.",
                       "The stretched face image the VAE saw (preview).")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (MODEL, {"tooltip": "The ConsisID model (its VAE encodes the face)."}),
            "faces": (FACES, {"tooltip": "Faces from 'IDVideo Face Loader'; the first one is used."}),
            "width": ("INT", {"default": 0, "min": 0, "max": 4096, "step": 16,
                              "tooltip": "Video width. 0 = the model's trained width (ConsisID-preview: 720). The "
                                         "sampler follows this size when its own width is 0 (auto)."}),
            "height": ("INT", {"default": 0, "min": 0, "max": 4096, "step": 16,
                               "tooltip": "Video height. 0 = the model's trained height (ConsisID-preview: 480)."}),
        }, "optional": {
            "kps_image": ("IMAGE", {"tooltip": "Key-point image from 'IDVideo Key-point Renderer'; used only by "
                                               "models trained with key points (is_kps). The preview ignores it."}),
        }}

    @classmethod
    def idv_size(cls, inputs, spec=None):
        """(width, height) the face is encoded at, for the queue-time size check: 0 = the connected model's trained
        size (from its family's spec); None when unknown (linked widgets, model family not known)."""
        w, h = inputs.get("width"), inputs.get("height")
        if not (isinstance(w, int) and isinstance(h, int)):
            return None
        if (not w or not h) and spec is None:
            return None
        return (w or spec.defaults.width, h or spec.defaults.height)

    @user_errors
    def extract(self, model, faces, width, height, kps_image=None):
        from idvideo_core.runtime import global_identity

        ident = global_identity(model, faces, width, height, kps_image)
        return (ident, ident.face_preview)


class IDVLocalIdentity:
    DESCRIPTION = ("High-frequency identity for ConsisID: id_cond = raw ArcFace (512) ⊕ L2-normalised EVA-CLIP "
                   "projection, and EVA hidden states after blocks 4, 8, 12, 16, 20 of the gray whitened face.")
    SEARCH_ALIASES = ["local facial extractor", "arcface", "eva clip", "face embedding"]
    CATEGORY = f"{CATEGORY}/identity"
    FUNCTION = "extract"
    RETURN_TYPES = (LOCAL_ID,)
    RETURN_NAMES = ("local_identity",)
    OUTPUT_TOOLTIPS = ("ArcFace + EVA-CLIP features of the first face, for the sampler's cross-attention.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "face_models": (FACE_MODELS, {"tooltip": "From 'IDVideo Face Models Loader' (needs EVA-CLIP)."}),
            "faces": (FACES, {"tooltip": "Faces from 'IDVideo Face Loader'; the first one is used."}),
        }}

    @user_errors
    def extract(self, face_models, faces):
        from idvideo_core.runtime import local_identity

        return (local_identity(face_models, faces),)


NODE_CLASS_MAPPINGS = {"IDVGlobalIdentity": IDVGlobalIdentity, "IDVLocalIdentity": IDVLocalIdentity}
NODE_DISPLAY_NAME_MAPPINGS = {"IDVGlobalIdentity": "IDVideo Global Identity Extractor",
                              "IDVLocalIdentity": "IDVideo Local Identity Extractor"}
