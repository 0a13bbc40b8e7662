"""Sequential offload: every module's own weights are moved in just before it runs and parked right after.

The least device memory of all modes (one layer's weights at a time, plus the activations) and the slowest, since
every weight crosses the bus on every call. Our own hooks rather than accelerate's ``cpu_offload``: they share the
parking logic of block swap (no device->host copies), work with :class:`~.fp8.Fp8Linear`, and need no extra
dependency. ComfyUI's ``--novram`` maps to this mode.
"""
from __future__ import annotations

import torch
from torch import nn

from .moves import ParkedWeights


class SequentialOffload:
    """Install with ``SequentialOffload(model, device, "cpu")``; ``remove()`` takes the hooks off again.

    A module that owns weights directly gets them loaded in its forward pre-hook and parked in its forward hook.
    A parent's own weights (a positional table, a scale) stay loaded while its children run, which is what the
    parent's forward needs. Weights read outside any ``forward`` call are not covered: keep such modules resident
    by listing them in ``keep_resident`` (they are moved to ``device`` once).
    """

    def __init__(self, model: nn.Module, device, offload_device="cpu", keep_resident: tuple[nn.Module, ...] = (),
                 trace: bool = False):
        self.device = torch.device(device)
        self.offload_device = torch.device(offload_device)
        self.trace = trace
        self.events: list[tuple[str, str]] = []
        self._hooks: list = []
        self.parked: dict[str, ParkedWeights] = {}
        self.resident: list[ParkedWeights] = []
        resident_ids = {id(m) for r in keep_resident for m in r.modules()}
        for name, mod in model.named_modules():
            has_own = any(p is not None for p in mod._parameters.values()) or \
                any(b is not None for b in mod._buffers.values())
            if not has_own:
                continue
            parked = ParkedWeights(mod, self.offload_device, recurse=False)
            if id(mod) in resident_ids:
                parked.load(self.device)
                self.resident.append(parked)
                continue
            self.parked[name] = parked
            self._hooks.append(mod.register_forward_pre_hook(lambda _m, _a, n=name: self._load(n)))
            self._hooks.append(mod.register_forward_hook(lambda _m, _a, _o, n=name: self._unload(n)))

    def _load(self, name: str) -> None:
        parked = self.parked[name]
        if parked.loaded_on is None:
            parked.load(self.device)
            if self.trace:
                self.events.append(("load", name))

    def _unload(self, name: str) -> None:
        self.parked[name].unload()
        if self.trace:
            self.events.append(("release", name))

    def remove(self) -> None:
        """Take the hooks off; every weight is left parked on the offload device."""
        for h in self._hooks:
            h.remove()
        self._hooks.clear()
        for p in list(self.parked.values()) + self.resident:
            p.unload()

    def summary(self) -> str:
        total = sum(p.nbytes for p in self.parked.values())
        largest = max((p.nbytes for p in self.parked.values()), default=0)
        return (f"Sequential offload: {len(self.parked)} layers ({total / 2**20:.1f} MiB) streamed from "
                f"{self.offload_device} to {self.device}; largest layer {largest / 2**20:.1f} MiB")
