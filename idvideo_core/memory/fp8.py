"""fp8 (e4m3) weight storage: Linear weights kept at one byte per value and upcast per layer when used.

Each weight row (or the whole tensor) is divided by ``scale = amax / 448`` so its largest value lands on e4m3's
largest finite value, then rounded to float8_e4m3fn. In ``forward`` the layer upcasts its own weight to the input's
dtype and multiplies by the scale, so only one layer's full-precision weight exists at a time. This halves the
memory of a bf16 transformer (and the bytes block swap has to stream) at a small, bounded cost in accuracy:

Error bound (what ``tests/test_memory_fp8.py`` checks), per element, with ``s`` the element's scale:
    |w - dequant(quant(w))|  <=  2**-4 * |w|  +  2**-10 * s
e4m3 has 3 mantissa bits, so rounding a normal value (|w/s| >= 2**-6) to nearest is off by at most half a unit in
the last place, 2**-4 of the value (6.25 %). Below 2**-6 the format is subnormal with spacing 2**-9, so rounding is
off by at most 2**-10 in scaled units, i.e. 2**-10 * s. Scaling guarantees |w/s| <= 448, so nothing saturates.

Works on CPU too (torch stores float8 there; the upcast is a plain ``.to(dtype)``). No fp8 matmul kernels are used:
the saving is memory, not speed.

Files that already hold fp8 weights (ComfyUI ``*_fp8_e4m3fn`` and ``*_fp8_e4m3fn_scaled`` single files) are kept as
they are: :meth:`Fp8Linear.from_fp8` takes the stored fp8 weight and its scale as published — one float32 scalar per
tensor (ComfyUI's ``<layer>.scale_weight``; 1 for unscaled files) or one per row — so nothing is re-rounded and the
only error is the publisher's own quantisation. ``<layer>.scale_input`` (ComfyUI's input scale for fp8 *matmuls*)
is kept on the layer for reference; this layer upcasts the weight instead, which needs no input scale.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

import torch
from torch import nn
from torch.nn import functional as F

FP8_DTYPE = torch.float8_e4m3fn
FP8_MAX = float(torch.finfo(FP8_DTYPE).max)            # 448
REL_ERROR_BOUND = 2.0 ** -4                            # normal range, relative to |w|
ABS_ERROR_BOUND_SCALED = 2.0 ** -10                    # subnormal range, in units of the scale

# Layers whose precision matters most or that are tiny: norms, embeddings, the output head, modulation tables.
DEFAULT_SKIP = ("norm", "embed", "emb", "head", "proj_out", "pos_", "time_", "modulation")


def quantize_fp8(weight: torch.Tensor, per_row: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (fp8 weight, float32 scale). ``scale`` has shape (out, 1) per row, or () per tensor."""
    w = weight.detach().float()
    if per_row and w.dim() >= 2:
        amax = w.abs().reshape(w.shape[0], -1).amax(dim=1).reshape(-1, *([1] * (w.dim() - 1)))
    else:
        amax = w.abs().amax()
    # Floor at float32's smallest normal: all-zero rows get a harmless scale, denormal weights do not divide by 0.
    scale = (amax / FP8_MAX).clamp_min(torch.finfo(torch.float32).tiny)
    q = (w / scale).clamp_(-FP8_MAX, FP8_MAX).to(FP8_DTYPE)
    return q, scale


