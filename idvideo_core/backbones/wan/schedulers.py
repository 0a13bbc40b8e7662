"""The two samplers the Wan reference methods use, with their exact sigma schedules.

* Concat-ID-Wan: DiffSynth ``FlowMatchScheduler(shift=5, sigma_min=0, extra_one_step=True)`` — sigmas
  ``linspace(1, 0, N+1)[:-1]`` shifted ``s' = shift·s / (1 + (shift−1)·s)``, model timestep ``1000·s'`` (float),
  Euler step to the next sigma (0 after the last).
* Phantom-Wan: Wan's ``FlowUniPCMultistepScheduler`` (shift 5, order 2): sigmas ``linspace(0.999, 0, N+1)[:-1]``
  shifted, timesteps truncated to int64. diffusers' ``UniPCMultistepScheduler`` matches it bit for bit when handed
  these exact unshifted sigmas (a plain ``set_timesteps(N)`` starts from 1.0 and drifts).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


def nearest_index(timesteps: torch.Tensor, t) -> int:
    """Index of the schedule entry nearest to the loop's ``t`` (the loop hands back the schedule's own values)."""
    t = torch.as_tensor(t, dtype=timesteps.dtype).flatten()[0].cpu()
    return int(torch.argmin((timesteps - t).abs()))


def shift_sigmas(sigmas, shift: float):
    return shift * sigmas / (1 + (shift - 1) * sigmas)


@dataclass
class FlowMatchEuler:
    """DiffSynth's flow-match Euler sampler (Concat-ID-Wan's ``FlowMatchScheduler``)."""

    steps: int = 50
    shift: float = 5.0
    num_train_timesteps: int = 1000
    sigmas: torch.Tensor = field(init=False)
    timesteps: torch.Tensor = field(init=False)

    def __post_init__(self):
        base = torch.linspace(1.0, 0.0, self.steps + 1)[:-1]
        self.sigmas = shift_sigmas(base, self.shift)
        self.timesteps = self.sigmas * self.num_train_timesteps

    def _index(self, t) -> int:
        return nearest_index(self.timesteps, t)

    def step(self, model_out: torch.Tensor, t, latents: torch.Tensor) -> torch.Tensor:
        i = self._index(t)
        sigma = float(self.sigmas[i])
        sigma_next = 0.0 if i + 1 >= len(self.sigmas) else float(self.sigmas[i + 1])
        return latents + model_out * (sigma_next - sigma)


def phantom_unshifted_sigmas(steps: int) -> np.ndarray:
    """Wan's FlowUniPC schedule before shifting: ``linspace(sigma_max=0.999, 0, N+1)[:-1]``."""
    return np.linspace(1 - 1 / 1000, 0.0, steps + 1)[:-1].copy()


class PhantomUniPC:
    """diffusers ``UniPCMultistepScheduler`` set up as Phantom's FlowUniPC (shift 5, order 2, bh2, flow prediction)."""

    def __init__(self, steps: int = 50, shift: float = 5.0, device=None):
        from diffusers import UniPCMultistepScheduler

        self.impl = UniPCMultistepScheduler(num_train_timesteps=1000, solver_order=2, prediction_type="flow_prediction",
                                            use_flow_sigmas=True, flow_shift=shift, solver_type="bh2",
                                            lower_order_final=True, final_sigmas_type="zero")
        self.impl.set_timesteps(sigmas=phantom_unshifted_sigmas(steps), device=device)
        self.steps = steps
        self.shift = shift

    @property
    def timesteps(self) -> torch.Tensor:
        return self.impl.timesteps

    @property
    def sigmas(self) -> torch.Tensor:
        return self.impl.sigmas[:-1]

    def step(self, model_out: torch.Tensor, t, latents: torch.Tensor) -> torch.Tensor:
        return self.impl.step(model_out, t, latents, return_dict=False)[0]
