"""Moving a module's weights between the offload device and the compute device, cheaply.

During inference weights are read-only, so a module that is streamed in and out keeps one *home* copy of every
weight on the offload device (optionally in pinned RAM, which lets the copy to the GPU run asynchronously). Loading
copies home -> device; unloading simply points the module back at its home copy, with no device -> host copy at all.

Tensors are swapped by replacing the entries of ``module._parameters`` / ``module._buffers`` rather than assigning
``param.data``: that works between any two devices (including ``meta``, which the tests use as a stand-in compute
device: a weight left behind on the CPU makes a meta computation fail loudly).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn


def module_bytes(module: nn.Module) -> int:
    """Bytes of a module's parameters and buffers (each tensor counted once)."""
    seen: set[int] = set()
    total = 0
    for t in list(module.parameters()) + list(module.buffers()):
        if id(t) in seen:
            continue
        seen.add(id(t))
        total += t.numel() * t.element_size()
    return total


def module_device(module: nn.Module) -> torch.device | None:
    """The device of the module's first weight (None for a module without weights)."""
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return None


def devices_of(module: nn.Module) -> set[str]:
    """Every device a module's weights are on, as strings (``{"cpu"}``, ``{"cuda:0"}``, ...)."""
    return {str(t.device) for t in list(module.parameters()) + list(module.buffers())}


@dataclass
class _Slot:
    owner: nn.Module
    name: str
    is_param: bool
    home: torch.Tensor


def _walk(module: nn.Module, skip: set[int]) -> Iterator[nn.Module]:
    """Modules under ``module`` (itself included), each once, not entering those in ``skip``."""
    if id(module) in skip:
        return
    skip.add(id(module))
    yield module
    for child in module.children():
        yield from _walk(child, skip)


def _slots(module: nn.Module, recurse: bool, exclude: tuple[nn.Module, ...] = ()
           ) -> Iterator[tuple[nn.Module, str, bool, torch.Tensor]]:
    mods = _walk(module, {id(m) for m in exclude}) if recurse else [module]
    for m in mods:
        for name, p in m._parameters.items():
            if p is not None:
                yield m, name, True, p
        for name, b in m._buffers.items():
            if b is not None:
                yield m, name, False, b


def _put(slot: _Slot, tensor: torch.Tensor) -> None:
    if slot.is_param:
        slot.owner._parameters[slot.name] = nn.Parameter(tensor, requires_grad=False)
    else:
        slot.owner._buffers[slot.name] = tensor


class ParkedWeights:
    """The weights of one module (recursively, or only its own with ``recurse=False``), parked at home.

    ``exclude`` lists submodules left alone (block swap parks a transformer's swapped blocks separately).

    ``load(device)`` puts copies on ``device``; ``unload()`` points back at the home copies. Weights changed while
    loaded (a LoRA merged mid-run) are not written back: apply such changes before parking.
    """

    def __init__(self, module: nn.Module, offload_device: torch.device | str, pin_memory: bool = False,
                 recurse: bool = True, exclude: tuple[nn.Module, ...] = ()):
        self.module = module
        self.offload_device = torch.device(offload_device)
        self.slots: list[_Slot] = []
        self.loaded_on: torch.device | None = None
        homes: dict[int, torch.Tensor] = {}   # tied weights share one home copy
        with torch.no_grad():
            for owner, name, is_param, t in list(_slots(module, recurse, exclude)):
                key = id(t)
                if key not in homes:
                    home = t.detach().to(self.offload_device)
                    if pin_memory and home.device.type == "cpu" and torch.cuda.is_available():
                        home = home.pin_memory()
                    homes[key] = home
                slot = _Slot(owner, name, is_param, homes[key])
                _put(slot, slot.home)
                self.slots.append(slot)
        self.nbytes = sum(h.numel() * h.element_size() for h in homes.values())

    def load(self, device: torch.device | str, non_blocking: bool = False) -> None:
        """Copy every weight to ``device`` (on the current CUDA stream: callers pick the stream)."""
        device = torch.device(device)
        copies: dict[int, torch.Tensor] = {}
        with torch.no_grad():
            for slot in self.slots:
                key = id(slot.home)
                if key not in copies:
                    copies[key] = slot.home.to(device, non_blocking=non_blocking)
                _put(slot, copies[key])
        self.loaded_on = device

    def record_stream(self, stream) -> None:
        """Tell CUDA's caching allocator the loaded copies are used on ``stream`` (needed after a side-stream load)."""
        for slot in self.slots:
            t = slot.owner._parameters[slot.name] if slot.is_param else slot.owner._buffers[slot.name]
            if t is not None and t.device.type == "cuda":
                t.record_stream(stream)

    def unload(self) -> None:
        for slot in self.slots:
            _put(slot, slot.home)
        self.loaded_on = None


def move_module(module: nn.Module, device: torch.device | str, non_blocking: bool = False) -> nn.Module:
    """``module.to(device)`` that also works for meta targets (the tests' stand-in GPU)."""
    device = torch.device(device)
    if device.type != "meta":
        return module.to(device, non_blocking=non_blocking)
    with torch.no_grad():
        for owner, name, is_param, t in list(_slots(module, True)):
            _put(_Slot(owner, name, is_param, t), t.detach().to(device))
    return module
