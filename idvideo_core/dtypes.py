"""Compute dtype choice with a clear fallback when the device cannot run it."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

log = logging.getLogger("idvideo")

CHOICES = ("auto", "bf16", "fp16", "fp32")


def resolve_dtype(name: str, device) -> "torch.dtype":
    """``auto`` = bf16 on CUDA with bf16 support, else fp32. bf16/fp16 chosen on a CPU fall back to fp32 with a
    warning (CPU half-precision video sampling is very slow and some kernels are missing)."""
    import torch

    dev_type = getattr(device, "type", str(device))
    table = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    if name not in CHOICES:
        from .errors import InputError

        raise InputError(f"Unknown precision '{name}'.", f"Choose one of: {', '.join(CHOICES)}.")
    if name == "auto":
        if dev_type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float16 if dev_type == "mps" else torch.float32
    if dev_type == "cpu" and name != "fp32":
        log.warning("IDVideo: %s was chosen but the model runs on the CPU; using fp32 instead.", name)
        return torch.float32
    return table[name]
