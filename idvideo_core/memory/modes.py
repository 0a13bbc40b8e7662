"""Memory modes and the plan that says where each part of a model lives during a generation.

A creator picks a mode on the loader or sampler node; ``auto`` turns ComfyUI's VRAM state (``--lowvram``,
``--novram``, ``--highvram``, ``--cpu``) and the free memory on the device into a concrete plan. The plan is plain
data so the nodes can print it and the tests can check it without a GPU.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

import torch

from .. import bridge
from ..errors import InputError

GIB = 1024 ** 3


class MemoryMode(str, Enum):
    """Where the big parts live while a video is made (the values are what nodes and the CLI show)."""

    AUTO = "auto"                      # decide from ComfyUI's VRAM state and the free memory
    GPU = "gpu"                        # everything stays on the compute device (fastest, most memory)
    MODEL_OFFLOAD = "model_offload"    # text encoder -> transformer -> VAE, each moved in only while it runs
    BLOCK_SWAP = "block_swap"          # model offload + the last N transformer blocks streamed in per step
    SEQUENTIAL = "sequential"          # every layer's weights moved in just before it runs (slowest, least VRAM)

    @classmethod
    def parse(cls, value: "MemoryMode | str") -> "MemoryMode":
        if isinstance(value, MemoryMode):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise InputError(f"Unknown memory mode {value!r}.",
                             f"Use one of: {', '.join(m.value for m in cls)}.") from None


@dataclass
class MemoryPlan:
    """The resolved plan. ``reasons`` explains every decision in words a creator can act on."""

    mode: MemoryMode
    device: torch.device
    offload_device: torch.device
    blocks_to_swap: int = 0
    vae_tiling: bool = False
    vae_slicing: bool = True            # decode one batch item at a time: free and exact
    offload_face_models: bool = True    # face models leave the device once the identity is encoded
    on_cpu: bool = False                # the compute device is the CPU: nothing moves at all
    working_bytes: int = 0              # memory the plan keeps free for one forward's activations
    reasons: list[str] = field(default_factory=list)

    @property
    def offloads(self) -> bool:
        """True when parts are moved off the device between uses."""
        return not self.on_cpu and self.mode in (MemoryMode.MODEL_OFFLOAD, MemoryMode.BLOCK_SWAP,
                                                 MemoryMode.SEQUENTIAL)

    def describe(self) -> str:
        if self.on_cpu:  # nothing moves on the CPU: the mode's name ("gpu", "block_swap") would only mislead
            head = "IDVideo memory plan: CPU only (no GPU in use)"
        else:
            head = f"IDVideo memory plan: {self.mode.value} on {self.device}"
        if self.mode is MemoryMode.BLOCK_SWAP and not self.on_cpu:
            head += f", {self.blocks_to_swap} blocks swapped"
        head += f", VAE tiling {'on' if self.vae_tiling else 'off'}"
        return "\n".join([head] + [f"  - {r}" for r in self.reasons])


@dataclass
class ModelSizes:
    """What the planner needs to know about a model, in bytes (``ModelManager.sizes()`` fills it)."""

    transformer: int
    other: int = 0                      # text encoder + VAE + face models, all of them together
    num_blocks: int = 0                 # transformer blocks that block swap can stream
    block_bytes: int = 0                # bytes of one block (the largest)
    working: int = 0                    # activations of one forward at the default clip (memory/estimate.py)


def _as_device(device) -> torch.device:
    if device is None:
        return torch.device(bridge.torch_device())
    return torch.device(device)


def resolve_mode(requested: MemoryMode | str, model_bytes: int | ModelSizes, device=None, *,
                 blocks_to_swap: int | None = None, vram_state: str | None = None,
                 free_bytes: int | None = None, headroom: float = 0.15) -> MemoryPlan:
    """Turn a requested mode into a :class:`MemoryPlan`.

    ``model_bytes`` is either the transformer's size in bytes or a :class:`ModelSizes`. ``vram_state`` and
    ``free_bytes`` default to what :mod:`idvideo_core.bridge` reports (ComfyUI's flags and free memory); tests pass
    them in. The memory kept free for activations is the larger of ``sizes.working`` (the traced estimate of one
    forward at the model's default clip) and ``headroom`` × the free memory.

    Rules (``auto``):
      * CPU device or ``--cpu``: everything stays on the CPU.
      * ``--highvram`` / ``--gpu-only``: all on the device.
      * ``--novram``: sequential offload.
      * ``--lowvram``: block swap when the transformer does not fit beside the working memory, else model offload.
      * normal: all on the device when everything fits; model offload when the transformer alone fits; block swap
        with just enough blocks swapped otherwise; sequential when even the non-block part does not fit.
      * free memory unknown: model offload (safe, and cheap for these models).
    An explicit mode is honoured (on a GPU); ``block_swap`` without ``blocks_to_swap`` swaps what the free memory
    requires (at least one block).
    """
    mode = MemoryMode.parse(requested)
    sizes = model_bytes if isinstance(model_bytes, ModelSizes) else ModelSizes(transformer=int(model_bytes))
    dev = _as_device(device)
    state = vram_state if vram_state is not None else bridge.vram_state()
    reasons: list[str] = []

    if dev.type == "cpu" or state == "cpu":
        reasons.append("The compute device is the CPU: every part stays in RAM and nothing is offloaded"
                       + (f" (the requested '{mode.value}' mode has no effect there)."
                          if mode not in (MemoryMode.AUTO, MemoryMode.GPU) else "."))
        cpu = torch.device("cpu")
        return MemoryPlan(MemoryMode.GPU, cpu, cpu, 0, vae_tiling=False, vae_slicing=True,
                          offload_face_models=False, on_cpu=True, reasons=reasons)

    offload = torch.device(bridge.offload_device()) if state != "high" else torch.device("cpu")
    if free_bytes is None:
        free_bytes = bridge.free_device_memory(dev)
    # the larger of the measured forward (memory/estimate.py, when the loader knows it) and a share of the free memory
    working = max(sizes.working, int(free_bytes * headroom) if free_bytes else 0)
    plan = MemoryPlan(mode, dev, offload, reasons=reasons, working_bytes=working)

    if mode is MemoryMode.AUTO:
        plan.mode = _auto_mode(sizes, state, free_bytes, working, reasons)
    else:
        reasons.append(f"Mode '{mode.value}' was chosen on the node.")

    if plan.mode is MemoryMode.BLOCK_SWAP:
        plan.blocks_to_swap = _blocks_to_swap(sizes, free_bytes, working, blocks_to_swap, reasons)
        if plan.blocks_to_swap == 0:
            plan.mode = MemoryMode.MODEL_OFFLOAD
            reasons.append("No block needs swapping: using model offload instead.")

    # Tiling trades a little exactness for a large cut in decode memory; only skip it when memory is plentiful.
    ample = free_bytes is not None and free_bytes >= 40 * GIB
    plan.vae_tiling = not (plan.mode is MemoryMode.GPU and (state == "high" or ample))
    if plan.vae_tiling:
        reasons.append("VAE tiling is on: decoding a whole video at once needs several GB more.")
    plan.offload_face_models = plan.mode is not MemoryMode.GPU
    return plan


def _auto_mode(sizes: ModelSizes, state: str, free: int | None, working: int, reasons: list[str]) -> MemoryMode:
    if state == "high":
        reasons.append("ComfyUI runs with --highvram/--gpu-only: everything stays on the device.")
        return MemoryMode.GPU
    if state == "novram":
        reasons.append("ComfyUI runs with --novram: weights are streamed layer by layer (sequential offload).")
        return MemoryMode.SEQUENTIAL
    if free is None:
        reasons.append("The free device memory is unknown: using model offload, which is safe for any size.")
        return MemoryMode.MODEL_OFFLOAD
    fmt = _gib
    if state != "lowvram" and sizes.transformer + sizes.other + working <= free:
        reasons.append(f"All parts ({fmt(sizes.transformer + sizes.other)}) fit in the free {fmt(free)}.")
        return MemoryMode.GPU
    if sizes.transformer + working <= free:
        why = "ComfyUI runs with --lowvram" if state == "lowvram" else \
            f"all parts ({fmt(sizes.transformer + sizes.other)}) do not fit in the free {fmt(free)}"
        reasons.append(f"{why}: each part is moved in only while it runs (model offload).")
        return MemoryMode.MODEL_OFFLOAD
    non_block = sizes.transformer - sizes.num_blocks * sizes.block_bytes
    if sizes.num_blocks and non_block + sizes.block_bytes * 2 + working <= free:
        reasons.append(f"The transformer ({fmt(sizes.transformer)}) does not fit in the free {fmt(free)}: "
                       "some of its blocks are streamed in each step (block swap).")
        return MemoryMode.BLOCK_SWAP
    reasons.append(f"Even part of the transformer does not fit in the free {fmt(free)}: layers are streamed one "
                   "by one (sequential offload, slow). Close other programs or lower the resolution to go faster.")
    return MemoryMode.SEQUENTIAL


def _blocks_to_swap(sizes: ModelSizes, free: int | None, working: int, requested: int | None,
                    reasons: list[str]) -> int:
    n_blocks = sizes.num_blocks
    if requested is not None:
        if requested < 0:
            raise InputError(f"blocks_to_swap must be 0 or more, got {requested}.", "Set blocks_to_swap to 0 or more.")
        if n_blocks and requested > n_blocks:
            reasons.append(f"blocks_to_swap={requested} is more than the model's {n_blocks} blocks; using {n_blocks}.")
            return n_blocks
        reasons.append(f"{requested} blocks swapped, as set on the node.")
        return int(requested)
    if not n_blocks or not sizes.block_bytes:
        reasons.append("The model's block sizes are unknown: swapping half of the blocks.")
        return max(n_blocks // 2, 1) if n_blocks else 0
    if free is None:
        reasons.append("Free memory unknown: swapping half of the blocks.")
        return max(n_blocks // 2, 1)
    # Resident blocks + the non-block part + the prefetched block(s) + working memory must fit in `free`.
    deficit = sizes.transformer + sizes.block_bytes + working - free
    n = min(max(math.ceil(deficit / sizes.block_bytes), 1), n_blocks)
    reasons.append(f"{n} of {n_blocks} blocks swapped ({_gib(n * sizes.block_bytes)} kept in RAM) so the rest "
                   f"fits in the free {_gib(free)}.")
    return n


def _gib(n: int) -> str:
    return f"{n / GIB:.2f} GiB"
