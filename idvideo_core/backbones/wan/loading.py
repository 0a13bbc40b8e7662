"""Load Wan2.1 components from the diffusers folder or ComfyUI single files; the format is read from the keys.

Layouts:
* diffusers folder (``Wan2.1-T2V-1.3B-Diffusers``): ``transformer/``, ``vae/``, ``text_encoder/`` (UMT5),
  ``tokenizer/``, ``scheduler/``.
* ComfyUI single files: a DiT with ORIGINAL Wan keys (optionally ``model.diffusion_model.``-prefixed), the original
  Wan VAE (``wan_2.1_vae.safetensors``), UMT5 in HF T5 names carrying its sentencepiece model as ``spiece_model``.
* DiT overrides: Concat-ID-Wan ``first_stage.pt`` / ``second_stage_adaln.pt`` and ``Phantom-Wan-1.3B.pth``
  (pickles, loaded ``weights_only``), or any of them converted to safetensors (original or diffusers names).

Single files carry no config, so it is inferred from tensor shapes; the head size is 128 in every Wan2.1 model.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Optional

import torch

from ... import paths
from ...errors import CorruptFileError, MissingModelError, WrongModelError
from ...safeload import load_weights, read_json
from . import keys as K
from .transformer import ConcatIdAdaLN, WanDiT

log = logging.getLogger("idvideo")
PUBLISHED_WAN = paths.PUBLISHED["wan"]
WAN_HEAD_DIM = 128
# diffusers keeps these sub-modules in fp32 when loading in half precision (``_keep_in_fp32_modules``).
_FP32_PARTS = ("rope", "time_embedder", "scale_shift_table", "norm1", "norm2", "norm3", "ref_scale_shift_table")


# ------------------------------------------------------------------------------------------------- transformer
def infer_transformer_config(sd: dict) -> dict:
    """``WanTransformer3DModel`` kwargs from a diffusers-named state dict."""
    try:
        pw = sd["patch_embedding.weight"]
        inner = pw.shape[0]
        patch = tuple(int(s) for s in pw.shape[2:])
        layers = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
        cfg = dict(
            patch_size=patch, num_attention_heads=inner // WAN_HEAD_DIM, attention_head_dim=WAN_HEAD_DIM,
            in_channels=int(pw.shape[1]),
            out_channels=int(sd["proj_out.weight"].shape[0]) // math.prod(patch),
            text_dim=int(sd["condition_embedder.text_embedder.linear_1.weight"].shape[1]),
            freq_dim=int(sd["condition_embedder.time_embedder.linear_1.weight"].shape[1]),
            ffn_dim=int(sd["blocks.0.ffn.net.0.proj.weight"].shape[0]), num_layers=layers,
            cross_attn_norm="blocks.0.norm2.weight" in sd, qk_norm="rms_norm_across_heads", eps=1e-6,
            rope_max_seq_len=1024)
    except (KeyError, ValueError) as exc:
        raise WrongModelError(f"The state dict is not a Wan2.1 DiT (missing {exc}).",
                              "Pick a Wan2.1 diffusion model file (original or diffusers key names).") from exc
    if inner % WAN_HEAD_DIM:
        raise WrongModelError(f"Hidden size {inner} is not a multiple of 128; not a Wan2.1 DiT.",
                              "Pick a Wan2.1 diffusion model file.")
    if "condition_embedder.image_embedder.norm1.weight" in sd:
        cfg["image_dim"] = int(sd["condition_embedder.image_embedder.norm1.weight"].shape[0])
        cfg["added_kv_proj_dim"] = inner
    return cfg


def _cast(sd: dict, dtype) -> dict:
    return {k: (v.float() if any(p in k.split(".") for p in _FP32_PARTS) else v.to(dtype))
            if v.is_floating_point() else v for k, v in sd.items()}


def check_dit_state_dict(sd: dict, source: str | Path = "state dict") -> tuple[dict, dict, dict]:
    """The loader's checks of a Wan DiT state dict (also run on header-only tensors by ``models``): returns
    (diffusers-named base weights, Concat-ID extras, ``WanTransformer3DModel`` config) or raises WrongModelError."""
    from ..detect import family_from_keys

    other = family_from_keys(sd.keys())
    if other in ("consisid", "cogvideox"):
        raise WrongModelError(f"{source} is a {'ConsisID' if other == 'consisid' else 'CogVideoX'} checkpoint "
                              "(detected from its keys), not a Wan2.1 DiT.",
                              "Load ConsisID models with 'IDVideo ConsisID Model Loader' (the whole diffusers "
                              "folder under models/consisid); pick a Wan2.1 / Concat-ID / Phantom DiT here.")
    fmt = K.detect_transformer_format(sd.keys())
    if fmt == "unknown":
        raise WrongModelError(f"{source} is not a Wan2.1 diffusion model (no Wan block keys found).",
                              "Pick a Wan2.1 / Concat-ID-Wan / Phantom-Wan DiT file.")
    try:
        if fmt == "original":
            dsd = K.original_to_diffusers(sd)
        else:
            _, strip = K.strip_prefix(sd.keys())
            dsd = {s: sd[o] for s, o in strip.items()}
    except K.UnknownKeysError as exc:
        raise WrongModelError(f"{source} has keys IDVideo does not know for a Wan2.1 DiT: {exc.keys[:5]}",
                              "Pick a Wan2.1 T2V / Concat-ID-Wan / Phantom-Wan checkpoint.") from exc
    base_sd, extra_sd = K.split_concatid_extras(dsd)
    return base_sd, extra_sd, infer_transformer_config(base_sd)


def dit_from_state_dict(sd: dict, dtype=torch.float32, source: str | Path = "state dict") -> WanDiT:
    """A :class:`WanDiT` from a state dict in original or diffusers names, with or without Concat-ID extras."""
    from diffusers import WanTransformer3DModel
    from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed

    base_sd, extra_sd, cfg = check_dit_state_dict(sd, source)
    with torch.device("meta"):
        model = WanTransformer3DModel(**cfg)
    try:
        model.load_state_dict(_cast(base_sd, dtype), strict=True, assign=True)
    except RuntimeError as exc:
        raise CorruptFileError(source, f"the weights do not fit a Wan2.1 DiT: {str(exc)[:400]}") from exc
    model.rope = WanRotaryPosEmbed(cfg["attention_head_dim"], cfg["patch_size"], cfg["rope_max_seq_len"])
    adaln = None
    if extra_sd:
        dim = cfg["num_attention_heads"] * cfg["attention_head_dim"]
        with torch.device("meta"):
            adaln = ConcatIdAdaLN(dim, cfg["num_layers"])
        try:
            adaln.load_state_dict(_cast(extra_sd, dtype), strict=True, assign=True)
        except RuntimeError as exc:
            raise CorruptFileError(source, f"incomplete Concat-ID AdaLN extras: {str(exc)[:300]}") from exc
    return WanDiT(model.eval(), adaln).eval().requires_grad_(False)


def load_dit(path: str | Path, dtype=torch.float32) -> WanDiT:
    """A Wan DiT from a single file (.safetensors/.pt/.pth, any key naming) or a diffusers ``transformer/`` folder."""
    path = Path(path)
    if path.is_dir():
        sub = path / "transformer" if (path / "transformer" / "config.json").is_file() else path
        return _dit_from_folder(sub, dtype)
    if not path.is_file():
        raise MissingModelError(f"the Wan DiT file {path.name}", [path], PUBLISHED_WAN)
    sd = load_weights(path, published=PUBLISHED_WAN)
    return dit_from_state_dict(sd, dtype, path)


def _dit_from_folder(folder: Path, dtype) -> WanDiT:
    from diffusers import WanTransformer3DModel

    cls = read_json(folder / "config.json").get("_class_name", "")
    if not cls.startswith("Wan"):
        raise WrongModelError(f"{folder} holds a {cls or 'unknown'} transformer, not Wan2.1.",
                              "Pick a Wan2.1-T2V-1.3B-Diffusers folder.")
    try:
        model = WanTransformer3DModel.from_pretrained(str(folder), torch_dtype=dtype)
    except (OSError, ValueError, RuntimeError) as exc:
        raise CorruptFileError(folder, f"loading the Wan transformer failed: {exc}", PUBLISHED_WAN) from exc
    return WanDiT(model.eval(), None).eval().requires_grad_(False)


# ------------------------------------------------------------------------------------------------- VAE
def check_vae_keys(keys, source: str | Path = "state dict") -> str:
    """``original`` or ``diffusers`` for a Wan2.1 VAE's keys (ComfyUI prefixes ignored), else WrongModelError."""
    fmt = K.detect_vae_format(keys)
    if fmt not in ("original", "diffusers"):
        raise WrongModelError(f"{source} is not a Wan2.1 VAE (detected from its keys).",
                              "Pick wan_2.1_vae.safetensors (ComfyUI) or the vae/ folder of the diffusers repo.")
    return fmt


