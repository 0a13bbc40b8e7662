"""The high-level API: one call per node (and per CLI step). Nodes stay thin; tensor work lives here and below.

Every function takes and returns the typed payloads of :mod:`idvideo_core.types` / plain tensors in ComfyUI's
layouts (IMAGE = float [B, H, W, 3] in 0..1).
"""
from __future__ import annotations

import contextlib
import logging
from typing import Optional

from . import bridge, labels
from .backbones import registry
from .backbones.base import LoadedModel
from .backbones.registry import GenerateRequest
from .errors import InputError
from .preview import sampler_previewer
from .sampling.stages import decode_progress, using as _using  # noqa: F401  (decode_progress re-exported)
from .types import GlobalIdentity, LocalIdentity, TextEmbeds

log = logging.getLogger("idvideo")

# Sampler node labels → the ``sampler_preset`` keys families list in their spec (``BackboneSpec.sampler_presets``).
SAMPLER_PRESETS = {"model default": "default", "distilled 4-step (lightx2v)": "lightx2v_4step"}

SELECTION_LABELS = {**{v: v for v in labels.OPTIONS["selection"]},
                    **{shown: v for v, shown in labels.OPTIONS["selection"].items()}}
NO_FACE_LABELS = {**{v: v for v in labels.OPTIONS["on_no_face"]},
                  **{shown: v for v, shown in labels.OPTIONS["on_no_face"].items()}}


# ------------------------------------------------------------------------------------------------------- faces
def load_face_models(provider: str = "auto", eva_precision: str = "fp32", consisid_folder=None):
    from .dtypes import resolve_dtype
    from .faces.models import load_face_models as _load

    device = bridge.torch_device()
    return _load(provider, device=device, dtype=resolve_dtype(eva_precision, device), consisid_folder=consisid_folder)


def _to_image_batch(arrays):
    import numpy as np
    import torch

    return torch.from_numpy(np.stack([np.asarray(a, dtype=np.float32) / 255.0 for a in arrays]))


def find_faces(face_models, image, selection: str = "largest", index: int = 0, on_no_face: str = "error"):
    """IMAGE → (faces, aligned crops IMAGE, whitened faces IMAGE)."""
    import cv2

    from .faces.analyze import analyze_images

    if image is None or len(image) == 0:
        raise InputError("The image input is empty (a batch of 0 images).", "Connect a Load Image node.")
    mode = SELECTION_LABELS.get(selection)
    policy = NO_FACE_LABELS.get(on_no_face)
    if mode is None or policy is None:
        raise InputError(f"Unknown choice '{selection}' / '{on_no_face}'.", "Pick a value from the node's list.")
    if getattr(face_models.device, "type", "cpu") != bridge.torch_device().type:
        face_models.to(bridge.torch_device())  # back from the offload device (see local_identity)
    faces = analyze_images(face_models, image, mode, index, policy)
    aligned = _to_image_batch([cv2.cvtColor(f.aligned_bgr, cv2.COLOR_BGR2RGB) for f in faces])
    whitened = _to_image_batch([f.face_rgb_white for f in faces])
    return faces, aligned, whitened


def render_keypoints(faces, source_canvas: bool = False):
    """Key-point images (IMAGE). Reference canvas: 512×512 with source-image coordinates (what ConsisID used)."""
    from .faces.kps import draw_kps

    out = []
    for f in _non_empty(faces):
        if source_canvas:
            h, w = f.source_rgb.shape[:2]
        else:
            h, w = 512, 512
        out.append(draw_kps(w, h, f.kps))
    if len({a.shape for a in out}) > 1:
        raise InputError("The faces come from images of different sizes, so their key-point images differ in size.",
                         "Use canvas='reference (aligned face size)' or one image size.")
    return _to_image_batch(out)


def _non_empty(faces):
    if not faces:
        raise InputError("No faces were given.", "Connect the faces output of 'IDVideo Face Loader'.")
    return faces


