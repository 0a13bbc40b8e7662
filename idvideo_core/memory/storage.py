"""Weight storage + memory mode, decided together before a weight is read (big models: Phantom-Wan-14B).

The memory planner (:mod:`.modes`) places a model whose bytes are known. For a 14B DiT the bytes depend on a choice
made at load time — keep the compute dtype (bf16: 28.6 GB for Wan-14B) or store the block Linear weights in fp8
(:mod:`.fp8`, about half) — and the working memory depends on whether the CFG branches run batched (Phantom: three
branches, 3× the activations) or one after the other (same arithmetic per branch, a third of the activations, close
to the same time once a step is compute-bound). :func:`plan_storage` tries the candidates cheapest first and keeps the
first whose plan fits the free memory:

  1. default storage, branches batched, everything resident or model offload
  2. default storage, branches one at a time, resident or model offload
  3. fp8 storage, branches batched, resident or model offload
  4. fp8 storage, branches one at a time, resident or model offload
  5. fp8 storage, branches batched, block swap
  6. fp8 storage, branches one at a time, block swap
  (default storage with block swap only when fp8 is not allowed: it streams twice the bytes)
  7. fp8 storage, branches one at a time, sequential offload (the last resort; slow)

"Fits" is :func:`~.modes.resolve_mode`'s rule with the working reserve set to the traced activation peak of that
batch (:mod:`.estimate`): resident weights + one prefetched block + activations ≤ free memory. The text encoder is
planned the same way on its own (it runs alone under model offload): when it does not fit in its compute dtype, its
Linear weights are stored in fp8 too. The result is plain data, printed by the loader.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .modes import GIB, MemoryMode, MemoryPlan, ModelSizes, resolve_mode

STORAGES = ("default", "fp8_e4m3")
_RESIDENT = (MemoryMode.GPU, MemoryMode.MODEL_OFFLOAD)


@dataclass
class StoragePlan:
    storage: str                       # "default" | "fp8_e4m3" (the DiT's block Linear weights)
    batch_branches: bool               # CFG branches in one batched forward, or one after the other
    plan: MemoryPlan
    sizes: ModelSizes                  # the DiT's sizes under ``storage`` (working = the chosen batch's peak)
    text_encoder_storage: str = "default"
    reasons: list[str] = field(default_factory=list)

    @property
    def resident_bytes(self) -> int:
        """DiT bytes on the device while it runs: resident blocks + non-block part + one prefetched block."""
        s, p = self.sizes, self.plan
        if p.mode is MemoryMode.BLOCK_SWAP:
            return s.transformer - p.blocks_to_swap * s.block_bytes + s.block_bytes
        if p.mode is MemoryMode.SEQUENTIAL:
            return 2 * s.block_bytes
        return s.transformer

    @property
    def predicted_peak(self) -> int:
        """Resident DiT weights + the traced activation peak of one forward (what must fit)."""
        return self.resident_bytes + self.sizes.working

    def describe(self) -> str:
        lines = [f"IDVideo storage plan: DiT weights {self.storage} ({self.sizes.transformer / GIB:.2f} GiB), "
                 f"CFG branches {'batched' if self.batch_branches else 'one at a time'}, text encoder "
                 f"{self.text_encoder_storage}; predicted DiT peak {self.predicted_peak / GIB:.2f} GiB "
                 f"(resident {self.resident_bytes / GIB:.2f} + activations {self.sizes.working / GIB:.2f})"]
        lines += [f"  - {r}" for r in self.reasons]
        lines.append(self.plan.describe())
        return "\n".join(lines)


def plan_storage(sizes: dict[str, ModelSizes], working: Callable[[bool], int], requested: str = "auto",
                 device=None, *, branches: int = 1, free_bytes: int | None = None, vram_state: str | None = None,
                 blocks_to_swap: int | None = None, mode: str = "auto",
                 text_encoder: dict[str, int] | None = None) -> StoragePlan:
    """Pick the DiT's storage, the branch batching and the memory plan (see the module docstring).

    ``sizes``: the DiT's :class:`ModelSizes` per storage (``other`` = every other part together);
    ``working(batched)``: activation bytes of one forward with the branches batched or not; ``branches``: CFG branches
    per step; ``text_encoder``: its bytes per storage (``{"default": …, "fp8_e4m3": …}``) when one is loaded.
    ``requested`` other than ``auto`` fixes the storage; ``mode`` other than ``auto`` fixes the memory mode."""
    storages = STORAGES if requested == "auto" else (requested,)
    batchings = (True, False) if branches > 1 else (True,)
    kw = dict(vram_state=vram_state, free_bytes=free_bytes, blocks_to_swap=blocks_to_swap)
    tried: list[tuple[str, bool, MemoryPlan, ModelSizes]] = []
    for storage in storages:
        for batched in batchings:
            s = ModelSizes(**{**sizes[storage].__dict__, "working": int(working(batched))})
            tried.append((storage, batched, resolve_mode(mode, s, device, **kw), s))
    if tried[0][2].on_cpu or mode != "auto":
        order = tried                                   # nothing to save on the CPU; an explicit mode is honoured
    else:
        order = ([t for t in tried if t[2].mode in _RESIDENT]
                 # swapping fp8 blocks streams half the bytes: fp8 first (a stable sort keeps batched first)
                 + sorted([t for t in tried if t[2].mode is MemoryMode.BLOCK_SWAP], key=lambda t: t[0] != "fp8_e4m3")
                 + [t for t in tried if t[2].mode is MemoryMode.SEQUENTIAL][::-1])
    storage, batched, plan, s = order[0]
    reasons = []
    if requested != "auto":
        reasons.append(f"Weight storage '{requested}' was chosen on the node.")
    elif storage == "fp8_e4m3":
        d = sizes["default"]
        reasons.append(f"In the compute dtype the DiT ({d.transformer / GIB:.2f} GiB) and one forward's activations "
                       f"do not fit without swapping: its block Linear weights are stored in fp8 "
                       f"({s.transformer / GIB:.2f} GiB; per-weight error ≤ 6.25 %, memory/fp8.py).")
    else:
        reasons.append("The DiT fits in its compute dtype: weights kept as they are.")
    if branches > 1:
        reasons.append(f"The {branches} CFG branches run " + (
            "batched in one forward." if batched else
            f"one after the other: batched they would need {working(True) / GIB:.2f} GiB of activations, "
            f"one at a time {working(False) / GIB:.2f} GiB (same arithmetic)."))
    te_storage = "default"
    if text_encoder and free_bytes is not None and not plan.on_cpu:
        budget = free_bytes * 0.9                       # UMT5 runs alone; its own activations are small (512 tokens)
        if text_encoder.get("default", 0) > budget and "fp8_e4m3" in text_encoder:
            te_storage = "fp8_e4m3"
            reasons.append(f"The text encoder ({text_encoder['default'] / GIB:.2f} GiB) does not fit in the free "
                           f"{free_bytes / GIB:.2f} GiB: its Linear weights are stored in fp8 "
                           f"({text_encoder['fp8_e4m3'] / GIB:.2f} GiB).")
    return StoragePlan(storage, batched, plan, s, te_storage, reasons)
