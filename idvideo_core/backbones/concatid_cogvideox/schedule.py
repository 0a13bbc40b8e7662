"""The SAT sampler of Concat-ID-CogVideoX: VP-SDE DPM-Solver++(2M) on a zero-SNR DDPM schedule, v-prediction.

What the official engine does (``configs/cogvideox_5b.yaml``: ``VPSDEDPMPP2MSampler_cfg`` + ``ZeroSNRDDPMDiscretization``
``shift_scale 1.0`` + ``DiscreteDenoiser`` with ``VideoScaling``), reimplemented here from its equations:

* **Table.** Scaled-linear betas (``sqrt`` linspace 0.00085…0.012, 1000 steps, float64), ᾱ = cumprod(1−β). The
  denoiser's table is ``sqrt(ᾱ_t)`` rescaled to zero terminal SNR over all 1000 entries (float32):
  ``(s_t − s_999)·s_0/(s_0 − s_999)``.
* **Sampler schedule.** ``n`` timesteps ``linspace(999, 0, n, endpoint=False).astype(int)`` (999, 979, …, 19 for 50 —
  diffusers' "trailing"); their ``sqrt(ᾱ)`` are rescaled to zero SNR over the **selected** entries only, so
  ``alpha_i = κₙ·table[t_i]`` with κₙ = (s_first/(s_first − s_999)) / (s_0/(s_0 − s_999)) (κ₅₀ = 1.000629); a final 1
  is appended.
* **Denoiser.** x0 = a_q·x − sqrt(1 − a_q²)·v where a_q is the table entry *nearest* to alpha_i (not alpha_i itself),
  while the DiT receives the integer t_i.
* **Step** (data prediction, λ = log(a/sqrt(1−a²)), h = λ_{i+1} − λ_i, r = (λ_i − λ_{i−1})/h)::

      x_{i+1} = sqrt((1−a_{i+1}²)/(1−a_i²))·e^{−h}·x_i − expm1(−2h)·a_{i+1}·D_i + sqrt(1−a_{i+1}²)·sqrt(1−e^{−2h})·ε

  D_0 = x0_0, D_i = (1 + 1/(2r))·x0_i − 1/(2r)·x0_{i−1}. The last step returns x0. Random draws: one in step 0, two in
  every middle step (the first feeds a first-order proposal the official code computes and discards; the second is ε),
  none in the last; here they come from the generation's generator, in that order.

diffusers' ``CogVideoXDPMScheduler`` has the same timesteps and update but neither κ nor the nearest-entry a_q
(0.03–0.16 apart on the final latents), so it is not used.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

NUM_TRAIN_TIMESTEPS = 1000
BETA_START, BETA_END = 0.00085, 0.012


def _alphas_cumprod() -> np.ndarray:
    betas = (torch.linspace(BETA_START ** 0.5, BETA_END ** 0.5, NUM_TRAIN_TIMESTEPS, dtype=torch.float64) ** 2).numpy()
    return np.cumprod(1.0 - betas, axis=0)


def _zero_snr_sqrt(alphas_cumprod: np.ndarray) -> torch.Tensor:
    """sqrt(ᾱ) of the given entries (ascending t), rescaled so the first stays and the last becomes 0 (float32)."""
    s = torch.tensor(alphas_cumprod, dtype=torch.float32).sqrt()
    s0, sT = s[0].clone(), s[-1].clone()
    return (s - sT) * (s0 / (s0 - sT))


def sampler_timesteps(n: int) -> np.ndarray:
    """Ascending selected timesteps (19, 39, …, 999 for 50)."""
    if n < NUM_TRAIN_TIMESTEPS:
        return np.linspace(NUM_TRAIN_TIMESTEPS - 1, 0, n, endpoint=False).astype(int)[::-1].copy()
    return np.arange(NUM_TRAIN_TIMESTEPS)


@dataclass
class SATSchedule:
    timesteps: torch.Tensor      # (n,) int64, descending: what the DiT receives at step i
    alphas: torch.Tensor         # (n+1,) float32: sampler alpha_i = sqrt(ᾱ) of the selected steps, zero-SNR, then 1
    table: torch.Tensor          # (1000,) float32: the denoiser's rescaled sqrt(ᾱ_t), indexed by t

    @property
    def kappa(self) -> float:
        """alpha_i / table[t_i] for the non-terminal steps (one constant per n)."""
        i = 1 if len(self.timesteps) > 1 else 0
        return float(self.alphas[i] / self.table[int(self.timesteps[i])])

    def a_q(self, i: int) -> torch.Tensor:
        """The table entry nearest to alpha_i (the denoiser's quantised alpha)."""
        return self.table[int((self.alphas[i] - self.table).abs().argmin())]


def sat_schedule(n: int) -> SATSchedule:
    if not 1 <= n <= NUM_TRAIN_TIMESTEPS:
        raise ValueError(f"steps must be 1…{NUM_TRAIN_TIMESTEPS}")
    ac = _alphas_cumprod()
    table = _zero_snr_sqrt(ac)                                 # index t
    ts = sampler_timesteps(n)
    sel = torch.flip(_zero_snr_sqrt(ac[ts]), (0,))             # descending t: 0 … 0.99
    alphas = torch.cat([sel, sel.new_ones([1])])
    return SATSchedule(timesteps=torch.tensor(ts[::-1].copy(), dtype=torch.int64), alphas=alphas, table=table)


def v_to_x0(schedule: SATSchedule, i: int, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The denoiser: x0 = a_q·x − sqrt(1 − a_q²)·v (float32)."""
    a = schedule.a_q(i).to(x.device)
    return (x.float() * a - v.float() * (1 - a ** 2) ** 0.5)


def _lam(a: torch.Tensor) -> torch.Tensor:
    a2 = a ** 2
    return ((a2 / (1 - a2)) ** 0.5).log()


class SATDPMStepper:
    """The official VP-SDE DPM++(2M) update as a pack stepper: ``step(i, t, x0, latents)`` takes the *guided x0*."""

    def __init__(self, steps: int, generator: torch.Generator | None = None):
        self.schedule = sat_schedule(int(steps))
        self.generator = generator
        self.old_x0 = None

    @property
    def timesteps(self):
        return self.schedule.timesteps

    def scale_input(self, x, t):
        return x

    def _randn(self, like: torch.Tensor) -> torch.Tensor:
        g = self.generator
        dev = g.device if g is not None else like.device
        return torch.randn(like.shape, generator=g, device=dev, dtype=torch.float32).to(like.device)

    def step(self, i: int, t, x0: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        al = self.schedule.alphas
        n = len(self.schedule.timesteps)
        x0 = x0.float()
        if i == n - 1:
            self.old_x0 = x0
            return x0
        x = latents.float()
        a, a_next = al[i], al[i + 1]
        h = _lam(a_next) - _lam(a)
        mult1 = ((1 - a_next ** 2) / (1 - a ** 2)) ** 0.5 * (-h).exp()
        mult2 = (-2 * h).expm1() * a_next
        noise_mult = (1 - a_next ** 2) ** 0.5 * (1 - (-2 * h).exp()) ** 0.5
        eps = self._randn(x)
        if self.old_x0 is None:
            out = mult1 * x - mult2 * x0 + noise_mult * eps
        else:
            r = (_lam(a) - _lam(al[i - 1])) / h
            d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * self.old_x0
            eps = self._randn(x)                      # the official code's second draw (the first is discarded)
            out = mult1 * x - mult2 * d + noise_mult * eps
        self.old_x0 = x0
        return out
