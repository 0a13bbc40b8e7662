"""The model manager: owns a generation's parts and keeps each on the device only while it is used.

    mgr = ModelManager(plan)
    mgr.add("text_encoder", t5)
    mgr.add("transformer", dit, blocks="transformer_blocks")
    mgr.add("vae", vae)
    mgr.add("eva", eva_clip, kind="face")
    with mgr.use("text_encoder") as te: ...      # moved in, moved out again on exit (model offload)
    with mgr.use("transformer") as dit: ...      # non-block parts in; the last N blocks streamed (block swap)

How each mode places a part while it is used / between uses:
  gpu            on the device / on the device (moved once; face models still leave after encoding if asked)
  model_offload  on the device / parked in RAM
  block_swap     like model_offload, but the transformer's last N blocks stream in per block
  sequential     each layer's own weights stream in per call / parked in RAM
  on CPU         nothing moves.
Before a big part comes in, ComfyUI is asked to unload its cached models (``bridge.free_memory_for``); after a part
leaves, ``bridge.soft_empty_cache`` hands the freed memory back.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Iterator

from torch import nn

from .. import bridge
from ..errors import InputError
from .blockswap import BlockSwapper
from .modes import MemoryMode, MemoryPlan, ModelSizes
from .moves import ParkedWeights, devices_of, module_bytes, move_module
from .sequential import SequentialOffload

BIG_PART_BYTES = 256 * 1024 ** 2     # parts from this size up first ask ComfyUI to free room


@dataclass
class Component:
    """One managed part. ``kind`` is ``model`` or ``face`` (face models leave the device after encoding)."""

    name: str
    module: nn.Module
    kind: str = "model"
    blocks: str | None = None          # attribute path of the block list, for block swap
    nbytes: int = 0
    parked: ParkedWeights | None = None
    swapper: BlockSwapper | None = None
    sequential: SequentialOffload | None = None
    on_device: bool = False
    uses: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _get_attr(obj, path: str):
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


class ModelManager:
    """Places named parts according to a :class:`MemoryPlan` (see the module docstring for the table)."""

    def __init__(self, plan: MemoryPlan, prefetch: int = 1, non_blocking: bool = True,
                 pin_memory: bool | None = None, trace: bool = False):
        self.plan = plan
        self.device = plan.device
        self.offload_device = plan.offload_device
        self.prefetch = prefetch
        self.non_blocking = non_blocking
        self.pin_memory = pin_memory
        self.trace = trace
        self.components: dict[str, Component] = {}
        self._active: list[str] = []

    # -------------------------------------------------------------------------------------------- registry
    def add(self, name: str, module: nn.Module, kind: str = "model", blocks: str | None = None) -> nn.Module:
        """Register a part. It is parked on the offload device (or placed once, in ``gpu`` mode) right away."""
        if name in self.components:
            raise InputError(f"A part named {name!r} is already managed.", "Give each part its own name.")
        if kind not in ("model", "face"):
            raise InputError(f"Unknown part kind {kind!r}.", "Use kind='model' or kind='face'.")
        comp = Component(name, module, kind, blocks, nbytes=module_bytes(module))
        self.components[name] = comp
        if self.plan.on_cpu:
            move_module(module, self.device)
            comp.on_device = True
            return module
        mode = self.plan.mode
        if mode is MemoryMode.SEQUENTIAL:
            comp.sequential = SequentialOffload(module, self.device, self.offload_device, trace=self.trace)
        elif mode is MemoryMode.BLOCK_SWAP and blocks is not None and self.plan.blocks_to_swap > 0:
            block_list = _get_attr(module, blocks)
            comp.swapper = BlockSwapper(block_list, self.plan.blocks_to_swap, self.device, self.offload_device,
                                        prefetch=self.prefetch, non_blocking=self.non_blocking,
                                        pin_memory=self.pin_memory, move_resident=False, trace=self.trace)
            swapped = tuple(block_list[i] for i in comp.swapper.parked)
            comp.parked = ParkedWeights(module, self.offload_device, exclude=swapped)
        elif mode is MemoryMode.GPU:
            pass                                  # moved on first use, then stays
        else:
            comp.parked = ParkedWeights(module, self.offload_device)
        return module

    def get(self, name: str) -> nn.Module:
        return self._comp(name).module

    def _comp(self, name: str) -> Component:
        try:
            return self.components[name]
        except KeyError:
            raise InputError(f"No part named {name!r} is managed (have: {', '.join(self.components)}).",
                             "Add the part to the model manager before using it.") from None

    def swapper(self, name: str) -> BlockSwapper | None:
        """The part's block swapper (block_swap mode), for samplers that iterate the blocks themselves."""
        return self._comp(name).swapper

    def sizes(self, transformer: str = "transformer") -> ModelSizes:
        """Sizes for :func:`~.modes.resolve_mode` (call on a manager built with any plan, e.g. before placing)."""
        return model_sizes({n: (c.module, c.blocks) for n, c in self.components.items()}, transformer)

    # ---------------------------------------------------------------------------------------------- moving
    def load(self, name: str) -> nn.Module:
        comp = self._comp(name)
        if comp.on_device or comp.sequential is not None:
            return comp.module
        need = comp.nbytes - (sum(comp.swapper.block_bytes[comp.swapper.first_swapped:]) if comp.swapper else 0)
        if need >= BIG_PART_BYTES:
            bridge.free_memory_for(need, self.device)
        if comp.parked is not None:
            comp.parked.load(self.device)
        else:
            move_module(comp.module, self.device)
        if comp.swapper is not None and not comp.swapper._hooks:
            comp.swapper.install_hooks()
        comp.on_device = True
        return comp.module

    def offload(self, name: str) -> None:
        """Send a part back to the offload device now (whatever the mode) and return the memory to ComfyUI."""
        comp = self._comp(name)
        if self.plan.on_cpu:
            return
        if comp.swapper is not None:
            comp.swapper.finish()
        if comp.on_device:
            if comp.parked is not None:
                comp.parked.unload()
            else:
                comp.module.to(self.offload_device)
            comp.on_device = False
        bridge.soft_empty_cache()

    def _keeps_after_use(self, comp: Component) -> bool:
        if self.plan.on_cpu:
            return True
        if comp.kind == "face":
            return not self.plan.offload_face_models
        return self.plan.mode is MemoryMode.GPU

    @contextlib.contextmanager
    def use(self, name: str) -> Iterator[nn.Module]:
        """Have ``name`` ready on the device inside the block; afterwards it leaves unless the plan keeps it."""
        comp = self._comp(name)
        module = self.load(name)
        self._active.append(name)
        try:
            comp.uses += 1
            yield module
        finally:
            self._active.remove(name)
            if comp.swapper is not None:
                comp.swapper.finish()
            if not self._keeps_after_use(comp):
                self.offload(name)

    def offload_all(self) -> None:
        for name in self.components:
            self.offload(name)

    def close(self) -> None:
        """Detach all hooks and leave every part on the offload device (e.g. before the pack's model is freed)."""
        for comp in self.components.values():
            if comp.swapper is not None:
                comp.swapper.close()
            if comp.sequential is not None:
                comp.sequential.remove()
        self.offload_all()

    # ---------------------------------------------------------------------------------------------- report
    def placement(self) -> dict[str, str]:
        """Where each part's weights are right now (``"cpu"``, ``"cuda:0"``, or several joined by ``+``)."""
        return {n: "+".join(sorted(devices_of(c.module))) for n, c in self.components.items()}

    def summary(self) -> str:
        """Memory per part, printed to the console before sampling (users rely on it to tune block swap)."""
        lines = [self.plan.describe()]
        for n, c in self.components.items():
            where = "+".join(sorted(devices_of(c.module))) or "-"
            lines.append(f"  {n:<14} {c.nbytes / 2**30:7.2f} GiB  {_dtypes(c.module):<22} now on {where}")
            if c.swapper is not None:
                lines += ["    " + line for line in c.swapper.summary().splitlines()]
            if c.sequential is not None:
                lines.append("    " + c.sequential.summary())
        return "\n".join(lines)


