"""One call that assembles a Wan model (DiT + VAE + UMT5) from whichever layout the user has.

``base`` is a diffusers folder (any component missing from the explicit file arguments comes from it); ``dit``,
``vae`` and ``text_encoder`` are single files (ComfyUI layout, Concat-ID ``.pt``, Phantom ``.pth``) or folders.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from ... import bridge, paths
from ...dtypes import resolve_dtype
from ...errors import InputError, MissingModelError, WrongModelError
from ...safeload import read_json
from ..base import LoadedModel
from .loading import load_dit, load_text_encoder, load_vae

log = logging.getLogger("idvideo")
FAMILIES = ("wan", "concatid_wan", "phantom_wan")


def _pick(explicit, base: Optional[Path], sub: str, what: str) -> Path:
    if explicit:
        return Path(explicit)
    if base is not None:
        return base / sub
    raise MissingModelError(what, [], paths.PUBLISHED["wan"],
                            "Give the Wan2.1-T2V-1.3B-Diffusers folder or the ComfyUI single file.")


def check_dit_fits_family(family: str, has_adaln: bool) -> None:
    """Concat-ID's AdaLN extras only make sense in the Concat-ID family."""
    if has_adaln and family != "concatid_wan":
        raise WrongModelError("This DiT carries Concat-ID AdaLN weights (time_projection_ref / modulation_ref).",
                              "Load it as Concat-ID-Wan.")


def load_wan_model(family: str = "concatid_wan", base: Optional[str | Path] = None, dit: Optional[str | Path] = None,
                   vae: Optional[str | Path] = None, text_encoder: Optional[str | Path] = None,
                   tokenizer: Optional[str | Path] = None, precision: str = "auto", device=None,
                   load_text_encoder_too: bool = True) -> LoadedModel:
    if family not in FAMILIES:
        raise InputError(f"Unknown Wan family '{family}'.", f"Choose one of: {', '.join(FAMILIES)}.")
    device = device or bridge.torch_device()
    dtype = resolve_dtype(precision, device)
    base_p = Path(base) if base else None
    if base_p is not None and not base_p.is_dir():
        raise MissingModelError("the Wan2.1 diffusers folder", [base_p], paths.PUBLISHED["wan"])

    transformer = load_dit(_pick(dit, base_p, "transformer", "the Wan DiT"), dtype)
    check_dit_fits_family(family, transformer.adaln is not None)
    vae_m = load_vae(_pick(vae, base_p, "vae", "the Wan VAE"), dtype)
    te = tok = None
    if load_text_encoder_too:
        te_src = _pick(text_encoder, base_p, "", "the UMT5 text encoder")
        tok_dir = Path(tokenizer) if tokenizer else (base_p / "tokenizer" if base_p else None)
        te, tok = load_text_encoder(te_src, dtype, tok_dir)
        te.to(device)
    sched_cfg = {}
    if base_p is not None and (base_p / "scheduler" / "scheduler_config.json").is_file():
        sched_cfg = read_json(base_p / "scheduler" / "scheduler_config.json")
    transformer.to(device)
    vae_m.to(device)
    return LoadedModel(family=family, transformer=transformer, vae=vae_m, scheduler_config=sched_cfg,
                       text_encoder=te, tokenizer=tok, dtype=dtype, device=device,
                       source=Path(dit) if dit else base_p,
                       options={"adaln": transformer.adaln is not None})
