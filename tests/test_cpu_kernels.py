"""oneDNN linears on the CPU (idvideo_core.cpu_kernels): used inside the loop, same numbers, clean fallbacks."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode

from idvideo_core import cpu_kernels
from idvideo_core.cpu_kernels import onednn_linears

pytestmark = pytest.mark.skipif(not cpu_kernels.available(),
                                reason="oneDNN linears are off here (not x86-64, no mkldnn op in this torch build, "
                                       "or IDVIDEO_ONEDNN=0)")


class OpLog(TorchDispatchMode):
    """Names of the ATen/oneDNN ops a forward dispatches."""

    def __init__(self):
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


def _ffn_model(seed=0):
    from diffusers.models.attention import FeedForward

    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(24, 32), FeedForward(32, mult=4, activation_fn="gelu-approximate"),
                         nn.Linear(32, 8, bias=False)).eval()


def _ops(model, x):
    with torch.no_grad(), OpLog() as log:
        y = model(x)
    return y, log.ops


def test_linears_and_fused_gelu_go_through_onednn_with_the_same_numbers():
    model = _ffn_model()
    x = torch.randn(2, 300, 24)
    ref, ref_ops = _ops(model, x)
    assert "aten.addmm" in ref_ops or "aten.mm" in ref_ops
    with onednn_linears(model) as n:
        assert n == 5                      # 4 nn.Linear (one is the GELU's proj) + the GELU itself
        out, ops = _ops(model, x)
    assert ops.count("mkldnn._linear_pointwise") == 4    # linear, FFN (linear+GELU fused, linear), linear
    assert not {"aten.addmm", "aten.mm", "aten.gelu"} & set(ops)
    assert (out - ref).abs().max().item() <= 1e-5 * ref.abs().max().item()
    # restored on exit: the class forward again, no instance attribute left behind
    assert not any("forward" in m.__dict__ for m in model.modules())
    assert torch.equal(_ops(model, x)[0], ref)


def test_erf_gelu_is_fused_too():
    from diffusers.models.activations import GELU

    torch.manual_seed(1)
    gelu = GELU(16, 40, approximate="none").eval()
    x = torch.randn(50, 16)
    ref = _ops(gelu, x)[0]
    with onednn_linears(gelu):
        out, ops = _ops(gelu, x)
    assert ops == ["mkldnn._linear_pointwise"]
    assert (out - ref).abs().max().item() <= 1e-5


def test_fallbacks_keep_hooks_autograd_and_other_dtypes():
    torch.manual_seed(2)
    lin = nn.Linear(8, 4)
    calls = []
    lin.register_forward_pre_hook(lambda *_: calls.append("pre"))   # e.g. sequential offload loading the weight
    with onednn_linears(lin):
        _, ops = _ops(lin, torch.randn(3, 8))
        assert calls == ["pre"] and "mkldnn._linear_pointwise" not in ops
    plain = nn.Linear(8, 4)
    with onednn_linears(plain):
        x = torch.randn(3, 8, requires_grad=True)
        plain(x).sum().backward()                                    # autograd: the aten path, gradients flow
        assert x.grad is not None and plain.weight.grad is not None
        with torch.no_grad(), OpLog() as log:
            plain.double()(torch.randn(3, 8, dtype=torch.float64))
        assert "mkldnn._linear_pointwise" not in log.ops


def test_restored_after_an_error_and_switch_off(monkeypatch):
    model = _ffn_model()
    with pytest.raises(RuntimeError, match="cancelled"):
        with onednn_linears(model):
            raise RuntimeError("cancelled")
    assert not any("forward" in m.__dict__ for m in model.modules())
    monkeypatch.setenv("IDVIDEO_ONEDNN", "0")
    with onednn_linears(model) as n:
        assert n == 0
        assert "mkldnn._linear_pointwise" not in _ops(model, torch.randn(2, 24))[1]


def test_the_denoising_loop_runs_its_modules_through_onednn():
    from idvideo_core.sampling.loop import denoise

    model = _ffn_model()
    seen = []

    class Adapter:
        def model_output(self, latents, t, i):
            out, ops = _ops(model, latents)
            seen.append(ops.count("mkldnn._linear_pointwise"))
            return torch.zeros_like(latents) + out.mean()

    class Stepper:
        timesteps = torch.tensor([3, 2, 1])

        def step(self, i, t, out, latents):
            return latents - 0.1 * out

    denoise(Adapter(), Stepper(), torch.randn(1, 5, 24), modules=(model,))
    assert seen == [4, 4, 4]
    assert not any("forward" in m.__dict__ for m in model.modules())



def test_nothing_is_patched_when_the_loop_runs_on_another_device():
    model = _ffn_model()
    with onednn_linears(model, device=torch.device("meta")) as n:     # a GPU run: no per-call check at all
        assert n == 0 and not any("forward" in m.__dict__ for m in model.modules())
    with onednn_linears(model, device="cpu") as n:
        assert n == 5


def test_compiled_code_keeps_inductors_own_kernels():
    """compile_blocks traces through the routed linears: they step aside (Inductor rejects the op on a weight it
    does not own) and the compiled result equals eager."""
    model = _ffn_model()
    x = torch.randn(2, 40, 24)
    ref = _ops(model, x)[0]
    compiled = torch.compile(model)
    with onednn_linears(model), torch.no_grad():
        out = compiled(x)
    assert (out - ref).abs().max().item() <= 1e-5
