"""Classifier-free guidance shapes shared by the backbones."""
from __future__ import annotations

import math


def dynamic_cfg_scale(base: float, t_value: float, num_steps: int) -> float:
    """CogVideoX's dynamic CFG. Uses the raw timestep value, as the reference does (inherited quirk)."""
    return 1 + base * ((1 - math.cos(math.pi * ((num_steps - t_value) / num_steps) ** 5.0)) / 2)


def two_pass(out, scale: float):
    """Batch order ``[uncond, cond]`` → ``uncond + s·(cond − uncond)``."""
    uncond, cond = out.chunk(2)
    return uncond + scale * (cond - uncond)
