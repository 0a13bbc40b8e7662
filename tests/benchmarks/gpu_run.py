"""One prepared GPU run for every figure still missing (issue 11 item 7); estimated ~5 min on an H100 (≤ 8 by design).

    python -m tests.benchmarks.gpu_run             # needs a CUDA GPU with ≥ 60 GB (H100/H200/A100-80G)
    python -m tests.benchmarks.gpu_run --micro     # tiny sizes on the CPU: every code path, figures meaningless

Prints, with the device name:
  1. full ConsisID (42 × 3072, 49×480×720, batched CFG, bf16): our per-step time against diffusers' ConsisIDPipeline
     on the same weights, and the projected 50-step clip = 50 × our step + the full-size CogVideoX VAE decode
     (tiled, as the plan does) — target ≤ 80 s on an H100 (the paper's 115 s); face analysis and T5 excluded;
  2. the same sampler with block swap planned by ``auto`` for a 12 GB card (11 GiB free, simulated): peak device
     memory (target ≤ 12 GB) and the slowdown against everything resident (target ≤ 1.3×);
  3. Phantom-Wan-14B's DiT step (832×480×121 + 4 references, the three CFG branches batched) in bf16 and with the
     block Linear weights stored in fp8 (memory/fp8.py: upcast per layer, no fp8 matmul);
  4. the distilled 4-step clip: 4 × one 14B pass (CFG 1: one branch per step) + the full-size Wan VAE decode. The
     distilled sampler itself is another branch's work: this is computed from the measured pieces, and says so.

Weights are random and built directly on the device: each model is constructed inside ``torch.device(device)`` with
the default dtype set to bf16, so parameters and buffers are allocated and initialised by device kernels and no 5–14 B
parameter tensor ever exists on the CPU; the parameters are then re-drawn in place (N(0, 0.02), norms N(1, 0.02)).
(Constructing on ``meta`` and ``to_empty`` would leave the non-persistent buffers computed at construction — the RoPE
tables, CogVideoX's positional embedding — uninitialised.) ``tests/test_bench_smoke.py`` runs ``--micro`` in CI.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from tests.benchmarks import bench_consisid as bc  # noqa: E402

GIB = 1024 ** 3


def build_on_device(cls, config: dict, device, dtype, std: float = 0.02, seed: int = 0):
    """``cls(**config)`` allocated and initialised on ``device`` in ``dtype``, parameters re-drawn in place."""
    prev = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            m = cls(**config)
    finally:
        torch.set_default_dtype(prev)
    g = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.is_floating_point():
                p.normal_(1.0 if ("norm" in name and p.ndim == 1) else 0.0, std, generator=g)
    return m.eval().requires_grad_(False)


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _peak_reset(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_gb(device) -> float | None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / 1e9
    return None


def _timed(fn, device, repeats: int, warmup: bool = True) -> float:
    """Median seconds of ``fn`` over ``repeats`` calls, after one warm-up call unless ``warmup`` is False (the VAE
    decodes: long single calls where a warm-up would double the run's time for little gain)."""
    with torch.no_grad():
        if warmup:
            fn()
            _sync(device)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


# ----------------------------------------------------------------------------------------------- configurations
@dataclasses.dataclass
class RunConfig:
    consisid: bc.BenchConfig
    consisid_vae: dict                     # AutoencoderKLCogVideoX kwargs for the decode
    wan: dict                              # WanTransformer3DModel kwargs (14B)
    wan_vae: dict                          # AutoencoderKLWan kwargs
    wan_clip: tuple                        # (latent frames, refs, latent h, latent w)
    card_free: int                         # simulated free memory for the 12 GB plan
    device: str
    dtype: torch.dtype
    steps: int = 4                         # timed ConsisID steps per run (after a 2-step warm-up)
    repeats: int = 2                       # timed 14B forwards per case (after one warm-up)


def full_config() -> RunConfig:
    from idvideo_core.backbones.phantom_wan.defaults import PHANTOM_14B

    frames = (PHANTOM_14B.frames - 1) // 4 + 1
    return RunConfig(bc.FULL_CONSISID, {}, bc.WAN_14B, {}, (frames, 4, PHANTOM_14B.height // 8, PHANTOM_14B.width // 8),
                     card_free=11 * GIB, device="cuda", dtype=torch.bfloat16)


def micro_config() -> RunConfig:
    from idvideo_core.testing.tiny_wan import TINY_DIT_14B_RATIO, TINY_VAE

    cogvae = dict(bc.MICRO.vae, sample_height=bc.MICRO.size[1], sample_width=bc.MICRO.size[0])
    return RunConfig(bc.MICRO, cogvae, TINY_DIT_14B_RATIO, TINY_VAE, (2, 1, 8, 8), card_free=11 * GIB,
                     device="cpu", dtype=torch.float32, steps=2, repeats=1)


# ----------------------------------------------------------------------------------------------- 1 + 2: ConsisID
def consisid_figures(rc: RunConfig) -> dict:
    from diffusers import AutoencoderKLCogVideoX, ConsisIDTransformer3DModel

    from idvideo_core.backbones.base import LoadedModel
    from idvideo_core.memory.estimate import default_workload
    from idvideo_core.memory.manager import model_sizes
    from idvideo_core.memory.modes import resolve_mode
    from idvideo_core.testing.tiny_consisid import SCHEDULER_CONFIG

    cfg = dataclasses.replace(rc.consisid, device=rc.device, dtype=str(rc.dtype).replace("torch.", ""))
    dev = torch.device(rc.device)
    w, h, f = cfg.size
    tf = build_on_device(ConsisIDTransformer3DModel, cfg.transformer, dev, rc.dtype)
    small_vae = build_on_device(AutoencoderKLCogVideoX, dict(cfg.vae, sample_height=h, sample_width=w), dev,
                                rc.dtype, std=0.1)
    model = LoadedModel(family="consisid", transformer=tf, vae=small_vae, scheduler_config=dict(SCHEDULER_CONFIG),
                        dtype=rc.dtype, device=dev)
    inp = bc.make_inputs(cfg, model)
    bc.run_diffusers(cfg, model, inp, 2)                  # warm both paths (allocator, cuBLAS/flash plans)
    bc.run_ours(cfg, model, inp, 2)
    ref = bc.run_diffusers(cfg, model, inp, rc.steps)
    _peak_reset(dev)
    ours = bc.run_ours(cfg, model, inp, rc.steps)
    out = dict(diffusers_step_s=float(np.median(ref.intervals)), ours_step_s=float(np.median(ours.intervals)),
               max_abs_diff=float((ours.latents - ref.latents).abs().max()), resident_peak_gb=_peak_gb(dev))
    # block swap as auto plans it for a 12 GB card (simulated free memory), the working reserve traced
    sizes = model_sizes({"transformer": (tf, "transformer_blocks")})
    sizes.working = default_workload("consisid", tf, torch.empty((), dtype=rc.dtype).element_size()).activation_bytes
    plan = resolve_mode("auto", sizes, dev, vram_state="normal", free_bytes=rc.card_free)
    _peak_reset(dev)
    swapped = bc.run_ours(cfg, model, inp, rc.steps, memory_mode=plan)
    out.update(plan=plan.describe(), blockswap_step_s=float(np.median(swapped.intervals)),
               blockswap_peak_gb=_peak_gb(dev), blocks_to_swap=plan.blocks_to_swap)
    out["slowdown"] = out["blockswap_step_s"] / out["ours_step_s"]
    model = tf = small_vae = inp = None
    _peak_reset(dev)
    # the clip's decode: the full-size CogVideoX VAE (diffusers' defaults are CogVideoX's), tiled as the plan does
    vae = build_on_device(AutoencoderKLCogVideoX, rc.consisid_vae, dev, rc.dtype, std=0.02)
    vae.enable_tiling()
    z = torch.randn(1, vae.config.latent_channels, cfg.latent_frames, *cfg.latent_hw, device=dev, dtype=rc.dtype)
    out["decode_s"] = _timed(lambda: vae.decode(z), dev, 1, warmup=False)
    out["clip_50_s"] = 50 * out["ours_step_s"] + out["decode_s"]
    vae = z = None
    _peak_reset(dev)
    return out


# ----------------------------------------------------------------------------------------------- 3 + 4: Phantom-14B
def phantom14b_figures(rc: RunConfig) -> dict:
    from diffusers import AutoencoderKLWan, WanTransformer3DModel

    from idvideo_core.backbones.wan.transformer import WanDiT
    from idvideo_core.memory.fp8 import quantize_module_fp8

    dev = torch.device(rc.device)
    frames, refs, lh, lw = rc.wan_clip
    dit = WanDiT(build_on_device(WanTransformer3DModel, rc.wan, dev, rc.dtype))
    params = sum(p.numel() for p in dit.parameters())
    g = torch.Generator(device=dev).manual_seed(1)

    def inputs(batch):
        x = torch.randn(batch, 16, frames, lh, lw, generator=g, device=dev, dtype=rc.dtype)
        r = torch.randn(batch, 16, refs, lh, lw, generator=g, device=dev, dtype=rc.dtype)
        ctx = torch.randn(batch, 512, rc.wan["text_dim"], generator=g, device=dev, dtype=rc.dtype)
        return x, torch.full((batch,), 500.0, device=dev), ctx, r

    three, one = inputs(3), inputs(1)
    out = dict(params_b=params / 1e9, tokens_per_branch=(frames + refs) * (lh // 2) * (lw // 2))
    _peak_reset(dev)
    out["bf16_step_s"] = _timed(lambda: dit(*three[:3], three[3], "phantom"), dev, rc.repeats)
    out["bf16_peak_gb"] = _peak_gb(dev)
    out["one_pass_s"] = _timed(lambda: dit(*one[:3], one[3], "phantom"), dev, rc.repeats)
    report = quantize_module_fp8(dit)
    out["fp8_summary"] = report.summary()
    _peak_reset(dev)
    out["fp8_step_s"] = _timed(lambda: dit(*three[:3], three[3], "phantom"), dev, rc.repeats)
    out["fp8_peak_gb"] = _peak_gb(dev)
    out["fp8_one_pass_s"] = _timed(lambda: dit(*one[:3], one[3], "phantom"), dev, rc.repeats)
    dit = three = one = None            # free the 14B before the VAE
    _peak_reset(dev)
    vae = build_on_device(AutoencoderKLWan, rc.wan_vae, dev, rc.dtype, std=0.02)
    z = torch.randn(1, 16, frames, lh, lw, device=dev, dtype=rc.dtype)
    out["decode_s"] = _timed(lambda: vae.decode(z), dev, 1, warmup=False)
    out["distilled_4_step_clip_s"] = 4 * out["one_pass_s"] + out["decode_s"]
    out["distilled_4_step_clip_fp8_s"] = 4 * out["fp8_one_pass_s"] + out["decode_s"]
    vae = z = None
    _peak_reset(dev)
    return out


# ----------------------------------------------------------------------------------------------- report
def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--micro", action="store_true", help="tiny sizes on the CPU (what CI runs)")
    args = ap.parse_args(argv)
    if args.micro:
        rc = micro_config()
        device_name = "CPU (micro sizes: figures are not meaningful)"
    else:
        if not torch.cuda.is_available():
            print("gpu_run needs a CUDA GPU (none found); `--micro` runs the same code on the CPU at tiny sizes.")
            return {}
        rc = full_config()
        device_name = torch.cuda.get_device_name()
    start = time.perf_counter()
    print(f"device: {device_name}, torch {torch.__version__}")
    c = consisid_figures(rc)
    t_c = time.perf_counter() - start
    w, h, f = rc.consisid.size
    dt = str(rc.dtype).replace("torch.", "")
    print(f"== 1. ConsisID {f}x{h}x{w}, batched CFG, {dt}: per step diffusers {c['diffusers_step_s']:.3f} s, "
          f"ours {c['ours_step_s']:.3f} s (ratio {c['ours_step_s'] / c['diffusers_step_s']:.3f}; max|Δ| latents "
          f"{c['max_abs_diff']:.2e})")
    print(f"   projected 50-step clip: 50 × {c['ours_step_s']:.3f} s + decode {c['decode_s']:.1f} s = "
          f"{c['clip_50_s']:.1f} s (target ≤ 80 s on an H100; paper 115 s; face + T5 not included)")
    pk = c["resident_peak_gb"]
    print(f"== 2. block swap planned for a 12 GB card ({rc.card_free / GIB:.0f} GiB free, simulated): "
          f"{c['blocks_to_swap']} blocks swapped; peak {c['blockswap_peak_gb'] or 0:.2f} GB (target ≤ 12; all "
          f"resident {pk or 0:.2f} GB); step {c['blockswap_step_s']:.3f} s = {c['slowdown']:.2f}× resident "
          f"(target ≤ 1.3×)")
    print("   " + c["plan"].replace("\n", "\n   "))
    p = phantom14b_figures(rc)
    frames, refs, lh, lw = rc.wan_clip
    print(f"== 3. Phantom-Wan DiT ({p['params_b']:.2f} B params), {(frames - 1) * 4 + 1} frames + {refs} refs at "
          f"{lw * 8}x{lh * 8} ({p['tokens_per_branch']} tokens per branch), 3 CFG branches batched: step {dt} "
          f"{p['bf16_step_s']:.2f} s (peak {p['bf16_peak_gb'] or 0:.1f} GB), fp8 weights {p['fp8_step_s']:.2f} s "
          f"(peak {p['fp8_peak_gb'] or 0:.1f} GB; {p['fp8_summary']})")
    print(f"== 4. distilled 4-step clip (computed: 4 × one CFG-1 pass + Wan VAE decode; the distilled sampler is not "
          f"merged here): {dt} 4 × {p['one_pass_s']:.2f} s + {p['decode_s']:.1f} s = "
          f"{p['distilled_4_step_clip_s']:.1f} s; fp8 4 × {p['fp8_one_pass_s']:.2f} s + {p['decode_s']:.1f} s = "
          f"{p['distilled_4_step_clip_fp8_s']:.1f} s")
    total = time.perf_counter() - start
    print(f"wall time {total:.0f} s (ConsisID part {t_c:.0f} s)")
    return dict(consisid=c, phantom14b=p, wall_s=total)


if __name__ == "__main__":
    main()
