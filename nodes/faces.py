"""Face nodes: face models loader, face loader (detect, choose, align, parse), key-point renderer."""
from __future__ import annotations

from idvideo_core import labels

from ._common import CATEGORY, FACE_MODELS, FACES, user_errors

PROVIDERS = tuple(labels.labels("provider"))
SELECTIONS = tuple(labels.labels("selection"))


class IDVFaceModelsLoader:
    DESCRIPTION = ("Loads the face models ConsisID uses: antelopev2 (SCRFD detector + glintr100 ArcFace, ONNX), "
                   "facexlib RetinaFace-R50 + BiSeNet parsing, and the EVA02-CLIP-L-14-336 vision tower. Looks in "
                   "models/insightface/models/antelopev2, models/facexlib, models/clip_vision and models/idvideo, "
                   "then in a ConsisID-preview folder's face_encoder/. Never downloads.")
    SEARCH_ALIASES = ["insightface", "antelopev2", "facexlib", "eva clip", "face analysis"]
    CATEGORY = f"{CATEGORY}/loaders"
    FUNCTION = "load"
    RETURN_TYPES = (FACE_MODELS,)
    RETURN_NAMES = ("face_models",)
    OUTPUT_TOOLTIPS = ("Face detector, recogniser, aligner, parser and EVA-CLIP, ready for the face nodes.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "provider": (list(PROVIDERS), {"default": PROVIDERS[0], "tooltip": "ONNX Runtime device for "
                         "antelopev2. auto = the best one ONNX Runtime offers (CUDA, ROCm or CoreML, else CPU; the "
                         "log says which). A chosen provider that is not installed falls back to CPU with a "
                         "warning."}),
            "eva_precision": (["fp32", "bf16", "fp16"], {"default": "fp32", "tooltip": "Precision of the EVA-CLIP "
                              "tower (the reference uses bf16 on GPU; fp32 on CPU)."}),
        }}

    @user_errors
    def load(self, provider, eva_precision):
        from idvideo_core.runtime import load_face_models

        return (load_face_models(labels.value("provider", provider) or provider, eva_precision),)


class IDVFaceLoader:
    DESCRIPTION = ("Finds faces in the image(s) and picks one the same way for every step (detection, ArcFace, "
                   "alignment): the largest by default. Aligns to FFHQ 512 and whitens the background with BiSeNet "
                   "like ConsisID. 'all (left to right)' returns every face, for multi-identity references.")
    SEARCH_ALIASES = ["face detect", "face crop", "align face", "face loader"]
    CATEGORY = f"{CATEGORY}/faces"
    FUNCTION = "load"
    RETURN_TYPES = (FACES, "IMAGE", "IMAGE")
    RETURN_NAMES = ("faces", "aligned_faces", "whitened_faces")
    OUTPUT_TOOLTIPS = ("The chosen face(s) with key points, ArcFace embedding and aligned crops.",
                       "FFHQ-aligned 512×512 crops (preview).",
                       "The aligned faces with the background whitened: what ConsisID's VAE sees.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "face_models": (FACE_MODELS, {"tooltip": "From 'IDVideo Face Models Loader'."}),
            "image": ("IMAGE", {"tooltip": "Photo(s) of the person. A clear, frontal face works best; any batch "
                                           "size (one face is taken per image unless 'all')."}),
            "selection": (list(SELECTIONS), {"default": "largest", "tooltip": "Which face when there are several: "
                          "largest, closest to the centre, the index-th from the left, or all left to right."}),
            "index": ("INT", {"default": 0, "min": 0, "max": 63, "tooltip": "With selection=index: 0 = leftmost."}),
            "on_no_face": (labels.labels("on_no_face"), {"default": labels.label("on_no_face", "error"),
                           "tooltip": "No face found: stop "
                           "with a clear message, or use the whole image (the reference's fallback) with a "
                           "warning."}),
        }}

    @user_errors
    def load(self, face_models, image, selection, index, on_no_face):
        from idvideo_core.preview import temp_previews_for_ui
        from idvideo_core.runtime import find_faces

        faces, aligned, whitened = find_faces(face_models, image, selection, index, on_no_face)
        # "images" (temp PNGs, like core PreviewImage) makes the frontend show the aligned crops on this node.
        ui = {"images": temp_previews_for_ui(aligned), "idv_faces": [{"count": len(faces)}]}
        return {"ui": ui, "result": (faces, aligned, whitened)}


class IDVKeypointRenderer:
    DESCRIPTION = ("Draws the 5 face key points (eyes, nose, mouth corners) as ConsisID's draw_kps does: limbs to "
                   "the nose, stick width 4, dots of radius 10, on black.")
    SEARCH_ALIASES = ["kps", "keypoints", "landmarks", "face pose"]
    CATEGORY = f"{CATEGORY}/faces"
    FUNCTION = "render"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("kps_image",)
    OUTPUT_TOOLTIPS = ("The key-point image(s), one per face.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "faces": (FACES, {"tooltip": "From 'IDVideo Face Loader'."}),
            "canvas": (["reference (aligned face size)", "source image"], {"default": "reference (aligned face size)",
                       "tooltip": "reference = a 512×512 canvas with the key points in source-image coordinates, "
                                  "exactly what ConsisID trained with; source image = the photo's own size."}),
        }}

    @user_errors
    def render(self, faces, canvas):
        from idvideo_core.runtime import render_keypoints

        return (render_keypoints(faces, canvas.startswith("source")),)


NODE_CLASS_MAPPINGS = {"IDVFaceModelsLoader": IDVFaceModelsLoader, "IDVFaceLoader": IDVFaceLoader,
                       "IDVKeypointRenderer": IDVKeypointRenderer}
NODE_DISPLAY_NAME_MAPPINGS = {"IDVFaceModelsLoader": "IDVideo Face Models Loader",
                              "IDVFaceLoader": "IDVideo Face Loader",
                              "IDVKeypointRenderer": "IDVideo Key-point Renderer"}
