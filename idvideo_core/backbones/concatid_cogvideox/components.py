"""T5-XXL and the CogVideoX VAE from single files (besides the CogVideoX-5B diffusers folder, loading.py).

What is supported, and why:

* **T5 text encoder** — ComfyUI's ``models/text_encoders/t5xxl_fp16.safetensors`` (and the ``fp8_e4m3fn`` /
  ``_scaled`` variants): ComfyUI reads these with Hugging Face T5 key names (``shared.weight``,
  ``encoder.block.N.layer.0.SelfAttention.q.weight``, …; ``comfy/text_encoders/t5.py``; ``comfy/sd.py``
  ``t5xxl_detect`` looks for ``encoder.block.23.layer.1.DenseReluDense.wi_1.weight``), and it is the same
  google/t5-v1_1-xxl encoder CogVideoX uses. The config is read from the tensors; the relative-attention maximum
  distance (not in the weights) is T5's 128. The file carries no tokenizer: it is taken from the base folder's
  ``tokenizer/`` when one is chosen, else from ComfyUI's own bundled T5 tokenizer
  (``comfy/text_encoders/t5_tokenizer``, the one its T5-XXL nodes use).
* **VAE** — a ``models/vae`` file with diffusers ``AutoencoderKLCogVideoX`` key names (the single files the CogVideoX
  wrappers ship), or the SAT ``3d-vae.pt`` the official configs point to (``encoder.down.N.block.M.…``), mapped with
  the whole-key rules below, learned from CogVideo's ``convert_weight_sat2hf.py`` (down/up block renames, the up
  blocks in reverse order, ``nin_shortcut`` → ``conv_shortcut``, mid ``block_1/2`` → ``mid_block.resnets.0/1``; the
  training-only ``loss.*`` weights dropped). ComfyUI core has no CogVideoX VAE format of its own (0.3.64 / 0.8.0).
  The GroupNorm group count is not in the weights: 32, as in CogVideoX-5B; scaling factor 0.7.
  Not verified against a real file here: the SAT mapping is tested by a round trip only.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import torch

from ... import paths
from ...errors import CorruptFileError, MissingModelError, WrongModelError
from ...safeload import load_weights

log = logging.getLogger("idvideo")
T5_MAX_DISTANCE = 128
VAE_GROUPS = 32
PUBLISHED_T5 = ("huggingface.co/comfyanonymous/flux_text_encoders (t5xxl_fp16.safetensors) or the text_encoder/ "
                "of huggingface.co/THUDM/CogVideoX-5b")


# ------------------------------------------------------------------------------------------------ T5
def t5_config_from_keys(sd: dict):
    from transformers import T5Config

    emb = sd.get("shared.weight", sd.get("encoder.embed_tokens.weight"))
    q = sd.get("encoder.block.0.layer.0.SelfAttention.q.weight")
    rel = sd.get("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight")
    if emb is None or q is None or rel is None:
        raise WrongModelError("The text encoder file is not a T5 encoder (no encoder.block.* / shared keys).",
                              "Pick t5xxl_fp16.safetensors (or an fp8 variant) from models/text_encoders.")
    if "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight" in sd:
        raise WrongModelError("This is UMT5 (Wan's text encoder), not T5-XXL.", "Pick t5xxl_fp16.safetensors.")
    heads = int(rel.shape[1])
    gated = "encoder.block.0.layer.1.DenseReluDense.wi_0.weight" in sd
    ff = sd["encoder.block.0.layer.1.DenseReluDense.wi_0.weight" if gated else
            "encoder.block.0.layer.1.DenseReluDense.wi.weight"]
    layers = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("encoder.block."))
    return T5Config(vocab_size=int(emb.shape[0]), d_model=int(emb.shape[1]), d_kv=int(q.shape[0]) // heads,
                    d_ff=int(ff.shape[0]), num_layers=layers, num_heads=heads,
                    relative_attention_num_buckets=int(rel.shape[0]),
                    relative_attention_max_distance=T5_MAX_DISTANCE,
                    feed_forward_proj="gated-gelu" if gated else "relu", is_encoder_decoder=False, dropout_rate=0.0)


def t5_from_state_dict(sd: dict, dtype=torch.float32, source: str | Path = "state dict"):
    from transformers import T5EncoderModel

    from ..text_encoders import encoder_from_state_dict

    return encoder_from_state_dict(T5EncoderModel, t5_config_from_keys(sd), sd, dtype, source, "a T5 encoder",
                                   PUBLISHED_T5,
                                   drop=lambda k: k.startswith("decoder.") or k == "lm_head.weight")


def comfy_t5_tokenizer_dir() -> Path | None:
    """ComfyUI's bundled T5 tokenizer folder, when running inside ComfyUI (None outside)."""
    import importlib.util

    spec = importlib.util.find_spec("comfy")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        d = Path(loc) / "text_encoders" / "t5_tokenizer"
        if (d / "tokenizer.json").is_file():
            return d
    return None


