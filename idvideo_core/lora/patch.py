"""LoRAs applied as a removable patch: merged into the weights in place, originals kept, restored bit for bit.

Why merged and in place: a merged weight costs nothing per step (the point of a 4-step distillation LoRA), and
block swap, sequential offload and model offload keep working unchanged, because they move whatever tensor the
layer holds. The patch is applied while the transformer is *at rest* (before sampling, outside the memory manager's
``use``), when every layer holds its one persistent copy (the parked home copy for swapped/offloaded parts), and it
writes into that tensor with ``copy_``, never replacing it, so the memory manager's references stay valid.

Exactness: before a tensor is first patched its original is copied to the offload device; the patched value is
always computed from that copy (``(orig.float() + Σ strength·delta).to(dtype)``), never from the previous patched
value, so switching LoRAs does not accumulate rounding, and removing them copies the originals back (``torch.equal``
to the base weights). Only patched tensors are copied (ComfyUI keeps the same backup); the cost is their size in
RAM (every linear layer of a 14B model: about 13 GB in fp8, 26 GB in bf16).

fp8 layers (:class:`~idvideo_core.memory.fp8.Fp8Linear`): one layer at a time is dequantised, the delta added, and
the sum quantised again into the layer's own fp8 weight and scale buffers; the original fp8 bytes and scale are
what is backed up (one byte per weight). The whole model is never dequantised.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import WrongModelError
from .formats import ConvertedLora

log = logging.getLogger("idvideo")
_STATE = "_idv_lora_state"
_FP8 = tuple(getattr(torch, n) for n in ("float8_e4m3fn", "float8_e5m2") if hasattr(torch, n))


@dataclass(frozen=True)
class LoraSpec:
    """One LoRA in a model's chain: the converted file and its strength."""

    name: str
    strength: float
    lora: ConvertedLora = field(compare=False, hash=False)


@dataclass
class _State:
    applied: tuple = ()
    backups: dict = field(default_factory=dict)     # param key (relative to the root) → original (fp8: (q, scale))
    root_path: str = ""                             # the patched diffusers model inside the transformer


def _state(transformer: nn.Module) -> _State:
    st = transformer.__dict__.get(_STATE)
    if st is None:
        st = _State()
        transformer.__dict__[_STATE] = st
    return st


def _root(transformer: nn.Module, path: str) -> nn.Module:
    return transformer.get_submodule(path) if path else transformer


def _is_fp8(module: nn.Module) -> bool:
    w = getattr(module, "weight", None)
    return isinstance(w, torch.Tensor) and w.dtype in _FP8 and hasattr(module, "weight_scale")


def _get(root: nn.Module, key: str) -> torch.Tensor:
    mod_name, _, par = key.rpartition(".")
    mod = root.get_submodule(mod_name) if mod_name else root
    t = mod._parameters.get(par)
    return t if t is not None else mod._buffers[par]


def applied(transformer: nn.Module) -> tuple:
    """(name, strength) of the LoRAs merged into ``transformer`` right now."""
    return tuple((n, s) for n, _, s in _state(transformer).applied)


@torch.no_grad()
def restore(transformer: nn.Module) -> int:
    """Copy every patched tensor's original back; returns how many tensors were restored."""
    st = _state(transformer)
    root = _root(transformer, st.root_path)
    n = 0
    for key, orig in st.backups.items():
        mod_name, _, par = key.rpartition(".")
        mod = root.get_submodule(mod_name) if mod_name else root
        if isinstance(orig, tuple) != (par == "weight" and _is_fp8(mod)):
            log.warning("IDVideo: %s changed storage since the LoRA was applied; not restored.", key)
            continue
        if isinstance(orig, tuple):
            mod.weight.copy_(orig[0].to(mod.weight.device))
            mod.weight_scale.copy_(orig[1].to(mod.weight_scale.device))
        else:
            t = _get(root, key)
            if t.shape != orig.shape or t.dtype != orig.dtype:
                log.warning("IDVideo: %s changed storage since the LoRA was applied; not restored.", key)
                continue
            t.copy_(orig.to(t.device))
        n += 1
    st.backups.clear()
    st.applied = ()
    return n


def _lowrank(down: torch.Tensor, up: torch.Tensor, shape, device) -> torch.Tensor:
    d = down.to(device, torch.float32).flatten(1)
    u = up.to(device, torch.float32).flatten(1)
    return (u @ d).reshape(shape)


