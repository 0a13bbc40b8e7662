"""Step caching (TeaCache-style): skip the transformer's block stack on steps where its input barely moved.

Why our own and not cache-dit / para-attn (evaluated for issue 4, see BENCHMARKS.md):
* both hook ``transformer.forward`` (cache-dit swaps ``transformer_blocks`` for one wrapper while that forward runs;
  para-attn's first-block cache patches the forward of the model classes it knows). Our adapters call the blocks
  themselves (LFE once per generation, batched CFG, block swap, Concat-ID references), so those hooks never fire;
* with diffusers 0.42.1, cache-dit 1.5.3's ConsisID adapter runs the whole block stack as one "block", so
  ConsisID's loop applies only the first of the face cross-attentions: its output differs from the model's even when
  nothing is cached (measured max|Δ| 0.31 on a tiny random model);
* para-attn 0.3.x does not install from PyPI (its sdist declares a direct-URL dependency) and has no ConsisID path.

The rule (TeaCache, Liu et al. 2024): per step, the relative L1 change of a cheap "modulated input" (the timestep
embedding) is rescaled by a model-specific polynomial and accumulated; while the sum stays below ``threshold`` the
block stack is skipped and the residual it added last time is added again. The first ``warmup`` steps and the last
step are always computed. One decision covers the whole batch (both CFG branches share the timestep).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class CacheRule:
    """A published rescaling polynomial (highest power first) and its defaults."""

    name: str
    coefficients: tuple[float, ...]
    default_threshold: float
    warmup: int = 1          # steps always computed at the start (TeaCache "ret steps")

    def rescale(self, x: float) -> float:
        y = 0.0
        for c in self.coefficients:   # Horner
            y = y * x + c
        return y


# ConsisID (TeaCache4ConsisID): CogVideoX-5B's polynomial on the time embedding; thresholds 0.1 / 0.15 / 0.2.
CONSISID = CacheRule("ConsisID (CogVideoX-5B polynomial, time embedding)",
                     (-1538.80483, 843.202495, -134.363087, 7.97131516, -0.0523162339), 0.1)
# Wan2.1 (TeaCache4Wan2.1 "ret steps" mode): the projected timestep modulation, first 5 steps always computed.
WAN_1_3B = CacheRule("Wan2.1-1.3B (TeaCache ret-steps polynomial, timestep modulation)",
                     (-5.21862437e+04, 9.23041404e+03, -5.28275948e+02, 1.36987616e+01, -4.99875664e-02), 0.05, 5)
WAN_14B = CacheRule("Wan2.1-14B (TeaCache ret-steps polynomial, timestep modulation)",
                    (-3.03318725e+05, 4.90537029e+04, -2.65530556e+03, 5.87365115e+01, -3.15583525e-01), 0.1, 5)


def wan_rule(num_layers: int) -> CacheRule:
    """1.3B has 30 blocks, 14B has 40; tiny test models fall back to the 1.3B rule."""
    return WAN_14B if num_layers >= 40 else WAN_1_3B


@dataclass
class CacheStats:
    evaluations: int = 0      # block-stack evaluations run
    skipped: int = 0          # block-stack evaluations replaced by the cached residual
    decisions: list = field(default_factory=list)   # (slot, step, computed) in call order

    @property
    def fraction_skipped(self) -> float:
        total = self.evaluations + self.skipped
        return self.skipped / total if total else 0.0


@dataclass
class _Slot:
    step: int = 0
    accumulated: float = 0.0
    previous: object = None        # previous modulated input
    residual: object = None        # what the block stack added last time it ran


class StepCache:
    """Create one per generation: ``StepCache(rule, num_steps, threshold)``; give it to the adapter.

    ``run(signal, hidden, blocks)`` returns ``blocks(hidden)`` or ``hidden + cached residual``. ``slot`` separates
    independent call streams (e.g. CFG branches run one after the other); each slot counts its own steps.
    """

    def __init__(self, rule: CacheRule, num_steps: int, threshold: float | None = None):
        self.rule = rule
        self.num_steps = int(num_steps)
        self.threshold = rule.default_threshold if threshold is None else float(threshold)
        self.stats = CacheStats()
        self._slots: dict = {}

    def reset(self) -> None:
        self._slots.clear()
        self.stats = CacheStats()

    def _must_compute(self, st: _Slot, step: int, hidden) -> bool:
        return (step < max(1, self.rule.warmup) or step >= self.num_steps - 1 or st.residual is None
                or st.residual.shape != hidden.shape or self.threshold <= 0)

    def decide(self, signal, step: int, hidden, slot=0) -> bool:
        """True when the block stack must run at ``step``; updates the accumulated distance."""
        st = self._slots.setdefault(slot, _Slot())
        signal = signal.detach().float()      # the distance in fp32 even for a bf16 model
        prev, st.previous = st.previous, signal
        if self._must_compute(st, step, hidden) or prev is None or prev.shape != signal.shape:
            st.accumulated = 0.0
            return True
        rel = ((signal - prev).abs().mean() / prev.abs().mean().clamp_min(1e-12)).item()
        st.accumulated += self.rule.rescale(rel)
        if st.accumulated < self.threshold:
            return False
        st.accumulated = 0.0
        return True

    def run(self, signal, hidden, blocks: Callable, slot=0):
        st = self._slots.setdefault(slot, _Slot())
        step = st.step
        st.step = (step + 1) % self.num_steps
        computed = self.decide(signal, step, hidden, slot)
        self.stats.decisions.append((slot, step, computed))
        if computed:
            out = blocks(hidden)
            st.residual = out - hidden
            self.stats.evaluations += 1
            return out
        self.stats.skipped += 1
        return hidden + st.residual

    def summary(self) -> str:
        s = self.stats
        return (f"step cache ({self.rule.name}, threshold {self.threshold:g}): {s.skipped} of "
                f"{s.evaluations + s.skipped} block-stack evaluations skipped ({100 * s.fraction_skipped:.0f} %)")


def make_cache(rule: CacheRule, num_steps: int, threshold: float | None) -> StepCache | None:
    """``threshold`` None/0 → no cache (exact reference numerics)."""
    if threshold is None or threshold <= 0:
        return None
    return StepCache(rule, num_steps, threshold)


def computed_steps(stats: CacheStats, slot=0) -> Sequence[int]:
    return [step for s, step, c in stats.decisions if s == slot and c]
