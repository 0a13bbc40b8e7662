"""fp8 (e4m3) weight storage: the round-trip error bound and forward equivalence on a small MLP.

Bound checked (derived in ``idvideo_core/memory/fp8.py``), per element with ``s`` its row's scale:
    |w - dequant(quant(w))| <= 2**-4 * |w| + 2**-10 * s      (6.25 % relative in e4m3's normal range)
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from idvideo_core.memory import (BlockSwapper, Fp8Linear, dequantize_fp8, devices_of, quantize_fp8,
                                 quantize_module_fp8)
from idvideo_core.memory.fp8 import ABS_ERROR_BOUND_SCALED, FP8_DTYPE, REL_ERROR_BOUND

SLACK = 1 + 1e-6     # float32 rounding in w / s and q * s


def _check_bound(w: torch.Tensor, per_row: bool) -> float:
    q, s = quantize_fp8(w, per_row=per_row)
    assert q.dtype == FP8_DTYPE and torch.isfinite(q.float()).all()
    back = dequantize_fp8(q, s)
    err = (w - back).abs()
    bound = (REL_ERROR_BOUND * w.abs() + ABS_ERROR_BOUND_SCALED * s) * SLACK
    assert (err <= bound).all(), float((err - bound).max())
    normal = w.abs() >= (2.0 ** -6) * s
    return float((err[normal] / w.abs()[normal]).max()) if normal.any() else 0.0


@pytest.mark.parametrize("per_row", [True, False])
def test_round_trip_bound_on_gaussian_weights(per_row):
    torch.manual_seed(0)
    w = torch.randn(64, 96) * torch.logspace(-3, 2, 64).unsqueeze(1)     # rows spanning 5 decades
    worst_rel = _check_bound(w, per_row)
    assert worst_rel <= REL_ERROR_BOUND * SLACK
    # The bound is tight: rounding errors close to 6.25 % do occur on random data.
    assert worst_rel > 0.05


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32).filter(lambda v: abs(v) < 1e30),
                min_size=1, max_size=48),
       st.booleans())
def test_round_trip_bound_property(values, per_row):
    w = torch.tensor(values, dtype=torch.float32).reshape(1, -1)
    _check_bound(w, per_row)


def test_zero_rows_and_saturation_are_safe():
    w = torch.zeros(3, 4)
    w[1] = torch.tensor([1e6, -1e6, 3.0, 0.0])
    q, s = quantize_fp8(w)
    back = dequantize_fp8(q, s)
    assert torch.equal(back[0], torch.zeros(4)) and torch.isfinite(back).all()
    assert back[1, 0] == 1e6 and back[1, 1] == -1e6      # the row's extreme maps exactly onto 448 * s


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(32, 64)
        self.fc1 = nn.Linear(64, 256)
        self.fc2 = nn.Linear(256, 64)
        self.norm = nn.LayerNorm(64)
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        h = self.embed(x)
        h = h + self.fc2(torch.nn.functional.gelu(self.fc1(h)))
        return self.head(self.norm(h))


def test_quantize_module_skips_and_forward_is_close():
    torch.manual_seed(0)
    model = MLP()
    x = torch.randn(16, 32)
    with torch.no_grad():
        ref = model(x)
    report = quantize_module_fp8(model)
    assert sorted(report.quantized) == ["fc1", "fc2"]
    assert "embed" in report.skipped and "head" in report.skipped
    assert isinstance(model.fc1, Fp8Linear) and model.fc1.weight.dtype == FP8_DTYPE
    assert next(model.parameters()).dtype == torch.float32         # diffusers' model.dtype stays the compute dtype
    assert report.bytes_after < 0.3 * report.bytes_before         # 1 byte + a scale per row vs 4 bytes
    with torch.no_grad():
        out = model(x)
    # Tolerance: rounding errors are independent with RMS <= 2**-4 / sqrt(3) ~ 3.6 % of each weight (uniform within
    # half a unit), so one layer's output error is ~2-3 % RMS (measured 2.6 % on a bf16 3072x3072 layer); here the
    # unquantized residual path dilutes it (measured 0.67 %). We require < 3 % of the output's norm.
    rel = float((out - ref).norm() / ref.norm())
    assert rel < 0.03, rel
    print(f"fp8 MLP relative output error: {rel:.4f}; {report.summary()}")


def test_fp8_layer_in_bf16_and_state_dict_round_trip():
    torch.manual_seed(1)
    lin = nn.Linear(48, 24)
    layer = Fp8Linear.from_linear(lin)
    x = torch.randn(5, 48)
    y32 = layer(x)
    y16 = layer(x.to(torch.bfloat16))
    assert y16.dtype == torch.bfloat16
    torch.testing.assert_close(y16.float(), y32, rtol=0.05, atol=0.05)
    clone = Fp8Linear(48, 24)
    clone.load_state_dict(layer.state_dict())
    assert torch.equal(clone(x), y32)


def test_fp8_blocks_stream_with_block_swap_on_meta():
    """fp8 buffers travel with the block: a meta forward fails if any stayed in RAM."""
    torch.manual_seed(2)
    blocks = nn.ModuleList(nn.Sequential(nn.Linear(16, 16), nn.GELU(), nn.Linear(16, 16)) for _ in range(4))
    quantize_module_fp8(blocks, skip=())
    swapper = BlockSwapper(blocks, 3, "meta", "cpu", prefetch=1).install_hooks()
    h = torch.randn(2, 16, device="meta")
    for blk in blocks:
        h = blk(h)
    assert h.device.type == "meta"
    swapper.close()
    assert all(devices_of(b) == {"cpu"} for b in list(blocks)[1:])
    assert blocks[3][0].weight.dtype == FP8_DTYPE
