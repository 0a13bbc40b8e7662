"""The DiT sampler node: one node for every backbone; the model decides how identities enter."""
from __future__ import annotations

from idvideo_core.runtime import SAMPLER_PRESETS

from ._common import (CATEGORY, CHECK_INPUT, CHECK_INPUT_TYPE, GLOBAL_ID, LOCAL_ID, MODEL, REFERENCES, TEXT,
                      user_errors)


class IDVSampler:
    DESCRIPTION = ("Generates the video: denoises with the model's scheduler (ConsisID: CogVideoX DPM, 50 steps, "
                   "CFG 6; Concat-ID-CogVideoX: the official SAT DPM++2M, CFG 6 on x0; Wan: flow-match), the "
                   "identity in both guidance branches, then decodes with the VAE. "
                   "Progress per step; Cancel stops within one step and the models stay loaded.")
    SEARCH_ALIASES = ["sampler", "generate video", "ksampler", "consisid sampler", "dit sampler"]
    CATEGORY = f"{CATEGORY}/sampling"
    IDV_CLIP_INPUTS = ("global_identity", "references")   # the queue-time size check follows these (nodes/checks.py)
    FUNCTION = "sample"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("frames",)
    OUTPUT_TOOLTIPS = ("The decoded video frames (IMAGE batch, one image per frame).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (MODEL, {"tooltip": "A model from an IDVideo model loader."}),
            "text_embeds": (TEXT, {"tooltip": "From 'IDVideo Text Encode' with the same model."}),
            "width": ("INT", {"default": 0, "min": 0, "max": 4096, "step": 16,
                              "tooltip": "Video width. 0 = auto: the connected global identity's or references' "
                                         "width, else the model's trained width (ConsisID-preview 720, Wan 1.3B "
                                         "832). A set width must agree with the connected identity."}),
            "height": ("INT", {"default": 0, "min": 0, "max": 4096, "step": 16,
                               "tooltip": "Video height. 0 = auto: the connected identity's height, else the "
                                          "model's trained height (480)."}),
            "num_frames": ("INT", {"default": 0, "min": 0, "max": 1024, "step": 1,
                                   "tooltip": "Number of frames. 0 = the model's default (ConsisID 49 ≈ 6 s at "
                                              "8 fps; Wan 81 ≈ 5 s at 16 fps). Counts the model cannot make "
                                              "(ConsisID 8k+1, Wan 4k+1) are snapped with a warning."}),
            "steps": ("INT", {"default": 50, "min": 1, "max": 500, "tooltip": "Denoising steps (reference: 50)."}),
            "cfg": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 30.0, "step": 0.1,
                              "tooltip": "Text guidance scale. 0 = the model's reference value (ConsisID 6, "
                                         "Concat-ID / Phantom 5); 1 disables guidance (one pass per step)."}),
            "seed": ("INT", {"default": 42, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True,
                             "tooltip": "Random seed; the same seed and inputs give the same video."}),
            "use_dynamic_cfg": ("BOOLEAN", {"default": False, "tooltip": "CogVideoX's cosine-ramped guidance."}),
            "face_scale": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 3.0, "step": 0.05,
                                     "tooltip": "Strength of the local (cross-attention) identity; 1 = reference."}),
            "vae_tiling": ("BOOLEAN", {"default": True, "tooltip": "Decode the video in tiles: far less VRAM, "
                                       "tiny seams at most."}),
        }, "optional": {
            "global_identity": (GLOBAL_ID, {"tooltip": "ConsisID: the face latent from the global extractor."}),
            "local_identity": (LOCAL_ID, {"tooltip": "ConsisID: ArcFace + EVA features from the local extractor."}),
            "references": (REFERENCES, {"tooltip": "Concat-ID / Phantom: references from the multi-identity "
                                                   "concatenator."}),
            "cache_threshold": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                          "tooltip": "Step caching (TeaCache): skip the transformer on steps whose "
                                                     "input barely changed. 0 = off (exact). ConsisID: 0.1 / 0.15 / "
                                                     "0.2 (faster, less faithful); Wan 1.3B: 0.05 / 0.08."}),
            "attention": (["sdpa", "sageattention"], {"default": "sdpa",
                                                      "tooltip": "Attention kernel. sdpa = PyTorch (reference "
                                                                 "numerics); sageattention needs that package and "
                                                                 "an NVIDIA GPU."}),
            "compile_blocks": ("BOOLEAN", {"default": False,
                                           "tooltip": "torch.compile each transformer block: slow first run, "
                                                      "faster steps after on a GPU (on the CPU the default path is "
                                                      "faster). Needs a working compiler toolchain."}),
            "sampler_preset": (list(SAMPLER_PRESETS), {
                "default": "model default",
                "tooltip": "model default = the model's own sampler with the steps and cfg above. distilled 4-step "
                           "(lightx2v) = the settings of lightx2v's step-distillation LoRA (Wan; load the LoRA "
                           "with 'IDVideo LoRA Loader'): 4 steps (timesteps 1000/750/500/250, shift 5), their "
                           "re-noising sampler, CFG 1 = one transformer pass per step; steps and cfg above are "
                           "not used."}),
        }, "hidden": {"unique_id": "UNIQUE_ID", CHECK_INPUT: CHECK_INPUT_TYPE}}

    @classmethod
    def VALIDATE_INPUTS(cls, idv_check=None):
        """Refuse a prompt whose sizes conflict, when it is queued (before any model loads). ``idv_check`` is
        written into the prompt by the pack's queue-time check (nodes/checks.py), which sees the whole graph."""
        return True if not idv_check else str(idv_check)

    @user_errors
    def sample(self, model, text_embeds, width, height, num_frames, steps, cfg, seed, use_dynamic_cfg=False,
               face_scale=1.0, vae_tiling=True, global_identity=None, local_identity=None, references=None,
               cache_threshold=0.0, attention="sdpa", compile_blocks=False, sampler_preset="model default",
               unique_id=None, idv_check=None):
        from idvideo_core.runtime import generate

        frames = generate(model, text_embeds, width=width, height=height, num_frames=num_frames, steps=steps,
                          cfg=cfg, seed=seed, use_dynamic_cfg=use_dynamic_cfg, face_scale=face_scale,
                          vae_tiling=vae_tiling, global_identity=global_identity, local_identity=local_identity,
                          references=references, node_id=unique_id, cache_threshold=cache_threshold,
                          attention=attention, compile_blocks=compile_blocks,
                          sampler_preset=SAMPLER_PRESETS.get(sampler_preset, sampler_preset))
        return (frames,)


NODE_CLASS_MAPPINGS = {"IDVSampler": IDVSampler}
NODE_DISPLAY_NAME_MAPPINGS = {"IDVSampler": "IDVideo DiT Sampler"}
