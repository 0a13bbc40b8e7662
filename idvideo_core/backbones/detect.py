"""Tell checkpoint families apart from their keys or configs, never from file names."""
from __future__ import annotations

from pathlib import Path

from ..safeload import read_json, safetensors_keys

WAN_MARKERS = ("patch_embedding.weight", "blocks.0.self_attn.q.weight", "blocks.0.cross_attn.k.weight",
               "condition_embedder.time_embedder.linear_1.weight", "blocks.0.attn2.to_k.weight")
COGVIDEOX_MARKERS = ("patch_embed.proj.weight", "transformer_blocks.0.norm1.linear.weight")
CONSISID_MARKERS = ("local_facial_extractor.latents", "perceiver_cross_attention.0.to_q.weight")


def family_from_keys(keys) -> str:
    """``wan``, ``consisid``, ``cogvideox`` or ``unknown``."""
    keys = [k[len("model.diffusion_model."):] if k.startswith("model.diffusion_model.") else k for k in keys]
    ks = set(keys)
    if any(m in ks for m in CONSISID_MARKERS):
        return "consisid"
    if any(m in ks for m in WAN_MARKERS) or any(k.startswith("blocks.") and ".self_attn." in k for k in ks):
        return "wan"
    if any(m in ks for m in COGVIDEOX_MARKERS):
        return "cogvideox"
    return "unknown"


def family_from_class_name(name: str) -> str:
    name = name or ""
    if name.startswith("ConsisID"):
        return "consisid"
    if name.startswith("Wan"):
        return "wan"
    if name.startswith("CogVideoX"):
        return "cogvideox"
    return "unknown"


def family_of_path(path: Path) -> str:
    """Family of a diffusers model folder (its ``transformer/config.json`` or ``config.json``) or a single file."""
    path = Path(path)
    if path.is_dir():
        for cfg in (path / "transformer" / "config.json", path / "config.json"):
            if cfg.is_file():
                return family_from_class_name(read_json(cfg).get("_class_name", ""))
        return "unknown"
    if path.suffix == ".safetensors":
        return family_from_keys(safetensors_keys(path))
    return "unknown"