def local_identity(face_models, faces) -> LocalIdentity:
    from .faces.identity import local_identity as _local

    face = _non_empty(faces)[0]
    if len(faces) > 1:
        log.warning("IDVideo: %d faces given (one per image of the batch, or several in one photo); ConsisID's local "
                    "identity uses the first.", len(faces))
    ident = _local(face_models, face)
    # Face models leave the GPU once the identity is encoded (they are small next to the DiT but not free).
    if getattr(face_models.device, "type", "cpu") != "cpu":
        face_models.to(bridge.offload_device())
        bridge.soft_empty_cache()
    return ident


# ------------------------------------------------------------------------------------------------------ models
WEIGHT_STORAGE = ("default", "fp8_e4m3")
# Wan loaders also offer "auto": storage decided with the memory plan from the file's headers (memory/storage.py)
WAN_WEIGHT_STORAGE = ("auto", "default", "fp8_e4m3")


def attach_memory(model: LoadedModel, mode: str = "auto", blocks_to_swap: Optional[int] = None,
                  weight_storage: str = "default") -> LoadedModel:
    """Give the model a memory manager: parts parked and moved in when used, per the chosen mode.

    ``weight_storage="fp8_e4m3"`` stores the DiT's Linear weights in fp8 (per-row scales, upcast per layer when used):
    half the memory of bf16 and half the bytes block swap streams, at a bounded per-weight error (memory/fp8.py).
    """
    from .memory import plan_and_manage, quantize_module_fp8

    if weight_storage not in WEIGHT_STORAGE:
        raise InputError(f"Unknown weight storage '{weight_storage}'.", f"Choose one of: {', '.join(WEIGHT_STORAGE)}.")
    if getattr(model, "memory", None) is not None:
        model.memory.close()                  # a re-plan: the old manager's hooks must not outlive it
        model.memory = None
    if weight_storage == "fp8_e4m3":
        report = quantize_module_fp8(model.transformer)
        model.options["weight_storage"] = weight_storage
        log.info("IDVideo: %s", report.summary())

    spec = registry.spec_of(model)
    parts = {"transformer": (model.transformer, spec.block_path), "vae": (model.vae, None)}
    if model.text_encoder is not None:
        parts["text_encoder"] = (model.text_encoder, None)
    bridge.free_memory_for(sum(p.numel() * p.element_size() for m, _ in parts.values() for p in m.parameters()),
                           model.device)
    import torch

    from .memory.estimate import default_workload

    work = default_workload(model.family, model.transformer,
                            torch.empty((), dtype=model.dtype or torch.float32).element_size())
    # the node's blocks_to_swap applies to block_swap only ("With block_swap: …"); auto computes its own count
    swap = blocks_to_swap if str(getattr(mode, "value", mode)).strip().lower() == "block_swap" else None
    model.memory = plan_and_manage(parts, mode, model.device, blocks_to_swap=swap,
                                   working_bytes=work.activation_bytes if work else 0)
    log.info("%s", model.memory.summary())  # the summary starts with "IDVideo memory plan:"
    return model


def encode_prompt(model: LoadedModel, prompt: str, negative_prompt: str = "") -> TextEmbeds:
    if model.text_encoder is None:
        raise InputError("This model was loaded without its text encoder.", "Reload it with the text encoder.")
    encode = registry.spec_of(model).encode_prompt
    with _using(model, "text_encoder") as te:
        dev = next(te.parameters()).device
        emb = encode(te, model.tokenizer, prompt, negative_prompt, device=dev, dtype=model.dtype)
    # Embeddings are small: park them off the device between nodes.
    emb.prompt_embeds = emb.prompt_embeds.to(bridge.offload_device())
    emb.negative_embeds = emb.negative_embeds.to(bridge.offload_device())
    return emb


