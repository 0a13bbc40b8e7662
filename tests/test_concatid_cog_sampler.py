"""The SAT sampler of Concat-ID-CogVideoX, checked against an independent float64 implementation of the documented
equations (concat-id.md, "Verified behaviour of the official Concat-ID-CogVideoX (SAT) code") and its figures."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from idvideo_core.backbones.concatid_cogvideox.schedule import (
    SATDPMStepper,
    sat_schedule,
    v_to_x0,
)


def official_schedule(n: int):
    """float64: ZeroSNR DDPM table, selected timesteps, alphas rescaled over the selection, final 1."""
    betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000) ** 2
    s = np.sqrt(np.cumprod(1 - betas))
    table = (s - s[-1]) * s[0] / (s[0] - s[-1])
    ts = np.linspace(999, 0, n, endpoint=False).astype(int)[::-1]
    sel = s[ts]
    sel = (sel - sel[-1]) * sel[0] / (sel[0] - sel[-1])
    return ts[::-1].copy(), np.concatenate([sel[::-1], [1.0]]), table


def test_schedule_figures():
    s50 = sat_schedule(50)
    assert s50.kappa == pytest.approx(1.000629, abs=1e-6)
    assert sat_schedule(4).kappa == pytest.approx(1.016107, abs=1e-6)
    a = s50.alphas.numpy()
    assert a[:4] == pytest.approx([0, 0.009268, 0.019381, 0.030373], abs=1e-6)
    assert a[-4:] == pytest.approx([0.969028, 0.980547, 0.991082, 1.0], abs=1e-6)
    assert s50.timesteps.tolist() == list(range(999, 0, -20))
    ts, alphas, table = official_schedule(50)
    assert ts.tolist() == s50.timesteps.tolist()
    assert np.abs(a - alphas).max() < 1e-6 and np.abs(s50.table.numpy() - table).max() < 1e-6
    # nearest table entry: t−1 for the last 11 steps (219 … 19), t before
    idx = [int((s50.alphas[i] - s50.table).abs().argmin()) for i in range(50)]
    assert idx[39:] == [t - 1 for t in range(219, 0, -20)] and idx[:38] == list(range(999, 239, -20))


def test_v_to_x0_uses_nearest_entry():
    s = sat_schedule(50)
    x, v = torch.randn(1, 2, 3, 4, 4), torch.randn(1, 2, 3, 4, 4)
    i = 45
    a = float(s.table[int(s.timesteps[i]) - 1])
    assert torch.allclose(v_to_x0(s, i, x, v), a * x - (1 - a * a) ** 0.5 * v, atol=1e-6)
    assert not torch.allclose(v_to_x0(s, i, x, v), float(s.alphas[i]) * x - (1 - float(s.alphas[i]) ** 2) ** 0.5 * v,
                              atol=1e-5)


def official_steps(n, x, x0s, seed):
    """The documented update in float64 with the documented draws (1 in step 0, 2 in middle steps, 0 in the last)."""
    _, a, _ = official_schedule(n)
    g = torch.Generator().manual_seed(seed)
    lam = lambda al: np.log(al / np.sqrt(1 - al * al)) if al > 0 else -np.inf
    x = x.double()
    out = []
    for i in range(n):
        if i == n - 1:
            out.append(x0s[i].double())
            break
        h = lam(a[i + 1]) - lam(a[i])
        draws = [torch.randn(x.shape, generator=g) for _ in range(1 if i == 0 else 2)]
        eps = draws[-1].double()
        if i == 0:
            d = x0s[0].double()
        else:
            r = (lam(a[i]) - lam(a[i - 1])) / h
            d = (1 + 1 / (2 * r)) * x0s[i].double() - 1 / (2 * r) * x0s[i - 1].double()
        x = (np.sqrt((1 - a[i + 1] ** 2) / (1 - a[i] ** 2)) * np.exp(-h) * x - np.expm1(-2 * h) * a[i + 1] * d
             + np.sqrt(1 - a[i + 1] ** 2) * np.sqrt(1 - np.exp(-2 * h)) * eps)
        out.append(x)
    return out


@pytest.mark.parametrize("n", [4, 50])
def test_step_equals_official_update(n):
    shape = (1, 3, 4, 6, 8)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(shape, generator=g)
    x0s = [torch.randn(shape, generator=g) for _ in range(n)]
    expect = official_steps(n, x, x0s, seed=11)
    st = SATDPMStepper(n, torch.Generator().manual_seed(11))
    lat = x
    for i, t in enumerate(st.timesteps):
        lat = st.step(i, t, x0s[i], lat)
        assert (lat.double() - expect[i]).abs().max() < 1e-4, i      # float32 (as the official) vs float64
    assert torch.equal(lat, x0s[-1])        # the last step returns x0
    # the draw count: the generator is exactly 1 + 2·(n−2) draws further on
    g2 = torch.Generator().manual_seed(11)
    for _ in range(1 + 2 * (n - 2)):
        torch.randn(shape, generator=g2)
    assert torch.equal(torch.randn(3, generator=g2), torch.randn(3, generator=st.generator))
