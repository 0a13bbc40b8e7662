"""Load Concat-ID-CogVideoX: the SAT DiT (or its safetensors conversion) + T5-XXL and the CogVideoX VAE.

* DiT: a SAT checkpoint folder (``single-identity/``, ``two-identities/``, ``Concat-ID-pre-training``: ``latest`` +
  ``<iteration>/mp_rank_00_model_states.pt``) under ``models/concatid/``, or the ``.safetensors`` written by
  ``python -m idvideo_core.backbones.concatid_cogvideox.convert`` (SAT or diffusers key names). Mapped onto diffusers'
  ``CogVideoXTransformer3DModel``; the config is inferred from the tensors (the published weights give the 5B config:
  3072 wide, 48 heads of 64, 42 layers, time embedding 512, text 4096, 16 latent channels, patch 2) with every
  LayerNorm at SAT's eps 1e-6 (diffusers' default 1e-5 differs by ~2e-5 on the output).
* T5-XXL (``text_encoder/`` + ``tokenizer/``) and the VAE (``vae/``) from a diffusers folder of CogVideoX-5B
  (``THUDM/CogVideoX-5b``, put under ``models/cogvideox/``). The SAT config's ``t5-v1_1-xxl`` and ``3d-vae.pt`` are
  these same networks; the ConsisID-preview folder (``models/consisid/``) carries identical T5 and VAE folders and is
  accepted too.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from ... import bridge, paths
from ...dtypes import resolve_dtype
from ...errors import CorruptFileError, MissingModelError, WrongModelError
from ...safeload import check_model_folder_files
from ..base import LoadedModel
from . import keys as K
from .checkpoint import load_dit_weights

log = logging.getLogger("idvideo")
FAMILY = "concatid_cogvideox"
PUBLISHED_DIT = paths.PUBLISHED.get("concatid_cogvideox", "modelscope.cn/models/yongzhong/Concat-ID")
PUBLISHED_BASE = paths.PUBLISHED.get("cogvideox", "huggingface.co/THUDM/CogVideoX-5b")
SAT_NORM_EPS = 1e-6
SAT_SCALE_FACTOR = 0.7          # configs/cogvideox_5b.yaml ``scale_factor``
# The official config's latent grid (480×720, 49 frames); only the RoPE grid of the 480×720 case depends on it.
SAMPLE_HEIGHT, SAMPLE_WIDTH, SAMPLE_FRAMES = 60, 90, 49


def infer_config(sd: dict) -> dict:
    """``CogVideoXTransformer3DModel`` kwargs from a diffusers-named state dict."""
    try:
        pw = sd["patch_embed.proj.weight"]
        inner, in_ch, patch = int(pw.shape[0]), int(pw.shape[1]), int(pw.shape[2])
        head = int(sd["transformer_blocks.0.attn1.norm_q.weight"].shape[0])
        layers = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("transformer_blocks."))
        return dict(
            num_attention_heads=inner // head, attention_head_dim=head, in_channels=in_ch,
            out_channels=int(sd["proj_out.weight"].shape[0]) // (patch * patch),
            time_embed_dim=int(sd["time_embedding.linear_1.weight"].shape[0]),
            text_embed_dim=int(sd["patch_embed.text_proj.weight"].shape[1]), num_layers=layers,
            sample_width=SAMPLE_WIDTH, sample_height=SAMPLE_HEIGHT, sample_frames=SAMPLE_FRAMES, patch_size=patch,
            norm_elementwise_affine="transformer_blocks.0.norm1.norm.weight" in sd, norm_eps=SAT_NORM_EPS,
            use_rotary_positional_embeddings=True, use_learned_positional_embeddings=False,
        )
    except (KeyError, IndexError, ValueError) as exc:
        raise WrongModelError(f"The weights miss a CogVideoX DiT part ({exc}).",
                              "Pick a Concat-ID-CogVideoX SAT folder or its converted .safetensors.") from exc


def transformer_from_state_dict(sd: dict, dtype=torch.float32, source: str | Path = "state dict"):
    """SAT- or diffusers-named state dict → ``CogVideoXTransformer3DModel`` (eval, no grad)."""
    from diffusers import CogVideoXTransformer3DModel

    names = K.detect_names(sd.keys())
    if names == "unknown":
        raise WrongModelError(f"{source} is not a CogVideoX DiT (detected from its keys).",
                              f"Pick a Concat-ID-CogVideoX SAT folder ({PUBLISHED_DIT}).")
    try:
        dsd = K.sat_to_diffusers(sd) if names == "sat" else dict(sd)
    except K.UnknownKeysError as exc:
        raise WrongModelError(f"{source} has keys IDVideo does not know: {exc.keys[:5]}",
                              "Pick a Concat-ID-CogVideoX (CogVideoX-5B T2V) SAT checkpoint.") from exc
    cfg = infer_config(dsd)
    with torch.device("meta"):
        model = CogVideoXTransformer3DModel(**cfg)
    try:
        model.load_state_dict({k: (v.to(dtype) if v.is_floating_point() else v) for k, v in dsd.items()},
                              strict=True, assign=True)
    except RuntimeError as exc:
        raise CorruptFileError(source, f"the weights do not fit a CogVideoX DiT: {str(exc)[:400]}",
                               PUBLISHED_DIT) from exc
    return model.eval().requires_grad_(False)


def load_transformer(path: str | Path, dtype=torch.float32):
    sd, src = load_dit_weights(path, PUBLISHED_DIT)
    return transformer_from_state_dict(sd, dtype, src)


# ------------------------------------------------------------------------------------------------ T5 + VAE
BASE_PARTS = ("text_encoder", "tokenizer", "vae")


def check_base_folder(folder: Path, parts=BASE_PARTS) -> Path:
    missing = [p for p in parts if not (folder / p).is_dir()]
    if missing:
        raise MissingModelError(f"the CogVideoX part(s) {', '.join(missing)}", [folder / p for p in missing],
                                PUBLISHED_BASE, "Concat-ID-CogVideoX takes T5-XXL and the VAE from a CogVideoX-5B "
                                "diffusers folder (text_encoder/, tokenizer/, vae/).")
    return folder


def resolve_base_folder(name: str | Path, parts=BASE_PARTS) -> Path:
    """A name under ``models/cogvideox/`` or ``models/consisid/``, or an absolute folder."""
    p = Path(str(name)).expanduser()
    if p.is_absolute():
        return check_base_folder(paths.find_dir("the CogVideoX-5B folder", [p], published=PUBLISHED_BASE), parts)
    if ".." in p.parts:
        from ...errors import InputError

        raise InputError(f"'{name}' is not a folder inside ComfyUI's model folders.", "Pick a folder from the list.")
    cands = [Path(d) / p for key in ("cogvideox", "consisid") for d in paths.search_dirs(key)]
    return check_base_folder(paths.find_dir(f"the CogVideoX-5B folder '{name}'", cands, published=PUBLISHED_BASE),
                             parts)


def load_vae(folder: Path, dtype=torch.float32):
    from diffusers import AutoencoderKLCogVideoX

    sub = folder / "vae"
    check_model_folder_files(sub, PUBLISHED_BASE)
    try:
        vae = AutoencoderKLCogVideoX.from_pretrained(str(sub), torch_dtype=dtype)
    except (OSError, ValueError, RuntimeError) as exc:
        raise CorruptFileError(sub, f"loading the CogVideoX VAE failed: {exc}", PUBLISHED_BASE) from exc
    sf = float(getattr(vae.config, "scaling_factor", SAT_SCALE_FACTOR))
    if abs(sf - SAT_SCALE_FACTOR) > 1e-6:
        log.warning("IDVideo: this VAE's scaling_factor is %s; Concat-ID-CogVideoX was trained with %s (used).",
                    sf, SAT_SCALE_FACTOR)
    return vae.eval().requires_grad_(False)


def load_concatid_cogvideox(dit: str | Path, base_folder: str | Path | None = None, precision: str = "auto",
                            device=None, load_text_encoder: bool = True, variant: str | None = None,
                            vae_file: str | Path | None = None,
                            text_encoder_file: str | Path | None = None) -> LoadedModel:
    """DiT (SAT folder / .pt / .safetensors) + T5 and VAE from a CogVideoX-5B diffusers folder or single files
    (components.py: ComfyUI's t5xxl text encoder, a CogVideoX VAE file)."""
    from ...text import load_t5
    from . import components as C

    device = device or bridge.torch_device()
    dtype = resolve_dtype(precision, device)
    need = tuple(p for p, single in (("vae", vae_file), ("text_encoder", text_encoder_file),
                                     ("tokenizer", text_encoder_file)) if not single and
                 (p == "vae" or load_text_encoder))
    base = None
    if base_folder is not None:
        base = resolve_base_folder(base_folder, need)
    elif need:
        raise MissingModelError(f"the CogVideoX part(s) {', '.join(need)} (no base folder chosen)",
                                [Path(d) for d in paths.search_dirs("cogvideox")], PUBLISHED_BASE,
                                "Choose a CogVideoX-5B base folder, or single files for both the VAE and T5.")
    transformer = load_transformer(dit, dtype)
    vae = C.load_vae_file(Path(vae_file), dtype) if vae_file else load_vae(base, dtype)
    te = tok = None
    if load_text_encoder:
        if text_encoder_file:
            te = C.load_t5_file(Path(text_encoder_file), dtype)
            tok = C.load_t5_tokenizer(base)
        else:
            te, tok = load_t5(base / "text_encoder", base / "tokenizer", dtype)
    return LoadedModel(family=FAMILY, transformer=transformer, vae=vae, scheduler_config={}, text_encoder=te,
                       tokenizer=tok, dtype=dtype, device=device, source=Path(dit),
                       options={"variant": variant or Path(str(dit)).name})


# ------------------------------------------------------------------------------------------------ names for the node
DIT_KEYS = ("concatid", "diffusion_models")


def list_dit_choices() -> list[str]:
    """SAT folders (holding ``latest``) under ``models/concatid``, then ``.safetensors`` files there and in
    ``models/diffusion_models`` (converted checkpoints)."""
    names: list[str] = []
    for d in paths.search_dirs("concatid"):
        d = Path(d)
        if d.is_dir():
            for sub in sorted(d.iterdir()):
                if sub.is_dir() and (sub / "latest").is_file() and sub.name not in names:
                    names.append(sub.name)
    names += [n for n in paths.list_files(DIT_KEYS, (".safetensors",)) if n not in names]
    return names


def list_base_choices() -> list[str]:
    names: list[str] = []
    for key in ("cogvideox", "consisid"):
        for d in paths.search_dirs(key):
            d = Path(d)
            if d.is_dir():
                for sub in sorted(d.iterdir()):
                    if sub.is_dir() and all((sub / p).is_dir() for p in BASE_PARTS) and sub.name not in names:
                        names.append(sub.name)
    return names


def resolve_dit(name: str | Path) -> Path:
    """A name from :func:`list_dit_choices` (or an absolute path) → the SAT folder or the .safetensors file."""
    p = Path(str(name)).expanduser()
    if p.is_absolute():
        if p.exists():
            return p
        raise MissingModelError(f"the Concat-ID-CogVideoX weights {p.name}", [p], PUBLISHED_DIT)
    if ".." in p.parts:
        from ...errors import InputError

        raise InputError(f"'{name}' is not a name inside ComfyUI's model folders.", "Pick one from the list.")
    cands = [Path(d) / p for k in DIT_KEYS for d in paths.search_dirs(k)]
    for c in cands:
        if (c.is_dir() and (c / "latest").is_file()) or (c.is_file() and c.suffix == ".safetensors"):
            return c
    raise MissingModelError(f"the Concat-ID-CogVideoX weights '{name}'", cands, PUBLISHED_DIT,
                            "Put the SAT folder (latest + <iteration>/mp_rank_00_model_states.pt) under "
                            "models/concatid/.")


def load_named(dit: str, base_folder: str | None, precision: str = "auto", vae: str | None = None,
               text_encoder: str | None = None) -> LoadedModel:
    """What the loader node calls: every name resolved inside ComfyUI's model folders (None = not chosen)."""
    vae_p = paths.resolve_file(("vae",), vae, "the CogVideoX VAE", PUBLISHED_BASE) if vae else None
    te_p = (paths.resolve_file(("text_encoders",), text_encoder, "the T5-XXL text encoder", PUBLISHED_BASE)
            if text_encoder else None)
    return load_concatid_cogvideox(resolve_dit(dit), base_folder, precision, variant=Path(str(dit)).name,
                                   vae_file=vae_p, text_encoder_file=te_p)
