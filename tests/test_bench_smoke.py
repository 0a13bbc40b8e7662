"""The benchmark must not rot: run it at a micro config, one step (no timing assertions)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch


def test_benchmark_runs_at_micro_config(capsys):
    path = Path(__file__).parent / "benchmarks" / "bench_consisid.py"
    spec = importlib.util.spec_from_file_location("bench_consisid", path)
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench          # dataclasses look their module up there
    spec.loader.exec_module(bench)
    r = bench.main(["--config", "micro", "--steps", "1"])
    out = capsys.readouterr().out
    assert "ratio ours/diffusers" in out and "GEMM" in out and "skipped" in out
    assert r["max_abs_diff"] <= 1e-4                     # same weights, same seed: the reference result
    assert r["step_gflop"] > 0 and r["gemm_gflops"] > 0


def test_full_only_paths_run_tiny_on_cpu():
    """--full's memory-mode runs and the Wan DiT timing, at tiny sizes on the CPU (nothing moves there)."""
    path = Path(__file__).parent / "benchmarks" / "bench_consisid.py"
    spec = importlib.util.spec_from_file_location("bench_consisid_full", path)
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench
    spec.loader.exec_module(bench)
    modes = ("model_offload", "block_swap", "sequential")
    r = bench.bench_consisid(bench.MICRO, 2, 0.1, modes, rounds=1, timing_steps=2)
    assert all(f"step_s_{m}" in r for m in modes)
    from idvideo_core.testing.tiny_wan import TINY_DIT

    w = bench.bench_wan_full(3, 0.0, modes, config=TINY_DIT, latent_shape=(2, 8, 8), device="cpu",
                             dtype=torch.float32)
    assert 0.0 <= w["fraction_skipped"] <= 1.0 and all(f"step_s_{m}" in w for m in modes)


def test_gpu_run_runs_at_micro_size_on_cpu(capsys):
    """The one prepared GPU command (tests/benchmarks/gpu_run.py) at micro size: every section runs and prints."""
    path = Path(__file__).parent / "benchmarks" / "gpu_run.py"
    spec = importlib.util.spec_from_file_location("gpu_run", path)
    run = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = run
    spec.loader.exec_module(run)
    r = run.main(["--micro"])
    out = capsys.readouterr().out
    for part in ("== 1. ConsisID", "projected 50-step clip", "== 2. block swap", "== 3. Phantom-Wan DiT",
                 "fp8 weights", "== 4. distilled 4-step clip", "wall time"):
        assert part in out, part
    c, p = r["consisid"], r["phantom14b"]
    assert c["max_abs_diff"] <= 1e-4                     # ours vs diffusers on the same device-built weights
    assert p["fp8_step_s"] > 0 and p["distilled_4_step_clip_s"] == 4 * p["one_pass_s"] + p["decode_s"]
    assert "20 Linear layers stored in fp8" in p["fp8_summary"]