def vae_from_state_dict(sd: dict, dtype=torch.float32, source: str | Path = "state dict"):
    from diffusers import AutoencoderKLWan
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    _, strip = K.strip_prefix(sd.keys())
    sd = {s: sd[o] for s, o in strip.items()}
    if check_vae_keys(sd.keys(), source) == "original":
        sd = convert_wan_vae_to_diffusers(dict(sd))
    base_dim = int(sd["encoder.conv_in.weight"].shape[0])
    z_dim = int(sd["post_quant_conv.weight"].shape[0])
    with torch.device("meta"):
        vae = AutoencoderKLWan(base_dim=base_dim, z_dim=z_dim)
    try:
        vae.load_state_dict({k: v.to(dtype) for k, v in sd.items()}, strict=True, assign=True)
    except RuntimeError as exc:
        raise CorruptFileError(source, f"the weights do not fit a Wan2.1 VAE: {str(exc)[:400]}") from exc
    return vae.eval().requires_grad_(False)


def load_vae(path: str | Path, dtype=torch.float32):
    from diffusers import AutoencoderKLWan

    path = Path(path)
    if path.is_dir():
        sub = path / "vae" if (path / "vae" / "config.json").is_file() else path
        try:
            return AutoencoderKLWan.from_pretrained(str(sub), torch_dtype=dtype).eval().requires_grad_(False)
        except (OSError, ValueError, RuntimeError) as exc:
            raise CorruptFileError(sub, f"loading the Wan VAE failed: {exc}", PUBLISHED_WAN) from exc
    if not path.is_file():
        raise MissingModelError(f"the Wan VAE {path.name}", [path], PUBLISHED_WAN)
    return vae_from_state_dict(load_weights(path, published=PUBLISHED_WAN), dtype, path)


