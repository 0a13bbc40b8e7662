"""Block swap: keep the last N transformer blocks off the device and stream each in just before it runs.

While block ``i`` computes, the next ``prefetch`` swapped blocks are copied in on a side CUDA stream, so the copy
hides behind the compute. A block is released right after it ran; since inference weights never change, releasing
is only re-pointing at the RAM copy (see :mod:`.moves`), so the device never copies weights back.

Two ways to drive it:
  * ``for blk in swapper.iterate(): hidden = blk(hidden, ...)`` when the sampler loops over blocks itself;
  * ``swapper.install_hooks()`` for a diffusers transformer that loops over its blocks inside ``forward``.

On the CPU (or any non-CUDA device) the same schedule runs synchronously, which is what the placement tests record.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from ..errors import InputError
from .moves import ParkedWeights, module_bytes, move_module


@dataclass
class SwapEvent:
    """One step of the schedule, recorded when ``trace=True``: ``kind`` is load, ready, compute or release."""

    kind: str
    block: int


class BlockSwapper:
    """Streams the last ``n_swap`` of ``blocks`` between ``offload_device`` and ``device``.

    Args:
        blocks: the transformer's block list (``transformer.transformer_blocks`` / ``.blocks``).
        n_swap: how many blocks, counted from the end, live on ``offload_device`` between uses.
        device: the compute device.
        offload_device: where swapped blocks wait (normally ``cpu``).
        prefetch: how many swapped blocks are copied in ahead of the one computing (0 = load on demand).
        non_blocking: asynchronous host->device copies; needs pinned memory to overlap (turn off if RAM is short).
        pin_memory: keep swapped blocks in pinned RAM (default: when CUDA is the device and non_blocking is on).
        move_resident: also move the other blocks to ``device`` (off when the caller places them itself).
        trace: record every load/ready/compute/release in ``events`` (``block_swap_debug`` in the UI).
    """

    def __init__(self, blocks: nn.ModuleList, n_swap: int, device, offload_device="cpu", prefetch: int = 1,
                 non_blocking: bool = True, pin_memory: bool | None = None, move_resident: bool = True,
                 trace: bool = False):
        if not 0 <= n_swap <= len(blocks):
            raise InputError(f"blocks_to_swap={n_swap} but the model has {len(blocks)} blocks.",
                             f"Set blocks_to_swap between 0 and {len(blocks)}.")
        if prefetch < 0:
            raise InputError(f"prefetch_blocks must be 0 or more, got {prefetch}.", "Set prefetch_blocks to 0 or more.")
        self.blocks = blocks
        self.n_swap = int(n_swap)
        self.device = torch.device(device)
        self.offload_device = torch.device(offload_device)
        self.prefetch = int(prefetch)
        cuda = self.device.type == "cuda"
        self.non_blocking = bool(non_blocking) and cuda
        self.pin_memory = (self.non_blocking if pin_memory is None else bool(pin_memory)) and cuda
        self.first_swapped = len(blocks) - self.n_swap
        self.trace = trace
        self.events: list[SwapEvent] = []
        self.bytes_moved = 0
        self._stream = torch.cuda.Stream(self.device) if cuda and self.prefetch > 0 else None
        self._pending: dict[int, object] = {}     # block -> CUDA event of its side-stream copy (None on CPU)
        self._ready: set[int] = set()
        self._hooks: list = []

        self.parked: dict[int, ParkedWeights] = {}
        for i, blk in enumerate(blocks):
            if i >= self.first_swapped:
                self.parked[i] = ParkedWeights(blk, self.offload_device, pin_memory=self.pin_memory)
            elif move_resident:
                move_module(blk, self.device)
        self.block_bytes = [module_bytes(b) for b in blocks]

    # -------------------------------------------------------------------------------------------- schedule
    def is_swapped(self, i: int) -> bool:
        return i >= self.first_swapped

    def on_device(self) -> list[int]:
        """Swapped blocks currently loaded or being loaded (resident blocks are always there)."""
        return sorted(set(self._pending) | self._ready)

    def _log(self, kind: str, i: int) -> None:
        if self.trace:
            self.events.append(SwapEvent(kind, i))

    def _fetch(self, i: int) -> None:
        """Start copying swapped block ``i`` in (asynchronously on the side stream when there is one)."""
        if not self.is_swapped(i) or i in self._pending or i in self._ready:
            return
        parked = self.parked[i]
        self._log("load", i)
        if self._stream is not None:
            # No wait on the compute stream: the home copies are immutable pinned RAM, and memory freed by released
            # blocks is protected by record_stream, so the copy may run while earlier blocks still compute.
            with torch.cuda.stream(self._stream):
                parked.load(self.device, non_blocking=self.non_blocking)
                event = torch.cuda.Event()
                event.record(self._stream)
            self._pending[i] = event
        else:
            parked.load(self.device, non_blocking=self.non_blocking)
            self._pending[i] = None
        self.bytes_moved += parked.nbytes

    def _wait(self, i: int) -> None:
        self._fetch(i)
        event = self._pending.pop(i)
        if event is not None:
            stream = torch.cuda.current_stream(self.device)
            stream.wait_event(event)
            # The copies were allocated on the side stream; keep the allocator from reusing them too early.
            self.parked[i].record_stream(stream)
        self._ready.add(i)
        self._log("ready", i)

    def _upcoming(self, i: int) -> list[int]:
        """The swapped ones among the next ``prefetch`` blocks after ``i`` in this forward pass (no wrap into the
        next step, so nothing stays on the device between steps)."""
        return [j for j in range(i + 1, min(i + 1 + self.prefetch, len(self.blocks))) if self.is_swapped(j)]

    def before(self, i: int) -> None:
        """Call right before block ``i`` runs: makes sure it is on the device and prefetches the next ones."""
        if self.is_swapped(i):
            self._wait(i)
        for j in self._upcoming(i):
            self._fetch(j)
        self._log("compute", i)

    def after(self, i: int) -> None:
        """Call right after block ``i`` ran: releases it if swapped."""
        if self.is_swapped(i) and i in self._ready:
            self._ready.discard(i)
            self.parked[i].unload()
            self._log("release", i)

    def iterate(self) -> Iterator[nn.Module]:
        """Yield the blocks in order, each on the device while the loop body runs."""
        for i, blk in enumerate(self.blocks):
            self.before(i)
            try:
                yield blk
            finally:
                self.after(i)

    def finish(self) -> None:
        """Release every swapped block still on the device (prefetched for a next step that will not come)."""
        if self._stream is not None:
            torch.cuda.current_stream(self.device).wait_stream(self._stream)
        for i in list(self._pending):
            self._pending.pop(i)
            self.parked[i].unload()
            self._log("release", i)
        for i in list(self._ready):
            self._ready.discard(i)
            self.parked[i].unload()
            self._log("release", i)

    # ------------------------------------------------------------------------------------------------ hooks
    def install_hooks(self) -> "BlockSwapper":
        """Drive the schedule from forward hooks, for transformers that loop over their blocks internally."""
        self.remove_hooks()
        for i, blk in enumerate(self.blocks):
            self._hooks.append(blk.register_forward_pre_hook(lambda _m, _a, i=i: self.before(i)))
            self._hooks.append(blk.register_forward_hook(lambda _m, _a, _o, i=i: self.after(i)))
        return self

    def remove_hooks(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks.clear()

    def close(self) -> None:
        """Remove hooks and release everything: the swapped blocks stay parked on ``offload_device``."""
        self.remove_hooks()
        self.finish()

    # ---------------------------------------------------------------------------------------------- report
    def summary(self) -> str:
        """Memory per part, for the console (users compare it against their VRAM when tuning blocks_to_swap)."""
        n = len(self.blocks)
        resident = sum(self.block_bytes[:self.first_swapped])
        swapped = sum(self.block_bytes[self.first_swapped:])
        largest = max(self.block_bytes[self.first_swapped:], default=0)
        lines = [
            f"Block swap: {self.n_swap} of {n} blocks streamed from {self.offload_device}"
            f"{' (pinned RAM)' if self.pin_memory else ''} to {self.device}, prefetch {self.prefetch}, "
            f"non_blocking {'on' if self.non_blocking else 'off'}",
            f"  resident blocks on {self.device}: {self.first_swapped} = {_fmt(resident)}",
            f"  swapped blocks on {self.offload_device}: {self.n_swap} = {_fmt(swapped)}",
            f"  swapped blocks on {self.device} at once: at most {min(1 + self.prefetch, self.n_swap)} "
            f"= {_fmt(largest * min(1 + self.prefetch, self.n_swap))}",
        ]
        if self.bytes_moved:
            lines.append(f"  streamed so far: {_fmt(self.bytes_moved)}")
        return "\n".join(lines)


def _fmt(n: int) -> str:
    if n >= 1024 ** 3:
        return f"{n / 1024 ** 3:.2f} GiB"
    return f"{n / 1024 ** 2:.1f} MiB"
