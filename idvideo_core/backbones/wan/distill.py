"""Step-distilled sampling for Wan2.1: the settings lightx2v's 4-step distillation LoRAs (and models) expect.

Source (ModelTC/LightX2V): ``configs/distill/wan21/wan_t2v_distill_lora_4step_cfg.json`` — the config that loads
``lightx2v/Wan2.1-Distill-Loras/wan2.1_t2v_14b_lora_rank64_lightx2v_4step.safetensors`` at strength 1.0 —
sets ``"infer_steps": 4``, ``"sample_shift": 5``, ``"enable_cfg": false`` and
``"denoising_step_list": [1000, 750, 500, 250]``; the sampler is ``WanStepDistillScheduler``
(``lightx2v/models/schedulers/wan/step_distill/scheduler.py``):

* sigmas ``linspace(1, 0, 1001)[:-1]`` shifted ``s' = shift·s / (1 + (shift−1)·s)``; the step list picks indices
  ``1000 − t`` of that table, so the 4 model timesteps are ``1000·s'`` at s = 1, 0.75, 0.5, 0.25
  (1000, 937.5, 833.3, 625 with shift 5);
* each step predicts the clean latent ``x0 = x − σ·v`` and, except after the last, re-noises it to the next sigma
  with *fresh* Gaussian noise, ``x = (1 − σ')·x0 + σ'·ε`` (a consistency-style sampler, not an ODE step); the noise
  comes from the same seeded generator as the initial latents, after them.

CFG off means one transformer pass per step: the conditional branch only (no negative prompt pass, and for Phantom
no image-guidance passes either). The adapter runs a single branch whenever every guidance scale is 1.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from .schedulers import nearest_index, shift_sigmas

LIGHTX2V_4STEP = "lightx2v_4step"
PRESET_LABELS = {"default": "model default", LIGHTX2V_4STEP: "distilled 4-step (lightx2v)"}


@dataclass(frozen=True)
class DistillPreset:
    name: str
    denoising_step_list: tuple
    shift: float
    cfg: float = 1.0

    @property
    def steps(self) -> int:
        return len(self.denoising_step_list)


PRESETS = {LIGHTX2V_4STEP: DistillPreset(LIGHTX2V_4STEP, (1000, 750, 500, 250), 5.0)}


class StepDistillSampler:
    """lightx2v's ``WanStepDistillScheduler``: ``.timesteps`` and ``.step(out, t, latents)`` like the pack's others."""

    def __init__(self, denoising_step_list=(1000, 750, 500, 250), shift: float = 5.0,
                 generator: Optional[torch.Generator] = None, num_train_timesteps: int = 1000):
        table = shift_sigmas(torch.linspace(1.0, 0.0, num_train_timesteps + 1)[:-1], shift)
        index = [num_train_timesteps - int(t) for t in denoising_step_list]
        self.sigmas = table[index]
        self.timesteps = self.sigmas * num_train_timesteps
        self.shift = shift
        self.generator = generator
        self._i = 0

    def _index(self, t) -> int:
        return nearest_index(self.timesteps, t)

    def step(self, model_out: torch.Tensor, t, latents: torch.Tensor) -> torch.Tensor:
        i = self._index(t)
        sigma = float(self.sigmas[i])
        x0 = latents.float() - sigma * model_out.float()
        if i + 1 >= len(self.sigmas):
            return x0
        nxt = float(self.sigmas[i + 1])
        gen_dev = self.generator.device if self.generator is not None else torch.device("cpu")
        noise = torch.randn(x0.shape, generator=self.generator, device=gen_dev, dtype=torch.float32)
        return (1 - nxt) * x0 + nxt * noise.to(x0.device)