# ------------------------------------------------------------------------------------------------- UMT5
def _umt5_config_from_keys(sd: dict):
    from transformers import UMT5Config

    emb = sd.get("shared.weight", sd.get("encoder.embed_tokens.weight"))
    if emb is None or "encoder.block.0.layer.0.SelfAttention.q.weight" not in sd:
        raise WrongModelError("The text encoder file is not UMT5/T5 (no encoder.block.* keys).",
                              "Pick umt5_xxl_fp16.safetensors / umt5_xxl_fp8_e4m3fn_scaled.safetensors.")
    rel = sd["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
    if "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight" not in sd:
        raise WrongModelError("This is a T5 encoder (relative bias only in block 0), not Wan's UMT5.",
                              "Pick the umt5_xxl text encoder file.")
    heads = int(rel.shape[1])
    layers = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("encoder.block."))
    return UMT5Config(vocab_size=int(emb.shape[0]), d_model=int(emb.shape[1]),
                      d_kv=int(sd["encoder.block.0.layer.0.SelfAttention.q.weight"].shape[0]) // heads,
                      d_ff=int(sd["encoder.block.0.layer.1.DenseReluDense.wi_0.weight"].shape[0]),
                      num_layers=layers, num_heads=heads, relative_attention_num_buckets=int(rel.shape[0]),
                      relative_attention_max_distance=128, feed_forward_proj="gated-gelu",
                      is_encoder_decoder=False, dropout_rate=0.0)