def global_identity(model: LoadedModel, faces, width: int, height: int, kps_image=None) -> GlobalIdentity:
    import numpy as np

    from .faces.identity import face_image_for_vae

    spec = registry.spec_of(model)
    encode_global_identity = spec.encode_global_identity
    if encode_global_identity is None:
        raise InputError(f"The global identity extractor is for ConsisID models; this is a {spec.label} model.",
                         "For models that take references (Concat-ID, Phantom) use "
                         "'IDVideo Multi-Identity Concatenator'.")
    face = _non_empty(faces)[0]
    if len(faces) > 1:
        log.warning("IDVideo: %d faces given (one per image of the batch, or several in one photo); ConsisID's global "
                    "identity uses the first.", len(faces))
    kps = None
    if kps_image is not None:
        kps = (np.clip(kps_image[0].cpu().numpy(), 0, 1) * 255).round().astype(np.uint8)
    from .clip import identity_encode_size

    width, height = identity_encode_size(spec, model, width, height)   # 0 = the model's size
    with _using(model, "vae"):
        ident = encode_global_identity(model, face_image_for_vae(face), width, height, kps)
    return ident


def generate(model: LoadedModel, text: TextEmbeds, *, width: int, height: int, num_frames: int, steps: int,
             cfg: float, seed: int, use_dynamic_cfg: bool = False, face_scale: Optional[float] = None,
             vae_tiling: bool = True, global_identity: Optional[GlobalIdentity] = None,
             local_identity: Optional[LocalIdentity] = None, references=None, node_id=None, progress: bool = True,
             return_latents: bool = False, cache_threshold: float = 0.0, attention: str = "sdpa",
             compile_blocks: bool = False, sampler_preset: str = "default"):
    """Sample and decode; returns frames [N, H, W, 3] float 0..1 on the CPU.

    Speed options (defaults = the reference numerics): ``cache_threshold`` > 0 turns on step caching
    (:mod:`idvideo_core.sampling.cache`), ``attention`` picks the kernel and ``compile_blocks`` compiles each
    transformer block (:mod:`idvideo_core.attention`). ``sampler_preset``: "default" or one of the family's
    ``sampler_presets`` (Wan: "lightx2v_4step", the step-distillation settings; backbones/wan/distill.py).
    """
    from .clip import resolve_clip

    spec = registry.spec_of(model)
    if sampler_preset != "default" and sampler_preset not in spec.sampler_presets:
        raise InputError(f"The sampler preset '{sampler_preset}' is not available for {spec.label}.",
                         "Use 'model default'" + (f" or one of: {', '.join(spec.sampler_presets)}."
                                                  if spec.sampler_presets else "."))
    clip = resolve_clip(spec, model, width, height, num_frames, global_identity, references)  # 0 = auto
    width, height, num_frames = clip.width, clip.height, clip.num_frames
    cfg = cfg or spec.defaults.cfg                                        # 0 = the family's reference guidance
    from .lora import sync as sync_loras

    sync_loras(model)           # this model's LoRA chain merged (or the base weights restored) while at rest
    _speed_options(model, attention, compile_blocks)
    check_working_memory(model, width, height, num_frames, references)
    want = return_latents or bool(_LATENT_SINKS)
    req = GenerateRequest(width=width, height=height, num_frames=num_frames, steps=steps, cfg=cfg, seed=seed,
                          use_dynamic_cfg=use_dynamic_cfg, face_scale=face_scale, vae_tiling=vae_tiling,
                          global_identity=global_identity, local_identity=local_identity, references=references,
                          node_id=node_id, progress=progress, return_latents=want,
                          cache_threshold=cache_threshold, sampler_preset=sampler_preset,
                          preview=sampler_previewer(model.family) if progress else None)
    out = spec.generate(model, text, req)
    if not want:
        return out
    _keep_latents(out[1])
    return out if return_latents else out[0]


_LATENT_SINKS: list[list] = []


@contextlib.contextmanager
def capture_latents():
    """Collect the final (denoised, not yet decoded) latents of every :func:`generate` call inside the block, on the
    CPU (the CLI's ``--save-latents``)."""
    got: list = []
    _LATENT_SINKS.append(got)
    try:
        yield got
    finally:
        _LATENT_SINKS.remove(got)


def _keep_latents(latents) -> None:
    for sink in _LATENT_SINKS:
        sink.append(latents.detach().to("cpu"))