def dequantize_fp8(q: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Upcast an fp8 weight and apply its scale (computed in float32, returned in ``dtype``)."""
    return (q.to(torch.float32) * scale).to(dtype)


class Fp8Linear(nn.Module):
    """A Linear layer whose weight is stored as float8_e4m3fn plus a float32 scale.

    The fp8 weight and the scale are buffers, not parameters, so ``model.dtype`` (diffusers reads the first
    floating parameter) keeps reporting the compute dtype. The bias stays in its original dtype.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, per_row: bool = True,
                 bias_dtype: torch.dtype = torch.float32, device=None):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.per_row = per_row
        self.register_buffer("weight", torch.zeros(out_features, in_features, dtype=FP8_DTYPE, device=device))
        self.register_buffer("weight_scale", torch.ones((out_features, 1) if per_row else (), dtype=torch.float32,
                                                        device=device))
        self.bias = nn.Parameter(torch.zeros(out_features, dtype=bias_dtype, device=device),
                                 requires_grad=False) if bias else None

    @classmethod
    def from_fp8(cls, weight: torch.Tensor, scale=None, bias: torch.Tensor | None = None,
                 input_scale: torch.Tensor | None = None) -> "Fp8Linear":
        """A layer around an fp8 weight as stored in a file (no re-quantisation).

        ``scale``: None (unscaled ``fp8_e4m3fn`` files: scale 1), a per-tensor scalar of any shape with one element
        (ComfyUI ``scale_weight``), or one value per output row. ``weight`` may be in another dtype (a float
        weight with a scale, e.g. a bf16 tensor in an otherwise fp8 file): it is quantised per row then."""
        out_f, in_f = int(weight.shape[0]), int(weight.shape[1])
        if weight.dtype != FP8_DTYPE:
            w = weight.float() if scale is None else weight.float() * torch.as_tensor(scale).float().reshape(-1, 1)
            layer = cls(in_f, out_f, bias=bias is not None, per_row=True,
                        bias_dtype=bias.dtype if bias is not None else torch.float32, device="meta")
            layer.weight, layer.weight_scale = quantize_fp8(w, per_row=True)
        else:
            s = torch.ones((), dtype=torch.float32) if scale is None else torch.as_tensor(scale).float()
            per_row = s.numel() > 1
            if per_row and s.numel() != out_f:
                raise ValueError(f"scale has {s.numel()} values for a weight with {out_f} rows")
            s = s.reshape(out_f, 1) if per_row else s.reshape(())
            layer = cls(in_f, out_f, bias=bias is not None, per_row=per_row,
                        bias_dtype=bias.dtype if bias is not None else torch.float32, device="meta")
            layer.weight, layer.weight_scale = weight, s.to(weight.device)
        if bias is not None:
            layer.bias = nn.Parameter(bias.detach(), requires_grad=False)
        if input_scale is not None:
            layer.register_buffer("input_scale", torch.as_tensor(input_scale).float().reshape(()).to(weight.device))
        return layer

    @classmethod
    def from_linear(cls, linear: nn.Linear, per_row: bool = True) -> "Fp8Linear":
        layer = cls(linear.in_features, linear.out_features, bias=linear.bias is not None, per_row=per_row,
                    bias_dtype=linear.weight.dtype, device=linear.weight.device)
        q, scale = quantize_fp8(linear.weight, per_row=per_row)
        layer.weight = q
        layer.weight_scale = scale
        if linear.bias is not None:
            layer.bias = nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        return layer

    def dequantized_weight(self, dtype: torch.dtype) -> torch.Tensor:
        return dequantize_fp8(self.weight, self.weight_scale, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.dequantized_weight(x.dtype)
        b = self.bias.to(x.dtype) if self.bias is not None else None
        return F.linear(x, w, b)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, fp8=e4m3fn, scale={'per_row' if self.per_row else 'per_tensor'}")


@dataclass
class Fp8Report:
    """What ``quantize_module_fp8`` did: which layers and how many bytes it saved."""

    quantized: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    bytes_before: int = 0
    bytes_after: int = 0

    def summary(self) -> str:
        return (f"fp8 e4m3: {len(self.quantized)} Linear layers stored in fp8 ({len(self.skipped)} kept), "
                f"{self.bytes_before / 2**20:.1f} MiB -> {self.bytes_after / 2**20:.1f} MiB")


def keeps_fp8(name: str, skip: Iterable[str] = DEFAULT_SKIP) -> bool:
    """True when the Linear layer ``name`` (qualified) is one :func:`quantize_module_fp8` would store in fp8; loaders
    use it to decide which fp8 tensors of a file stay fp8 (the others are upcast once at load)."""
    return not _matches(name, tuple(skip))


def _matches(name: str, patterns: Iterable[str]) -> bool:
    leaf_path = name.lower()
    return any(re.search(p, leaf_path) if p.startswith("^") else p in leaf_path for p in patterns)


def quantize_module_fp8(module: nn.Module, skip: Iterable[str] = DEFAULT_SKIP, per_row: bool = True,
                        min_features: int = 0) -> Fp8Report:
    """Replace every ``nn.Linear`` inside ``module`` (in place) by an :class:`Fp8Linear`.

    ``skip``: substrings (or ``^regex``) of qualified layer names kept in full precision (norms, embeddings, the
    head by default). ``min_features``: keep layers with fewer input features than this (tiny layers save nothing).
    """
    skip = tuple(skip)
    report = Fp8Report()
    for name, child in list(module.named_modules()):
        for attr, sub in list(child._modules.items()):
            if not isinstance(sub, nn.Linear):
                continue
            full = f"{name}.{attr}" if name else attr
            if _matches(full, skip) or sub.in_features < min_features:
                report.skipped.append(full)
                continue
            before = sum(t.numel() * t.element_size() for t in sub.parameters())
            new = Fp8Linear.from_linear(sub, per_row=per_row)
            after = sum(t.numel() * t.element_size() for t in list(new.parameters()) + list(new.buffers()))
            child._modules[attr] = new
            report.quantized.append(full)
            report.bytes_before += before
            report.bytes_after += after
    return report