def _dequantise(sd: dict, dtype) -> dict:
    """fp8 ComfyUI files: upcast, applying ``*.scale_weight`` where present ("scaled" variants)."""
    out = {}
    for k, v in sd.items():
        if k.endswith(".scale_weight") or k.endswith(".scale_input") or k in ("scaled_fp8", "spiece_model"):
            continue
        if v.is_floating_point():
            w = v.to(torch.float32)
            scale = sd.get(k[: -len("weight")] + "scale_weight") if k.endswith(".weight") else None
            if scale is not None:
                w = w * scale.to(torch.float32)
            v = w.to(dtype)
        out[k] = v
    return out


def text_encoder_from_state_dict(sd: dict, dtype=torch.float32, source: str | Path = "state dict"):
    """(UMT5EncoderModel, SentencePieceWanTokenizer or None) from a ComfyUI umt5 file."""
    from transformers import UMT5EncoderModel

    from .text import SentencePieceWanTokenizer

    cfg = _umt5_config_from_keys(sd)
    tok = SentencePieceWanTokenizer(bytes(sd["spiece_model"].numpy().tobytes())) if "spiece_model" in sd else None
    weights = _dequantise(sd, dtype)
    if "shared.weight" not in weights:
        weights["shared.weight"] = weights["encoder.embed_tokens.weight"]
    weights.setdefault("encoder.embed_tokens.weight", weights["shared.weight"])
    with torch.device("meta"):
        model = UMT5EncoderModel(cfg)
    try:
        model.load_state_dict(weights, strict=True, assign=True)
    except RuntimeError as exc:
        raise CorruptFileError(source, f"the weights do not fit UMT5: {str(exc)[:400]}") from exc
    return model.eval().requires_grad_(False), tok


def load_text_encoder(path: str | Path, dtype=torch.float32, tokenizer_dir: Optional[str | Path] = None):
    """(encoder, tokenizer) from a diffusers folder (``text_encoder/`` + ``tokenizer/``) or a ComfyUI umt5 file."""
    from transformers import AutoTokenizer, UMT5EncoderModel

    from .text import HFWanTokenizer

    path = Path(path)
    if path.is_dir():
        enc_dir = path / "text_encoder" if (path / "text_encoder").is_dir() else path
        tok_dir = Path(tokenizer_dir) if tokenizer_dir else (path / "tokenizer")
        if not tok_dir.is_dir():
            raise MissingModelError("the UMT5 tokenizer folder", [tok_dir], PUBLISHED_WAN)
        try:
            enc = UMT5EncoderModel.from_pretrained(str(enc_dir), torch_dtype=dtype)
            tok = AutoTokenizer.from_pretrained(str(tok_dir))
        except (OSError, ValueError, RuntimeError) as exc:
            raise CorruptFileError(enc_dir, f"loading UMT5 failed: {exc}", PUBLISHED_WAN) from exc
        return enc.eval().requires_grad_(False), HFWanTokenizer(tok)
    if not path.is_file():
        raise MissingModelError(f"the UMT5 text encoder {path.name}", [path], PUBLISHED_WAN)
    enc, tok = text_encoder_from_state_dict(load_weights(path, published=PUBLISHED_WAN), dtype, path)
    if tok is None:
        if tokenizer_dir is None:
            raise MissingModelError(
                "the UMT5 tokenizer (this text encoder file carries no 'spiece_model')", [path], PUBLISHED_WAN,
                "Use ComfyUI's umt5_xxl file (it embeds the tokenizer) or give the tokenizer/ folder of "
                "Wan2.1-T2V-1.3B-Diffusers.")
        tok = HFWanTokenizer(AutoTokenizer.from_pretrained(str(tokenizer_dir)))
    return enc, tok
