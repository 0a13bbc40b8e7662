"""One call that assembles a Wan model (DiT + VAE + UMT5) from whichever layout the user has.

``base`` is a diffusers folder (any component missing from the explicit file arguments comes from it); ``dit``,
``vae`` and ``text_encoder`` are single files (ComfyUI layout, Concat-ID ``.pt``, Phantom ``.pth``), sharded
checkpoints (Phantom-Wan-14B: ``Phantom_Wan_14B.safetensors.index.json`` + ``Phantom_Wan_14B-0000N-of-00006``) or
folders. Phantom-Wan-14B uses the same UMT5-XXL and Wan2.1 VAE files as the 1.3B models (the official README runs
it with ``--ckpt_dir ./Wan2.1-T2V-1.3B``).

Phantom's defaults (1.3B and 14B, cited) live in its plug-in: ``backbones/phantom_wan/defaults.py``.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import torch

from ... import bridge, paths
from ...dtypes import resolve_dtype
from ...errors import InputError, MissingModelError, WrongModelError
from ...safeload import read_json
from ..base import LoadedModel
from .loading import (DitLoadReport, dit_sizes, load_dit, load_text_encoder, load_vae, read_dit_header,
                      streamable)

log = logging.getLogger("idvideo")
FAMILIES = ("wan", "concatid_wan", "phantom_wan")


def _pick(explicit, base: Optional[Path], sub: str, what: str) -> Path:
    if explicit:
        return Path(explicit)
    if base is not None:
        return base / sub
    raise MissingModelError(what, [], paths.PUBLISHED["wan"],
                            "Give the Wan2.1-T2V-1.3B-Diffusers folder or the ComfyUI single file.")


def load_wan_model(family: str = "concatid_wan", base: Optional[str | Path] = None, dit: Optional[str | Path] = None,
                   vae: Optional[str | Path] = None, text_encoder: Optional[str | Path] = None,
                   tokenizer: Optional[str | Path] = None, precision: str = "auto", device=None,
                   load_text_encoder_too: bool = True, weight_storage: str = "default", memory_mode: str = "auto",
                   free_bytes: Optional[int] = None, vram_state: Optional[str] = None,
                   references: Optional[int] = None, plan_device=None) -> LoadedModel:
    """``weight_storage``: ``default`` (the compute dtype; fp8 files are dequantised tensor by tensor), ``fp8_e4m3``
    (block Linear weights kept / stored in fp8) or ``auto`` (decided with the memory plan before a weight is read:
    :func:`~idvideo_core.memory.storage.plan_storage`; ``free_bytes`` / ``vram_state`` default to what ComfyUI
    reports, tests pass them; ``plan_device`` plans for another device than the one loaded to, e.g. a simulated
    card). The plan is logged and kept in ``options["storage_plan"]``."""
    from .loading import WEIGHT_STORAGES

    if family not in FAMILIES:
        raise InputError(f"Unknown Wan family '{family}'.", f"Choose one of: {', '.join(FAMILIES)}.")
    if weight_storage not in WEIGHT_STORAGES:
        raise InputError(f"Unknown weight storage '{weight_storage}'.", f"Choose one of: {', '.join(WEIGHT_STORAGES)}.")
    device = device or bridge.torch_device()
    dtype = resolve_dtype(precision, device)
    base_p = Path(base) if base else None
    if base_p is not None and not base_p.is_dir():
        raise MissingModelError("the Wan2.1 diffusers folder", [base_p], paths.PUBLISHED["wan"])

    dit_src = _pick(dit, base_p, "transformer", "the Wan DiT")
    vae_m = load_vae(_pick(vae, base_p, "vae", "the Wan VAE"), dtype)
    te = tok = None
    if load_text_encoder_too:
        te_src = _pick(text_encoder, base_p, "", "the UMT5 text encoder")
        tok_dir = Path(tokenizer) if tokenizer else (base_p / "tokenizer" if base_p else None)
        te, tok = load_text_encoder(te_src, dtype, tok_dir)
    options: dict = {}
    storage, splan = weight_storage, None
    streamed = streamable(dit_src) is not None           # else a diffusers folder read with from_pretrained
    if weight_storage == "auto" and streamed:
        splan = plan_wan_storage(dit_src, family, dtype, plan_device or device, vae_m, te, free_bytes=free_bytes,
                                 vram_state=vram_state, references=references, mode=memory_mode)
        storage = splan.storage
        options.update(storage_plan=splan, batch_branches=splan.batch_branches)
        if te is not None and splan.text_encoder_storage == "fp8_e4m3":
            from ...memory.fp8 import quantize_module_fp8

            log.info("IDVideo: text encoder %s", quantize_module_fp8(te, skip=("norm", "embed", "shared",
                                                                              "relative_attention")).summary())
    elif weight_storage == "auto":
        storage = "default"
    report = DitLoadReport(str(dit_src))
    transformer = load_dit(dit_src, dtype, storage if streamed else "default", report=report)
    if storage == "fp8_e4m3" and not streamed:                      # read whole by from_pretrained: quantise now
        from ...memory.fp8 import quantize_module_fp8

        log.info("IDVideo: %s", quantize_module_fp8(transformer).summary())
    if splan is not None:
        report.plan = splan.describe()
    if transformer.adaln is not None and family != "concatid_wan":
        raise WrongModelError("This DiT carries Concat-ID AdaLN weights (time_projection_ref / modulation_ref).",
                              "Load it as Concat-ID-Wan.")
    from .. import registry

    options["planned_clip"] = registry.get(family).planning_clip(transformer)   # Phantom-14B: its own defaults
    if not options.get("batch_branches", True):
        transformer.batch_branches = False                            # read by memory/estimate.py and the sampler
    options["load_report"] = report
    options["weight_storage"] = storage
    if streamed:
        log.info("%s", report.describe())
    if te is not None:
        te.to(device)
    sched_cfg = {}
    if base_p is not None and (base_p / "scheduler" / "scheduler_config.json").is_file():
        sched_cfg = read_json(base_p / "scheduler" / "scheduler_config.json")
    transformer.to(device)
    vae_m.to(device)
    return LoadedModel(family=family, transformer=transformer, vae=vae_m, scheduler_config=sched_cfg,
                       text_encoder=te, tokenizer=tok, dtype=dtype, device=device,
                       source=Path(dit) if dit else base_p,
                       options={"adaln": transformer.adaln is not None, **options})


def _module_bytes(m) -> int:
    return sum(t.numel() * t.element_size() for t in list(m.parameters()) + list(m.buffers())) if m is not None else 0


def _fp8_bytes(m) -> int:
    """Bytes of ``m`` once its Linear weights (other than norms/embeddings) are stored in fp8 (+ per-row scales)."""
    from ...memory.fp8 import keeps_fp8

    total = _module_bytes(m)
    for name, mod in m.named_modules():
        if isinstance(mod, torch.nn.Linear) and keeps_fp8(name):
            w = mod.weight
            total -= w.numel() * w.element_size() - w.numel() - 4 * w.shape[0]
    return total


def plan_wan_storage(dit_path, family: str, dtype, device, vae=None, text_encoder=None, *, free_bytes=None,
                     vram_state=None, references: Optional[int] = None, mode: str = "auto", clip=None):
    """The storage + memory plan of a Wan DiT file read from its headers only (see memory/storage.py)."""
    from types import SimpleNamespace

    from ...memory.storage import plan_storage
    from .. import registry

    _, shapes, cfg = read_dit_header(streamable(dit_path))
    sizes = {s: dit_sizes(shapes, s, dtype) for s in ("default", "fp8_e4m3")}
    other = _module_bytes(vae) + _module_bytes(text_encoder)
    for s in sizes.values():
        s.other = other
    el = torch.empty((), dtype=dtype).element_size()
    spec = registry.get(family)
    if clip is None:                  # the family's planning clip for this config (Phantom-14B: 832×480×121)
        clip = spec.planning_clip(SimpleNamespace(config=SimpleNamespace(**cfg)))

    def working(batched: bool) -> int:
        stub = SimpleNamespace(config=SimpleNamespace(**cfg), batch_branches=batched)   # the spec reads .config
        return spec.workload(stub, el, *clip, references).activation_bytes

    branches = spec.workload(SimpleNamespace(config=SimpleNamespace(**cfg)), el, *clip, references).batch
    te = None
    if text_encoder is not None:
        te = {"default": _module_bytes(text_encoder), "fp8_e4m3": _fp8_bytes(text_encoder)}
    return plan_storage(sizes, working, "auto", device, branches=branches, free_bytes=free_bytes,
                        vram_state=vram_state, mode=mode, text_encoder=te)