def _plan(root: nn.Module, specs: Sequence[LoraSpec]):
    """{param key: [(kind, payload, factor)]} for every tensor the chain touches, after checking every shape."""
    plan: dict[str, list] = {}
    bad: list[str] = []
    modules = dict(root.named_modules())
    for spec in specs:
        for name, p in spec.lora.patches.items():
            mod = modules.get(name)
            if mod is None:
                bad.append(f"{spec.name}: {name} (no such layer)")
                continue
            if p.down is not None:
                w = getattr(mod, "weight", None)
                out_f, in_f = p.up.shape[0], p.down[0].numel()
                if w is None or w.shape[0] != out_f or w[0].numel() != in_f or p.up.flatten(1).shape[1] != p.down.shape[0]:
                    bad.append(f"{spec.name}: {name} (LoRA {out_f}×{in_f}, layer "
                               f"{tuple(w.shape) if w is not None else 'without weight'})")
                    continue
                plan.setdefault(f"{name}.weight" if name else "weight", []).append(
                    ("lowrank", (p.down, p.up), spec.strength * p.scale))
            for par, delta in p.deltas.items():
                key = f"{name}.{par}" if name else par
                try:
                    t = _get(root, key)
                except (AttributeError, KeyError):
                    bad.append(f"{spec.name}: {key} (no such parameter)")
                    continue
                if t.numel() != delta.numel():
                    bad.append(f"{spec.name}: {key} (delta {tuple(delta.shape)}, parameter {tuple(t.shape)})")
                    continue
                plan.setdefault(key, []).append(("full", delta, spec.strength))
    if bad:
        raise WrongModelError("The LoRA does not fit this model (it was made for another model or size): "
                              + "; ".join(bad[:8]) + (f"; and {len(bad) - 8} more" if len(bad) > 8 else ""),
                              "Pick a LoRA trained for this model (e.g. a Wan2.1-14B LoRA needs a 14B model).")
    return plan


@torch.no_grad()
def apply(transformer: nn.Module, specs: Sequence[LoraSpec], offload_device="cpu") -> str:
    """Make the merged LoRAs of ``transformer`` equal ``specs`` (restoring first when they differ).

    Strength-0 entries are skipped (the weights stay the originals, bit for bit). Returns a one-line summary.
    """
    st = _state(transformer)
    active = [s for s in specs if float(s.strength) != 0.0]
    key = tuple((s.name, id(s.lora), float(s.strength)) for s in active)
    if key == st.applied:
        return _summary(active, 0, unchanged=True)
    paths = {s.lora.root_path for s in active}
    if len(paths) > 1:
        raise WrongModelError(f"These LoRAs were read for different models ({', '.join(sorted(paths))}).",
                              "Load every LoRA of a chain for the same model.")
    root_path = paths.pop() if paths else ""
    root = _root(transformer, root_path)
    plan = _plan(root, active)          # raises before anything is touched
    restore(transformer)
    st.root_path = root_path
    offload = torch.device(offload_device)
    modules = dict(root.named_modules())
    for pkey, items in plan.items():
        mod_name, _, par = pkey.rpartition(".")
        mod = modules[mod_name]
        if par == "weight" and _is_fp8(mod):
            q, scale = mod.weight, mod.weight_scale
            st.backups[pkey] = (q.detach().to(offload, copy=True), scale.detach().to(offload, copy=True))
            from ..memory.fp8 import dequantize_fp8, quantize_fp8

            w = dequantize_fp8(q, scale, torch.float32)
            w += _delta(items, w.shape, w.device)
            nq, ns = quantize_fp8(w, per_row=bool(getattr(mod, "per_row", scale.dim() > 0)))
            q.copy_(nq)
            scale.copy_(ns.reshape(scale.shape))
            continue
        t = _get(root, pkey)
        st.backups[pkey] = t.detach().to(offload, copy=True)
        new = t.float() + _delta(items, t.shape, t.device)
        t.copy_(new.to(t.dtype))
    st.applied = key
    return _summary(active, len(plan))


def _delta(items, shape, device) -> torch.Tensor:
    total = torch.zeros(shape, dtype=torch.float32, device=device)
    for kind, payload, factor in items:
        if kind == "lowrank":
            total += factor * _lowrank(payload[0], payload[1], shape, device)
        else:
            total += factor * payload.to(device, torch.float32).reshape(shape)
    return total


def _summary(active, n_tensors: int, unchanged: bool = False) -> str:
    if not active:
        return "no LoRA (base weights)"
    names = ", ".join(f"{s.name} ×{s.strength:g}" for s in active)
    return f"LoRA {names}: " + ("already applied" if unchanged else f"{n_tensors} tensors patched")


def sync(model, specs: Sequence[LoraSpec] | None = None) -> str | None:
    """Bring ``model.transformer``'s weights to the model's LoRA chain (``model.options['loras']``); call it while
    the transformer is at rest, before sampling."""
    from .. import bridge

    specs = list(model.options.get("loras", ())) if specs is None else list(specs)
    st = _state(model.transformer)
    if not specs and not st.backups:
        return None
    msg = apply(model.transformer, specs, bridge.offload_device())
    log.info("IDVideo: %s", msg)
    return msg
