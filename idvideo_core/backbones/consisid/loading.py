"""Load a ConsisID model from the diffusers folder layout of ``BestWishYsh/ConsisID-preview``."""
from __future__ import annotations

import logging
from pathlib import Path

from ... import bridge, paths
from ...dtypes import resolve_dtype
from ...errors import CorruptFileError, InputError, MissingModelError, WrongModelError
from ...safeload import check_model_folder_files, read_json
from ..base import LoadedModel
from ..detect import family_from_class_name, family_of_path

log = logging.getLogger("idvideo")
PUBLISHED = paths.PUBLISHED["consisid"]
COMPONENTS = ("transformer", "vae", "scheduler")


def resolve_consisid_folder(name_or_path: str | Path) -> Path:
    p = Path(str(name_or_path)).expanduser()
    if p.is_file():
        fam = family_of_path(p)
        if fam == "wan":
            raise WrongModelError(f"{p.name} is a Wan2.1 checkpoint (detected from its keys), not ConsisID.",
                                  "Load it with 'IDVideo Wan Model Loader' instead.")
        raise InputError(f"{p.name} is a single file; ConsisID loads from the diffusers folder layout.",
                         f"Put the whole ConsisID-preview folder ({PUBLISHED}) under models/consisid/ and pick it.")
    # A relative name is looked up in the model folders; a relative folder next to the working directory is used only
    # when it does not climb out with '..' (a combo value must never reach outside ComfyUI's folders).
    folder = p if p.is_absolute() or (p.is_dir() and ".." not in p.parts) else None
    if folder is None:
        folder = paths.resolve_model_folder("consisid", str(name_or_path), published=PUBLISHED)
    missing = [c for c in COMPONENTS if not (folder / c).is_dir()]
    if missing:
        raise MissingModelError(f"the ConsisID component folder(s) {', '.join(missing)}",
                                [folder / c for c in missing], PUBLISHED,
                                "The folder must hold transformer/, vae/, text_encoder/, tokenizer/ and scheduler/.")
    cfg_path = folder / "transformer" / "config.json"
    if not cfg_path.is_file():
        raise MissingModelError("transformer/config.json", [cfg_path], PUBLISHED)
    cls = read_json(cfg_path).get("_class_name", "")
    fam = family_from_class_name(cls)
    if fam != "consisid":
        hint = ("Load it with 'IDVideo Wan Model Loader' instead." if fam == "wan"
                else "Pick the ConsisID-preview folder.")
        raise WrongModelError(f"{folder} holds a {cls or 'unknown'} transformer, not ConsisID.", hint)
    return folder


def load_consisid(name_or_path: str | Path, precision: str = "auto", device=None,
                  load_text_encoder: bool = True) -> LoadedModel:
    """Load transformer, VAE, scheduler config (and T5 + tokenizer) from a ConsisID diffusers folder."""
    from diffusers import AutoencoderKLCogVideoX, ConsisIDTransformer3DModel

    folder = resolve_consisid_folder(name_or_path)
    device = device or bridge.torch_device()
    dtype = resolve_dtype(precision, device)
    for comp in ("transformer", "vae") + (("text_encoder",) if load_text_encoder else ()):
        if (folder / comp).is_dir():
            check_model_folder_files(folder / comp, PUBLISHED)
    try:
        transformer = ConsisIDTransformer3DModel.from_pretrained(str(folder / "transformer"), torch_dtype=dtype)
        vae = AutoencoderKLCogVideoX.from_pretrained(str(folder / "vae"), torch_dtype=dtype)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise CorruptFileError(folder, f"loading failed: {exc}", PUBLISHED) from exc
    transformer.eval().requires_grad_(False)
    vae.eval().requires_grad_(False)
    sched = read_json(folder / "scheduler" / "scheduler_config.json")
    text_encoder = tokenizer = None
    if load_text_encoder:
        from ...text import load_t5

        text_encoder, tokenizer = load_t5(folder / "text_encoder", folder / "tokenizer", dtype)
    return LoadedModel(family="consisid", transformer=transformer, vae=vae, scheduler_config=sched,
                       text_encoder=text_encoder, tokenizer=tokenizer, dtype=dtype, device=device, source=folder)
