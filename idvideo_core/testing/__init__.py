"""Tiny random checkpoints in the real published layouts, for tests and ``idvideo generate --smoke``.

Nothing here is downloaded: every file is written from random numbers, in exactly the layout users have on disk,
and is read back by the pack's real loading code.
"""
from __future__ import annotations

from pathlib import Path


def build_consisid_folder(root: Path | str, seed: int = 0) -> Path:
    """A complete tiny ``ConsisID-preview`` folder: diffusers components plus ``face_encoder/``."""
    from .tiny_consisid import write_consisid_base
    from .tiny_eva import tiny_eva_config
    from .tiny_faces import write_tiny_face_encoder

    root = Path(root)
    cfg = tiny_eva_config()
    write_consisid_base(root, eva_width=cfg.width, eva_embed_dim=cfg.embed_dim, seed=seed)
    write_tiny_face_encoder(root / "face_encoder")
    return root


def build_all(models_root: Path | str) -> Path:
    """A ComfyUI-style ``models/`` tree with every tiny checkpoint the templates need."""
    models_root = Path(models_root)
    build_consisid_folder(models_root / "consisid" / "ConsisID-preview")
    build_wan_models(models_root)
    from .tiny_concatid_cog import build_concatid_cog_models

    build_concatid_cog_models(models_root)
    return models_root


def build_wan_models(models_root: Path | str) -> Path:
    """Wan2.1 base (diffusers folder + ComfyUI single files), Concat-ID-Wan, Phantom-Wan (1.3B file and the fp8 file
    the 14B templates name), a lightx2v-layout distillation LoRA and a face-parsing folder."""
    from .tiny_wan import (write_comfy_files, write_concatid_files, write_diffusers_folder,
                           write_face_parsing_folder, write_phantom_file)

    models_root = Path(models_root)
    write_diffusers_folder(models_root / "wan" / "Wan2.1-T2V-1.3B-Diffusers")
    write_comfy_files(models_root)
    write_concatid_files(models_root / "concatid")
    write_phantom_file(models_root / "diffusion_models")
    from .tiny_lora import write_distill_lora, write_phantom14b_fp8_file

    write_phantom14b_fp8_file(models_root / "diffusion_models")
    write_distill_lora(models_root / "loras")
    write_face_parsing_folder(models_root / "concatid" / "face-parsing")
    return models_root