def _count_references(references) -> Optional[int]:
    if references is None:
        return None
    shape = getattr(references, "shape", None)
    if shape is not None:                             # encoded latents (1, C, K, h, w)
        return int(shape[2]) if len(shape) == 5 else None
    try:
        return len(references)
    except TypeError:
        return None


def check_working_memory(model: LoadedModel, width: int, height: int, num_frames: int, references=None) -> bool:
    """Warn (and return True) when this clip's forward needs clearly more activation memory than the memory plan
    kept free at load time (the plan is made for the model's default clip; memory/estimate.py)."""
    import math

    import torch

    from .memory.estimate import workload

    mem = getattr(model, "memory", None)
    plan = getattr(mem, "plan", None)
    if plan is None or plan.on_cpu or not plan.working_bytes:
        return False
    work = workload(model.family, model.transformer,
                    torch.empty((), dtype=model.dtype or torch.float32).element_size(), width, height, num_frames,
                    _count_references(references))
    if work is None or work.activation_bytes <= 1.1 * plan.working_bytes:
        return False
    extra = work.activation_bytes - plan.working_bytes
    block = mem.sizes().block_bytes
    if plan.mode.value == "sequential" or not block:
        hint = "lower the size or the frame count"
    else:
        hint = (f"set blocks_to_swap about {plan.blocks_to_swap + math.ceil(extra / block)} on the loader "
                f"(memory_mode block_swap), or lower the size or the frame count")
    log.warning("IDVideo: a %dx%dx%d clip needs about %.1f GiB for one step's activations, more than the %.1f GiB "
                "the memory plan kept free; if it runs out of memory, %s.", width, height, num_frames,
                work.activation_bytes / 2 ** 30, plan.working_bytes / 2 ** 30, hint)
    return True


def _speed_options(model: LoadedModel, attention: str, compile_blocks: bool) -> None:
    from . import attention as attn

    family = model.family
    attn.set_attention(model.transformer, family, attention or attn.SDPA)
    mode = str(getattr(getattr(getattr(model.memory, "plan", None), "mode", None), "value", ""))
    if compile_blocks and ("swap" in mode or "sequential" in mode):
        log.warning("IDVideo: compile_blocks with block swap / sequential offload recompiles around the weight "
                    "moves and may be slower.")
    if compile_blocks and str(model.device).startswith("cpu"):
        log.warning("IDVideo: compile_blocks on the CPU is slower than the default oneDNN linears (1.3-1.4x per step "
                    "in BENCHMARKS.md); it pays off on CUDA GPUs.")
    attn.compile_blocks(model.transformer, family, compile_blocks)


# --------------------------------------------------------------------------------------------- Wan family
#: The model-folder keys each file of the Wan loader is looked up in (``models`` reports the same search).
WAN_FILE_KEYS = {"dit": ("concatid", "diffusion_models"), "vae": ("vae",), "text_encoder": ("text_encoders",)}


def wan_published(family: str) -> str:
    """Where a Wan-family DiT is published."""
    from . import paths

    return paths.PUBLISHED[registry.get(family).published]


