"""oneDNN matrix kernels for float32 linears on the CPU, entered by the denoising loop for one generation.

PyTorch's ``nn.Linear`` on the CPU goes to the BLAS it was built with (MKL in the official wheels). MKL takes its
AVX2 code path on AMD processors, so there a linear runs at about half the speed oneDNN (also inside every PyTorch
x86 build) reaches with AVX-512; on the benchmark machine (AMD EPYC, 2 cores) a [3012×384]·[384×1536] linear takes
19.1 ms through ``F.linear`` and 8.5 ms through oneDNN (BENCHMARKS.md). On Intel CPUs the two are closer. The transformer's linears (and the linear + GELU of the
feed-forward, fused in oneDNN's epilogue) are routed to ``torch.ops.mkldnn._linear_pointwise`` — the op Inductor
itself emits for CPU linears — while a generation runs, and restored afterwards.

Only the summation order changes (max|Δ| ≈ 1e-6 relative per linear; the parity tests keep their 1e-4 limit).
Anything else falls through to the module's own forward, unchanged: CUDA/MPS tensors, other dtypes, autograd,
modules with hooks of their own (sequential offload), fp8 layers (not ``nn.Linear``), code being traced by
``torch.compile`` (``compile_blocks``: Inductor picks its own kernels). Disable with ``IDVIDEO_ONEDNN=0``.
"""
from __future__ import annotations

import contextlib
import logging
import os
import platform
import types

log = logging.getLogger("idvideo")

_checked: bool | None = None


def available() -> bool:
    """oneDNN linears can run here (x86 build with mkldnn, op present, a smoke call agrees with F.linear)."""
    global _checked
    if os.environ.get("IDVIDEO_ONEDNN", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if _checked is None:
        _checked = False
        if platform.machine().lower() not in ("x86_64", "amd64"):
            return False            # measured on x86 only (ARM builds route oneDNN through ACL: unmeasured)
        try:
            import torch

            if torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise"):
                g = torch.Generator().manual_seed(0)
                x, w, b = (torch.randn(5, 8, generator=g), torch.randn(3, 8, generator=g),
                           torch.randn(3, generator=g))
                y = torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")
                _checked = bool(torch.allclose(y, torch.nn.functional.linear(x, w, b), atol=1e-5, rtol=1e-5))
        except (RuntimeError, AttributeError, NotImplementedError) as exc:   # a build without the op
            log.debug("IDVideo: oneDNN linears unavailable: %s", exc)
            _checked = False
    return _checked


def _usable(x, linear) -> bool:
    import torch

    w = linear.weight
    if torch.compiler.is_compiling():      # compile_blocks: Inductor chooses (and packs) its own CPU kernels
        return False
    return (x.device.type == "cpu" and x.dtype == torch.float32 and x.dim() >= 2 and w.dtype == torch.float32
            and w.device.type == "cpu" and w.dim() == 2 and not linear._forward_pre_hooks
            and not linear._forward_hooks and not (torch.is_grad_enabled() and (x.requires_grad or w.requires_grad)))


def _linear_forward(self, x):
    import torch

    if _usable(x, self):
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")
    return type(self).forward(self, x)


def _gelu_forward(self, x):
    """diffusers' ``GELU`` (linear, then GELU): both in one oneDNN call."""
    import torch

    if self.approximate in ("none", "tanh") and _usable(x, self.proj):
        return torch.ops.mkldnn._linear_pointwise(x, self.proj.weight, self.proj.bias, "gelu", [],
                                                  self.approximate)
    return type(self).forward(self, x)


def _targets(module):
    import torch.nn as nn

    try:
        from diffusers.models.activations import GELU
    except ImportError:                                 # pragma: no cover - diffusers is a dependency
        GELU = ()
    for mod in module.modules():
        if GELU and type(mod) is GELU and type(mod.proj) is nn.Linear:
            yield mod, _gelu_forward
        elif type(mod) is nn.Linear:
            yield mod, _linear_forward


@contextlib.contextmanager
def onednn_linears(*modules, device=None):
    """Route the float32 CPU linears of ``modules`` through oneDNN inside the block; yields how many were routed.

    ``device``: where the computation runs (the latents' device); anything but the CPU patches nothing, so GPU runs
    pay no per-call check.

    Only exact ``nn.Linear`` / diffusers ``GELU`` instances are touched, by an instance-level ``forward`` that is
    removed again on exit (also on cancel or error); a module that already has an instance ``forward`` is left
    alone.
    """
    patched = []
    on_cpu = device is None or str(device).startswith("cpu")
    if on_cpu and available():
        for module in modules:
            if module is None:
                continue
            for mod, fwd in _targets(module):
                if "forward" in mod.__dict__:
                    continue
                mod.forward = types.MethodType(fwd, mod)
                patched.append(mod)
    try:
        yield len(patched)
    finally:
        for mod in patched:
            mod.__dict__.pop("forward", None)