def _dtypes(module: nn.Module) -> str:
    by: dict[str, int] = {}
    for t in list(module.parameters()) + list(module.buffers()):
        key = str(t.dtype).replace("torch.", "")
        by[key] = by.get(key, 0) + t.numel() * t.element_size()
    return ",".join(k for k, _ in sorted(by.items(), key=lambda kv: -kv[1])) or "-"


def model_sizes(parts: dict[str, tuple[nn.Module, str | None]], transformer: str = "transformer") -> ModelSizes:
    """Build :class:`ModelSizes` from ``{name: (module, blocks_attr)}``; ``transformer`` names the DiT."""
    if transformer not in parts:
        raise InputError(f"No part named {transformer!r} to plan memory for.", "Add the transformer first.")
    dit, blocks = parts[transformer]
    other = sum(module_bytes(m) for n, (m, _) in parts.items() if n != transformer)
    n_blocks, block_bytes = 0, 0
    if blocks:
        block_list = _get_attr(dit, blocks)
        n_blocks = len(block_list)
        block_bytes = max((module_bytes(b) for b in block_list), default=0)
    return ModelSizes(transformer=module_bytes(dit), other=other, num_blocks=n_blocks, block_bytes=block_bytes)


def plan_and_manage(parts: dict[str, tuple[nn.Module, str | None]], requested: MemoryMode | str = "auto",
                    device=None, blocks_to_swap: int | None = None, face_parts: tuple[str, ...] = (),
                    working_bytes: int = 0, **manager_kwargs) -> ModelManager:
    """One call for loaders: size the parts, resolve the plan, register everything and return the manager.

    ``working_bytes``: activations of one forward (:mod:`.estimate`), kept free beside the resident weights."""
    from .modes import resolve_mode

    sizes = model_sizes(parts)
    sizes.working = int(working_bytes)
    plan = resolve_mode(requested, sizes, device, blocks_to_swap=blocks_to_swap)
    mgr = ModelManager(plan, **manager_kwargs)
    for name, (module, blocks) in parts.items():
        mgr.add(name, module, kind="face" if name in face_parts else "model", blocks=blocks)
    return mgr


