"""Scheduler steppers: one ``step(i, t, model_output, latents)`` interface over diffusers schedulers.

The CogVideoX DPM solver needs the previous x0 prediction and timestep and draws fresh noise from the generation's
generator on every step; flow-matching schedulers need neither. The loop does not care which is which.
"""
from __future__ import annotations

import inspect


class Stepper:
    """Plain diffusers scheduler (``step(model_output, t, sample)``), e.g. flow-match Euler or UniPC."""

    def __init__(self, scheduler, generator=None, eta: float = 0.0):
        self.scheduler = scheduler
        self.generator = generator
        params = set(inspect.signature(scheduler.step).parameters)
        self._kwargs = {}
        if "generator" in params:
            self._kwargs["generator"] = generator
        if "eta" in params:
            self._kwargs["eta"] = eta
        self._tuple = "return_dict" in params  # diffusers schedulers; the pack's own ones return a tensor

    @property
    def timesteps(self):
        return self.scheduler.timesteps

    def scale_input(self, x, t):
        return self.scheduler.scale_model_input(x, t) if hasattr(self.scheduler, "scale_model_input") else x

    def step(self, i: int, t, model_output, latents):
        if self._tuple:
            return self.scheduler.step(model_output, t, latents, **self._kwargs, return_dict=False)[0]
        return self.scheduler.step(model_output, t, latents, **self._kwargs)


class DPMStepper(Stepper):
    """``CogVideoXDPMScheduler``: DPM-Solver++(2M)-SDE style, carries the previous x0 and timestep between steps."""

    def __init__(self, scheduler, generator=None, eta: float = 0.0):
        super().__init__(scheduler, generator, eta)
        self.old_pred_original_sample = None

    def step(self, i: int, t, model_output, latents):
        ts = self.scheduler.timesteps
        prev = ts[i - 1] if i > 0 else None
        latents, self.old_pred_original_sample = self.scheduler.step(
            model_output, self.old_pred_original_sample, t, prev, latents, **self._kwargs, return_dict=False)
        return latents


def make_stepper(scheduler, generator=None, eta: float = 0.0) -> Stepper:
    from diffusers import CogVideoXDPMScheduler

    if isinstance(scheduler, CogVideoXDPMScheduler):
        return DPMStepper(scheduler, generator, eta)
    return Stepper(scheduler, generator, eta)