def load_t5_tokenizer(base: Path | None):
    from transformers import AutoTokenizer

    cands = []
    if base is not None:
        cands.append(Path(base) / "tokenizer")
    comfy = comfy_t5_tokenizer_dir()
    if comfy is not None:
        cands.append(comfy)
    for c in cands:
        if c.is_dir():
            try:
                return AutoTokenizer.from_pretrained(str(c))
            except (OSError, ValueError) as exc:
                raise CorruptFileError(c, f"loading the T5 tokenizer failed: {exc}") from exc
    raise MissingModelError("the T5 tokenizer (a T5 single file carries none)",
                            cands or ["<base folder>/tokenizer", "ComfyUI/comfy/text_encoders/t5_tokenizer"],
                            paths.PUBLISHED["cogvideox"],
                            "Choose a CogVideoX-5B base folder (its tokenizer/ is used) or run inside ComfyUI.")


def load_t5_file(path: Path, dtype=torch.float32):
    return t5_from_state_dict(load_weights(path, published=PUBLISHED_T5), dtype, path)


# ------------------------------------------------------------------------------------------------ VAE
_SAT_VAE_RULES = [
    (re.compile(r"(encoder|decoder)\.down\.(\d+)\.block\.(\d+)\.(.+)$"), "down_res"),
    (re.compile(r"encoder\.down\.(\d+)\.downsample\.(.+)$"), "down_sample"),
    (re.compile(r"decoder\.up\.(\d+)\.block\.(\d+)\.(.+)$"), "up_res"),
    (re.compile(r"decoder\.up\.(\d+)\.upsample\.(.+)$"), "up_sample"),
    (re.compile(r"(encoder|decoder)\.mid\.block_([12])\.(.+)$"), "mid"),
    (re.compile(r"(encoder|decoder)\.(conv_in|conv_out|norm_out)\.(.+)$"), "same"),
]


def _res(tail: str) -> str:
    return "conv_shortcut." + tail[len("nin_shortcut."):] if tail.startswith("nin_shortcut.") else tail


def sat_vae_to_diffusers(sd: dict, num_up: int = 4) -> dict:
    """SAT ``3d-vae.pt`` names → diffusers ``AutoencoderKLCogVideoX`` names (``loss.*`` dropped)."""
    from .keys import UnknownKeysError

    out, unknown = {}, []
    for k, v in sd.items():
        if k.startswith("loss."):
            continue
        for rx, kind in _SAT_VAE_RULES:
            m = rx.match(k)
            if not m:
                continue
            g = m.groups()
            if kind == "down_res":
                out[f"{g[0]}.down_blocks.{g[1]}.resnets.{g[2]}.{_res(g[3])}"] = v
            elif kind == "down_sample":
                out[f"encoder.down_blocks.{g[0]}.downsamplers.0.{g[1]}"] = v
            elif kind == "up_res":
                out[f"decoder.up_blocks.{num_up - 1 - int(g[0])}.resnets.{g[1]}.{_res(g[2])}"] = v
            elif kind == "up_sample":
                out[f"decoder.up_blocks.{num_up - 1 - int(g[0])}.upsamplers.0.{g[1]}"] = v
            elif kind == "mid":
                out[f"{g[0]}.mid_block.resnets.{int(g[1]) - 1}.{_res(g[2])}"] = v
            else:
                out[k] = v
            break
        else:
            unknown.append(k)
    if unknown:
        raise UnknownKeysError(unknown)
    return out