def load_wan(family: str, base_folder=None, dit=None, vae=None, text_encoder=None, precision: str = "auto",
             memory_mode: str = "auto", blocks_to_swap: Optional[int] = None,
             weight_storage: str = "default") -> LoadedModel:
    """Names come from the loader's combos; each is resolved inside its ComfyUI model folders."""
    from . import paths
    from .backbones.wan.model import load_wan_model

    base = paths.resolve_model_folder("wan", base_folder, published=paths.PUBLISHED["wan"]) if base_folder else None
    if base is None:
        _require_without_base(dit, vae, text_encoder)
    pub = wan_published(family)
    dit_p = paths.resolve_file(WAN_FILE_KEYS["dit"], dit, "the DiT weights", pub) if dit else None
    vae_p = paths.resolve_file(WAN_FILE_KEYS["vae"], vae, "the Wan VAE", paths.PUBLISHED["wan"]) if vae else None
    te_p = (paths.resolve_file(WAN_FILE_KEYS["text_encoder"], text_encoder, "the UMT5 text encoder",
                               paths.PUBLISHED["wan"]) if text_encoder else None)
    if weight_storage not in WAN_WEIGHT_STORAGE:
        raise InputError(f"Unknown weight storage '{weight_storage}'.",
                         f"Choose one of: {', '.join(WAN_WEIGHT_STORAGE)}.")
    # storage is applied while the DiT streams in (fp8 files stay fp8; no full-precision copy of the model)
    model = load_wan_model(family, base=base, dit=dit_p, vae=vae_p, text_encoder=te_p, precision=precision,
                           weight_storage=weight_storage, memory_mode=memory_mode)
    done = model.options.get("weight_storage", "default")
    return attach_memory(model, memory_mode, blocks_to_swap,
                         "default" if done == "fp8_e4m3" or weight_storage == "auto" else weight_storage)


def _require_without_base(dit, vae, text_encoder) -> None:
    """Without a base folder every part must be a chosen file: say which is missing and where IDVideo looked."""
    from . import paths
    from .errors import MissingModelError

    for given, keys, what in ((dit, ("concatid", "diffusion_models"), "the Wan DiT"), (vae, ("vae",), "the Wan VAE"),
                              (text_encoder, ("text_encoders",), "the UMT5 text encoder")):
        if not given:
            searched = [p for k in ("wan",) + keys for p in paths.search_dirs(k)]
            raise MissingModelError(
                f"{what} (no base folder is chosen and no file is picked for it)", searched, paths.PUBLISHED["wan"],
                "Put Wan2.1-T2V-1.3B-Diffusers in models/wan and choose it as base_folder, or put the single file "
                "in the folder named above and pick it on the loader.")


def concat_references(width: int, height: int, face_mode: int, subject_white: bool, faces=None, subjects=(),
                      previous=None):
    """Faces (left to right) then subjects (socket order) → ordered ``Reference`` list + preview IMAGE.

    ``face_mode``: 0 Concat-ID crop + mask, 1 crop without mask, 2 whole image white pad, 3 whole image black pad.
    """
    import torch

    from .backbones.wan.references import letterbox_black, pad_white
    from .backbones.wan.refprep import FaceParser, concatid_reference, find_face_parsing_folder
    from .types import Reference

    refs = list(previous or [])
    if faces:
        ordered = sorted(faces, key=lambda f: (f.image_index, float(f.bbox[0])))
        log.info("IDVideo: faces left to right (reference order; Concat-ID-CogVideoX: face 1 = img1 at t=T, face 2 = "
                 "img2 at t=T+1): %s", ", ".join(f"face {n + 1} = image {f.image_index + 1}, x={float(f.bbox[0]):.0f}"
                                                 for n, f in enumerate(ordered)))
        parser = FaceParser(find_face_parsing_folder(), bridge.torch_device()) if face_mode == 0 else None
        for n, f in enumerate(ordered):
            if face_mode in (0, 1):
                refs.append(concatid_reference(f, width, height, parser, label=f"face {n + 1}"))
            else:
                fit = pad_white if face_mode == 2 else letterbox_black
                img = fit(torch.from_numpy(f.source_rgb).float()[None] / 255.0, width, height)
                refs.append(Reference(image=img, kind="face", label=f"face {n + 1}", source_index=f.image_index))
    for n, s in enumerate(subjects):
        if s is None:
            continue
        fit = pad_white if subject_white else letterbox_black
        for b in range(len(s)):
            refs.append(Reference(image=fit(s[b:b + 1], width, height), kind="subject", label=f"subject {n + 1}",
                                  source_index=b))
    if not refs:
        raise InputError("The concatenator got no reference.", "Connect faces or at least one subject image.")
    preview = torch.cat([r.image.reshape(1, height, width, 3).float() for r in refs])
    log.info("IDVideo references, in order: %s", ", ".join(r.label for r in refs))
    return refs, preview
