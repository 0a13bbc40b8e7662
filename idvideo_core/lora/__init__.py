"""LoRAs for every backbone with published LoRAs (Wan: Concat-ID-Wan / Phantom-Wan; CogVideoX / ConsisID).

``with_lora(model, "file.safetensors", 0.8)`` returns a new IDV_MODEL that shares the weights and carries the LoRA in
its chain (``model.options['loras']``); nothing is merged yet. Right before sampling, :func:`sync` makes the
transformer's merged LoRAs equal that chain (restoring the base weights first when they differ), so two branches of a
workflow, one with and one without the LoRA, each sample with their own weights.

Each family's spec says how its LoRAs are read (``BackboneSpec.lora``, a :class:`LoraSupport`: the diffusers loader
mixin whose converters apply, where the diffusers model sits in the pack's transformer, the original checkpoint names).

* :mod:`.formats` — key formats → per-layer patches (diffusers' converters where they exist; what is written here
  and why is listed there).
* :mod:`.patch` — merged in place with the originals kept: removal is exact; fp8 layers patched one at a time.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from .formats import ConvertedLora, LayerPatch, LoraSupport, convert_lora, read_metadata
from .patch import LoraSpec, applied, apply, restore, sync

log = logging.getLogger("idvideo")

__all__ = [
    "ConvertedLora",
    "LayerPatch",
    "LoraSpec",
    "LoraSupport",
    "applied",
    "apply",
    "convert_lora",
    "list_loras",
    "load_lora_file",
    "restore",
    "sync",
    "unload",
    "with_lora",
    "with_lora_file",
]

LORA_EXTS = (".safetensors",)
PUBLISHED = ("the LoRA's own page (e.g. huggingface.co/lightx2v/Wan2.1-Distill-Loras for the 4-step "
             "distillation LoRA, or huggingface.co/Kijai/WanVideo_comfy)")


def list_loras() -> list[str]:
    from .. import paths

    return paths.list_files(("loras",), LORA_EXTS)


def load_lora_file(path, transformer, name: str | None = None, support: LoraSupport | None = None) -> ConvertedLora:
    """Read a LoRA file (safetensors only: LoRAs are not loaded from pickles) and convert it for ``transformer`` as
    the family's ``support`` says (``BackboneSpec.lora``; None: ``transformer`` is the diffusers model itself and
    only its own layer names are read)."""
    from ..errors import InputError
    from ..safeload import load_safetensors

    path = Path(path)
    if path.suffix != ".safetensors":
        raise InputError(f"{path.name} is not a .safetensors file; IDVideo loads LoRAs from safetensors only.",
                         "Use the .safetensors release of this LoRA.")
    sd = load_safetensors(path, published=PUBLISHED)
    meta = read_metadata(path)
    peft_config = path.with_name("adapter_config.json")      # a PEFT adapter folder keeps its alpha here
    if meta is None and path.name == "adapter_model.safetensors" and peft_config.is_file():
        from ..safeload import read_json

        meta = read_json(peft_config)
    root = support.root(transformer) if support is not None else transformer
    return convert_lora(sd, root, name or path.name, meta, support)


def with_lora(model, lora_name: str, strength: float = 1.0):
    """A copy of ``model`` (same weights) with ``lora_name`` (a file under ComfyUI's ``loras`` folders) appended to
    its LoRA chain. Returns (model, report). Unknown keys are listed in the report and the log."""
    from .. import paths

    path = paths.resolve_file(("loras",), lora_name, f"the LoRA '{lora_name}'", PUBLISHED)
    return with_lora_file(model, path, strength, lora_name)


def with_lora_file(model, path, strength: float = 1.0, name: str | None = None):
    """:func:`with_lora` for a file path (the CLI's ``--lora``)."""
    from ..backbones import registry
    from ..errors import InputError, WrongModelError

    spec = registry.spec_of(model)
    if spec.lora is None:
        raise InputError(f"{spec.label} has no LoRA support in IDVideo (no LoRAs are published for it).",
                         "Remove the LoRA loader from this model's chain.")
    lora_name = name or Path(path).name
    conv = load_lora_file(path, model.transformer, lora_name, spec.lora)
    if not conv.patches:
        raise WrongModelError(f"None of the {len(conv.unknown)} keys of {lora_name} names a layer of this "
                              f"{model.family} model (first: {', '.join(conv.unknown[:3])}).",
                              "Pick a LoRA made for this model family.")
    report = conv.summary()
    (log.warning if conv.unknown else log.info)("IDVideo: %s", report)
    chain = list(model.options.get("loras", ())) + [LoraSpec(lora_name, float(strength), conv)]
    options = dict(model.options)
    options["loras"] = tuple(chain)
    out = dataclasses.replace(model, options=options)
    return out, f"{report}; strength {strength:g}"


def unload(model):
    """The base weights back (bit for bit) and a copy of ``model`` with an empty LoRA chain."""
    restore(model.transformer)
    options = dict(model.options)
    options["loras"] = ()
    return dataclasses.replace(model, options=options)