def vae_config_from_keys(sd: dict) -> dict:
    downs = sorted({int(k.split(".")[2]) for k in sd if k.startswith("encoder.down_blocks.")})
    boc = tuple(int(sd[f"encoder.down_blocks.{i}.resnets.0.conv2.conv.weight"].shape[0]) for i in downs)
    lpb = 1 + max(int(k.split(".")[4]) for k in sd if k.startswith("encoder.down_blocks.0.resnets."))
    return dict(in_channels=int(sd["encoder.conv_in.conv.weight"].shape[1]),
                out_channels=int(sd["decoder.conv_out.conv.weight"].shape[0]),
                latent_channels=int(sd["encoder.conv_out.conv.weight"].shape[0]) // 2, block_out_channels=boc,
                layers_per_block=lpb, norm_num_groups=VAE_GROUPS, temporal_compression_ratio=4, scaling_factor=0.7,
                down_block_types=("CogVideoXDownBlock3D",) * len(boc),
                up_block_types=("CogVideoXUpBlock3D",) * len(boc))


def vae_from_state_dict(sd: dict, dtype=torch.float32, source: str | Path = "state dict"):
    from diffusers import AutoencoderKLCogVideoX

    from .keys import UnknownKeysError

    for pre in ("first_stage_model.", "vae."):
        if sd and all(k.startswith(pre) for k in sd):
            sd = {k[len(pre):]: v for k, v in sd.items()}
    if "encoder.down.0.block.0.conv1.conv.weight" in sd or any(k.startswith("encoder.down.") for k in sd):
        try:
            sd = sat_vae_to_diffusers(sd)
        except UnknownKeysError as exc:
            raise WrongModelError(f"{source} has VAE keys IDVideo does not know: {exc.keys[:5]}",
                                  "Pick the CogVideoX VAE (3d-vae.pt or a diffusers-named file).") from exc
    if "encoder.conv_in.conv.weight" not in sd:
        raise WrongModelError(f"{source} is not a CogVideoX VAE (detected from its keys).",
                              "Pick the CogVideoX-5B VAE (models/vae), or leave 'vae' on the base folder.")
    cfg = vae_config_from_keys(sd)
    if any(c % VAE_GROUPS for c in cfg["block_out_channels"]):
        raise WrongModelError(f"{source} is not the CogVideoX-5B VAE (its widths {cfg['block_out_channels']} do not "
                              f"fit the VAE's {VAE_GROUPS} norm groups).",
                              "Pick the CogVideoX-5B VAE, or leave 'vae' on the base folder.")
    with torch.device("meta"):
        vae = AutoencoderKLCogVideoX(**cfg)
    try:
        vae.load_state_dict({k: (v.to(dtype) if v.is_floating_point() else v) for k, v in sd.items()},
                            strict=True, assign=True)
    except RuntimeError as exc:
        raise CorruptFileError(source, f"the weights do not fit a CogVideoX VAE: {str(exc)[:400]}") from exc
    return vae.eval().requires_grad_(False)


def load_vae_file(path: Path, dtype=torch.float32):
    from .checkpoint import load_sat_states

    path = Path(path)
    sd = load_weights(path) if path.suffix == ".safetensors" else load_sat_states(path)
    return vae_from_state_dict(sd, dtype, path)
