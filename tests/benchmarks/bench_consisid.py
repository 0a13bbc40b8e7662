"""Speed and parity of the pack's ConsisID sampler against diffusers' ``ConsisIDPipeline`` (issue 4).

One process, identical random weights, identical inputs and seed:

    python -m tests.benchmarks.bench_consisid            # CPU medium config (~35 M params, 5×32×32 latents)
    python -m tests.benchmarks.bench_consisid --full     # real ConsisID + Wan-1.3B sizes, bf16, needs a GPU

Prints the per-step time ratio (ours / diffusers), max|Δ| of the final latents, peak RSS; the cached sampler's
ratio, fraction of transformer evaluations skipped and the relative change of the latents; the DiT step's achieved
FLOP/s against the same run's measured GEMM FLOP/s. ``--full`` adds peak device memory per memory mode.

A step is timed between successive calls of the transformer's ``time_proj`` (the first thing both forwards do each
step), so it covers the forward, the CFG combine and the scheduler step on both sides, and nothing else.
Both sides stop at the latents (``output_type="latent"``): decoding is not part of a step.
Not a pytest test: run on purpose. ``tests/test_bench_smoke.py`` runs it at a micro config so it cannot rot.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np
import torch

VIT_TOKENS = 577  # EVA02-CLIP-L-14-336: 24×24 patches + class token


@dataclass
class BenchConfig:
    name: str
    transformer: dict
    vae: dict
    latent_frames: int
    latent_hw: tuple[int, int]
    steps: int = 50
    dtype: str = "float32"
    device: str = "cpu"
    eva_embed: int = 768          # the EVA projection width (id_cond = 512 ArcFace + this)

    @property
    def size(self) -> tuple[int, int, int]:
        """(width, height, frames) of the video."""
        s = 2 ** (len(self.vae["block_out_channels"]) - 1)
        return self.latent_hw[1] * s, self.latent_hw[0] * s, (self.latent_frames - 1) * 4 + 1


def _consisid_tf(heads, head_dim, layers, latent_hw, frames, text_dim, time_dim, latent_ch, lfe: dict) -> dict:
    return dict(num_attention_heads=heads, attention_head_dim=head_dim, in_channels=2 * latent_ch,
                out_channels=latent_ch, time_embed_dim=time_dim, text_embed_dim=text_dim, num_layers=layers,
                sample_width=latent_hw[1], sample_height=latent_hw[0], sample_frames=(frames - 1) * 4 + 1,
                patch_size=2, temporal_compression_ratio=4, max_text_seq_length=226,
                use_rotary_positional_embeddings=True, use_learned_positional_embeddings=True, is_train_face=True,
                is_kps=False, cross_attn_interval=2, local_face_scale=1.0, **lfe)


def _tiny_vae(latent_ch: int) -> dict:
    return dict(in_channels=3, out_channels=3, latent_channels=latent_ch, block_out_channels=(8, 8, 16, 16),
                layers_per_block=1, norm_num_groups=4, temporal_compression_ratio=4, scaling_factor=0.7,
                down_block_types=("CogVideoXDownBlock3D",) * 4, up_block_types=("CogVideoXUpBlock3D",) * 4)


MEDIUM_LFE = dict(cross_attn_dim_head=32, cross_attn_num_heads=8, LFE_id_dim=512 + 128, LFE_vit_dim=128,
                  LFE_depth=10, LFE_dim_head=32, LFE_num_heads=4, LFE_num_id_token=5, LFE_num_querie=32,
                  LFE_output_dim=256, LFE_ff_mult=4, LFE_num_scale=5)
# The CPU config: ~35 M parameters, latent frames × 32 × 32 where diffusers takes ~1.3 s per step on 2 cores.
# The issue says 4 latent frames; ConsisID clips are 8k+1 frames (CogVideoX's VAE decodes an even latent count to 4k
# frames), so the nearest valid clip is 17 frames = 5 latent frames of 32 × 32 (256 × 256 px): 226 text + 1280 video
# tokens per branch, both CFG branches batched.
MEDIUM = BenchConfig("cpu-medium", _consisid_tf(8, 48, 12, (32, 32), 5, 128, 128, 4, MEDIUM_LFE),
                     _tiny_vae(4), latent_frames=5, latent_hw=(32, 32), eva_embed=128)
MICRO_LFE = dict(cross_attn_dim_head=16, cross_attn_num_heads=2, LFE_id_dim=512 + 16, LFE_vit_dim=16,
                 LFE_depth=10, LFE_dim_head=8, LFE_num_heads=2, LFE_num_id_token=5, LFE_num_querie=4,
                 LFE_output_dim=32, LFE_ff_mult=2, LFE_num_scale=5)
MICRO = BenchConfig("micro", _consisid_tf(3, 16, 2, (8, 8), 1, 16, 16, 4, MICRO_LFE), _tiny_vae(4),
                    latent_frames=1, latent_hw=(8, 8), steps=1, eva_embed=16)
# ConsisID-preview (reference notes): 48×64 heads, 42 layers, 4096-d T5, 49×480×720 → 13×60×90 latents.
FULL_LFE = dict(cross_attn_dim_head=128, cross_attn_num_heads=16, LFE_id_dim=1280, LFE_vit_dim=1024, LFE_depth=10,
                LFE_dim_head=64, LFE_num_heads=16, LFE_num_id_token=5, LFE_num_querie=32, LFE_output_dim=2048,
                LFE_ff_mult=4, LFE_num_scale=5)
FULL_CONSISID = BenchConfig("consisid-full", _consisid_tf(48, 64, 42, (60, 90), 13, 4096, 512, 16, FULL_LFE),
                            _tiny_vae(16), latent_frames=13, latent_hw=(60, 90), dtype="bfloat16",
                            device="cuda")
# Wan2.1-T2V-1.3B: dim 1536 (12×128), FFN 8960, 30 layers; 81×480×832 → 21×60×104 latents.
WAN_1_3B = dict(patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16,
                out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True,
                qk_norm="rms_norm_across_heads", eps=1e-6)
# Wan2.1-T2V-14B / Phantom-Wan-14B: dim 5120 (40×128), FFN 13824, 40 layers (Phantom configs/wan_s2v_14B.py).
WAN_14B = {**WAN_1_3B, "num_attention_heads": 40, "ffn_dim": 13824, "num_layers": 40}


@dataclass
class RunResult:
    latents: torch.Tensor
    intervals: np.ndarray         # seconds per step
    peak_rss_mb: float
    peak_device_mb: float | None = None
    stats: object = None
    extra: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ measuring
def _reset_peak_rss() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")     # Linux: resets VmHWM
    except OSError:
        pass


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class StepClock:
    """Timestamps of each ``time_proj`` call (one per denoising step on both sides)."""

    def __init__(self, transformer, device):
        self.times: list[float] = []
        self.device = torch.device(device)
        self._h = transformer.time_proj.register_forward_pre_hook(self._tick)

    def _tick(self, *_):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self.times.append(time.perf_counter())

    def stop(self, end: float) -> np.ndarray:
        """Seconds of each step from the second on (the first carries one-off warm-up)."""
        self._h.remove()
        t = self.times + [end]
        return np.diff(t[1:]) if len(t) > 2 else np.diff(t)


def gemm_flops(m: int, k: int, n: int, dtype, device, seconds: float = 1.0, onednn: bool = False) -> float:
    """Measured FLOP/s of one [m,k]×[k,n] matmul, the shape of the DiT's FFN up-projection.

    ``onednn``: through oneDNN (what the pack's CPU linears use) instead of ``torch.mm`` (the build's BLAS)."""
    a = torch.randn(m, k, dtype=dtype, device=device)
    b = torch.randn(k, n, dtype=dtype, device=device)
    if onednn:
        bt = b.t().contiguous()

        def mm():
            torch.ops.mkldnn._linear_pointwise(a, bt, None, "none", [], "")
    else:
        def mm():
            torch.mm(a, b)
    mm()
    best, start = float("inf"), time.perf_counter()
    while time.perf_counter() - start < seconds or best == float("inf"):
        t0 = time.perf_counter()
        mm()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)      # the least disturbed repetition (shared machines)
    return 2.0 * m * k * n / best


def step_flops(adapter, x, t) -> float:
    """FLOPs of one batched DiT forward (counted by torch's FlopCounterMode: matmuls and attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        adapter.forward(x, t)
    return float(counter.get_total_flops())


# ------------------------------------------------------------------------------------------------ building
def build_consisid(cfg: BenchConfig):
    from diffusers import AutoencoderKLCogVideoX, ConsisIDTransformer3DModel

    from idvideo_core.backbones.base import LoadedModel
    from idvideo_core.testing.tiny_consisid import SCHEDULER_CONFIG, randomise

    dtype, device = getattr(torch, cfg.dtype), torch.device(cfg.device)
    w, h, _ = cfg.size
    tf = ConsisIDTransformer3DModel(**cfg.transformer)
    randomise(tf, 0, 0.02 if cfg.name.endswith("full") else 0.05)
    vae = randomise(AutoencoderKLCogVideoX(**cfg.vae, sample_height=h, sample_width=w), 1, 0.1)
    tf = tf.to(device, dtype).eval()
    vae = vae.to(device, dtype).eval()
    return LoadedModel(family="consisid", transformer=tf, vae=vae, scheduler_config=dict(SCHEDULER_CONFIG),
                       dtype=dtype, device=device)


@dataclass
class Inputs:
    face: np.ndarray
    text: object                  # TextEmbeds
    local: object                 # LocalIdentity


def make_inputs(cfg: BenchConfig, model) -> Inputs:
    from idvideo_core.types import LocalIdentity, TextEmbeds

    g = torch.Generator().manual_seed(3)
    tc = model.transformer.config
    text = TextEmbeds(prompt_embeds=torch.randn(1, 226, tc.text_embed_dim, generator=g).to(model.device, model.dtype),
                      negative_embeds=torch.randn(1, 226, tc.text_embed_dim, generator=g).to(model.device,
                                                                                              model.dtype))
    local = LocalIdentity(id_cond=torch.randn(1, tc.LFE_id_dim, generator=g),
                          id_vit_hidden=[torch.randn(1, VIT_TOKENS, tc.LFE_vit_dim, generator=g)
                                         for _ in range(tc.LFE_num_scale)])
    face = np.random.default_rng(1).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    return Inputs(face, text, local)


# ------------------------------------------------------------------------------------------------ running
def _device_peak_reset(device):
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _device_peak_mb(device) -> float | None:
    if device.type == "cuda":
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / 2 ** 20
    return None


def run_diffusers(cfg: BenchConfig, model, inp: Inputs, steps: int, seed: int = 7) -> RunResult:
    import PIL.Image
    from diffusers import CogVideoXDPMScheduler, ConsisIDPipeline

    w, h, f = cfg.size
    pipe = ConsisIDPipeline(tokenizer=None, text_encoder=None, vae=model.vae, transformer=model.transformer,
                            scheduler=CogVideoXDPMScheduler.from_config(model.scheduler_config))
    pipe.set_progress_bar_config(disable=True)
    dev = model.device
    _reset_peak_rss()
    _device_peak_reset(dev)
    clock = StepClock(model.transformer, dev)
    out = pipe(image=PIL.Image.fromarray(inp.face), prompt_embeds=inp.text.prompt_embeds,
               negative_prompt_embeds=inp.text.negative_embeds, height=h, width=w, num_frames=f,
               num_inference_steps=steps, guidance_scale=6.0, generator=torch.Generator("cpu").manual_seed(seed),
               id_vit_hidden=[t.to(dev, model.dtype) for t in inp.local.id_vit_hidden],
               id_cond=inp.local.id_cond.to(dev, model.dtype), output_type="latent").frames
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return RunResult(out.float().cpu(), clock.stop(time.perf_counter()), _peak_rss_mb(), _device_peak_mb(dev))


def run_ours(cfg: BenchConfig, model, inp: Inputs, steps: int, threshold: float = 0.0, seed: int = 7,
             memory_mode=None) -> RunResult:
    """``memory_mode``: None (all on the device), a mode name (planned for this device's free memory) or a ready
    :class:`~idvideo_core.memory.MemoryPlan` (e.g. planned for a simulated 12 GB card)."""
    import contextlib

    from idvideo_core.backbones.consisid.generate import (
        ConsisIDSettings,
        encode_global_identity,
        sample_consisid,
    )
    from idvideo_core.sampling.cache import CONSISID, make_cache

    w, h, f = cfg.size
    dev = model.device
    ident = encode_global_identity(model, inp.face, w, h)
    cache = make_cache(CONSISID, steps, threshold)
    settings = ConsisIDSettings(width=w, height=h, num_frames=f, steps=steps, cfg=6.0, seed=seed)
    use = contextlib.nullcontext()
    if memory_mode is not None:
        from idvideo_core.memory import ModelManager, MemoryPlan, plan_and_manage

        if isinstance(memory_mode, MemoryPlan):
            model.memory = ModelManager(memory_mode)
            model.memory.add("transformer", model.transformer, blocks="transformer_blocks")
        else:
            model.memory = plan_and_manage({"transformer": (model.transformer, "transformer_blocks")}, memory_mode,
                                           dev)
        use = model.memory.use("transformer")
    _reset_peak_rss()
    _device_peak_reset(dev)
    clock = StepClock(model.transformer, dev)
    with use:
        out = sample_consisid(model, inp.text, ident, inp.local, settings, progress=False, cache=cache)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    res = RunResult(out.float().cpu(), clock.stop(time.perf_counter()), _peak_rss_mb(), _device_peak_mb(dev),
                    cache.stats if cache else None)
    if memory_mode is not None:
        res.extra["plan"] = model.memory.summary()
        model.memory.close()          # hooks off, weights parked: the next mode starts clean (not from our hooks)
        model.memory = None
    return res


def dit_efficiency(cfg: BenchConfig, model, inp: Inputs, step_s: float) -> tuple[float, float, float]:
    """(FLOPs per step, achieved FLOP/s, measured GEMM FLOP/s)."""
    from diffusers import CogVideoXDPMScheduler

    from idvideo_core.backbones.consisid.adapter import ConsisIDAdapter
    from idvideo_core.sampling.steppers import make_stepper

    tc = model.transformer.config
    lh, lw = cfg.latent_hw
    ch = tc.out_channels
    dev, dt = model.device, model.dtype
    sched = CogVideoXDPMScheduler.from_config(model.scheduler_config)
    sched.set_timesteps(cfg.steps, device=dev)
    img = torch.zeros(1, cfg.latent_frames, ch, lh, lw, device=dev, dtype=dt)
    ad = ConsisIDAdapter(model.transformer, make_stepper(sched), inp.text.prompt_embeds, inp.text.negative_embeds,
                         img, inp.local, 6.0)
    x = torch.zeros(2, cfg.latent_frames, 2 * ch, lh, lw, device=dev, dtype=dt)
    flops = step_flops(ad, x, torch.tensor([500, 500], device=dev))
    dim = tc.num_attention_heads * tc.attention_head_dim
    tokens = 2 * (226 + cfg.latent_frames * (lh // 2) * (lw // 2))
    gemm = gemm_flops(tokens, dim, 4 * dim, dt, dev)
    if dev.type == "cpu" and dt == torch.float32:
        from idvideo_core.cpu_kernels import available

        if available():               # the faster of the two is this machine's GEMM ceiling
            gemm = max(gemm, gemm_flops(tokens, dim, 4 * dim, dt, dev, onednn=True))
    return flops, flops / step_s, gemm


# ------------------------------------------------------------------------------------------------ reporting
def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


def timed_rounds(cfg: BenchConfig, model, inp: Inputs, steps: int, rounds: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-step times of diffusers and ours, alternating short runs so both see the same machine load."""
    d, o = [], []
    for _ in range(rounds):
        d.append(run_diffusers(cfg, model, inp, steps).intervals)
        o.append(run_ours(cfg, model, inp, steps).intervals)
    return np.concatenate(d), np.concatenate(o)


def bench_consisid(cfg: BenchConfig, steps: int, threshold: float, memory_modes=(), rounds: int = 3,
                   timing_steps: int = 10) -> dict:
    """Timing from alternating short runs (min and median per step); parity and cache from full-length runs."""
    torch.manual_seed(0)
    model = build_consisid(cfg)
    n_params = sum(p.numel() for p in model.transformer.parameters())
    inp = make_inputs(cfg, model)
    if steps > 1:                       # warm both paths (allocator, oneDNN/cuBLAS plans) before timing
        run_diffusers(cfg, model, inp, 2)
        run_ours(cfg, model, inp, 2)
    d_int, o_int = timed_rounds(cfg, model, inp, min(timing_steps, steps), rounds if steps > 1 else 1)
    ref = run_diffusers(cfg, model, inp, steps)
    ours = run_ours(cfg, model, inp, steps)
    cached = run_ours(cfg, model, inp, steps, threshold=threshold)
    d_min, o_min = float(d_int.min()), float(o_int.min())
    flops, achieved, gemm = dit_efficiency(cfg, model, inp, o_min)
    stats = cached.stats
    skipped = stats.skipped if stats else 0
    evals = stats.evaluations if stats else steps
    # a cached run mixes full steps and skipped ones: estimate its step from the least disturbed step of each kind
    skip_min = float(cached.intervals.min()) if skipped else o_min
    cached_est = (evals * o_min + skipped * skip_min) / (evals + skipped)
    r = dict(config=cfg.name, params_m=n_params / 1e6, size=cfg.size, latents=tuple(ours.latents.shape),
             steps=steps, dtype=cfg.dtype, device=str(model.device), threads=torch.get_num_threads(),
             timing=f"{rounds if steps > 1 else 1} alternating rounds of {min(timing_steps, steps)} steps",
             diffusers_min_s=d_min, ours_min_s=o_min, ratio=o_min / d_min,
             diffusers_median_s=float(np.median(d_int)), ours_median_s=float(np.median(o_int)),
             ratio_median=float(np.median(o_int) / np.median(d_int)),
             max_abs_diff=float((ours.latents - ref.latents).abs().max()),
             rss_diffusers_mb=ref.peak_rss_mb, rss_ours_mb=ours.peak_rss_mb,
             cached_step_s=cached_est, cached_ratio=cached_est / d_min,
             cached_wall_ratio=float(cached.intervals.mean() / ours.intervals.mean()), threshold=threshold,
             skipped=skipped, evaluations=evals, fraction_skipped=stats.fraction_skipped if stats else 0.0,
             cached_rel_change=_rel(cached.latents, ours.latents),
             step_gflop=flops / 1e9, achieved_gflops=achieved / 1e9, gemm_gflops=gemm / 1e9,
             device_peak_mb={"diffusers": ref.peak_device_mb, "ours (gpu)": ours.peak_device_mb})
    for mode in memory_modes:
        res = run_ours(cfg, model, inp, steps, memory_mode=mode)
        r["device_peak_mb"][f"ours ({mode})"] = res.peak_device_mb
        r[f"step_s_{mode}"] = float(np.median(res.intervals))
        r["ours_median_full_s"] = float(np.median(ours.intervals))
    return r


def bench_compiled(cfg: BenchConfig, steps: int = 10, rounds: int = 2) -> dict:
    """``compile_blocks``: compile time, min step eager vs compiled, max|Δ| of the latents (same steps)."""
    from idvideo_core.attention import compile_blocks

    model = build_consisid(cfg)
    inp = make_inputs(cfg, model)
    run_ours(cfg, model, inp, 2)
    eager = [run_ours(cfg, model, inp, steps) for _ in range(rounds)]
    start = time.perf_counter()
    compile_blocks(model.transformer, "consisid", True)
    run_ours(cfg, model, inp, 2)
    compile_s = time.perf_counter() - start
    comp = [run_ours(cfg, model, inp, steps) for _ in range(rounds)]
    e_min = min(float(r.intervals.min()) for r in eager)
    c_min = min(float(r.intervals.min()) for r in comp)
    return dict(compile_s=compile_s, eager_min_s=e_min, compiled_min_s=c_min, ratio=c_min / e_min,
                max_abs_diff=float((comp[0].latents - eager[0].latents).abs().max()))


def print_report(r: dict) -> None:
    w, h, f = r["size"]
    print(f"== ConsisID {r['config']}: {r['params_m']:.1f} M transformer params, video {f}x{h}x{w}, latents "
          f"{r['latents']}, {r['steps']} steps, {r['dtype']} on {r['device']} ({r['threads']} threads)")
    print(f"per-step time ({r['timing']})")
    print(f"  min:    diffusers {r['diffusers_min_s']:.3f} s   ours {r['ours_min_s']:.3f} s   "
          f"ratio ours/diffusers {r['ratio']:.3f}")
    print(f"  median: diffusers {r['diffusers_median_s']:.3f} s   ours {r['ours_median_s']:.3f} s   "
          f"ratio {r['ratio_median']:.3f}")
    print(f"max|Δ| latents ({r['steps']} steps)  {r['max_abs_diff']:.3e}")
    print(f"peak RSS        diffusers {r['rss_diffusers_mb']:.0f} MB   ours {r['rss_ours_mb']:.0f} MB")
    print(f"cached (threshold {r['threshold']:g}): skipped {r['skipped']}/{r['skipped'] + r['evaluations']} "
          f"= {100 * r['fraction_skipped']:.0f} %   relative change of latents {r['cached_rel_change']:.3e}")
    print(f"  step {r['cached_step_s']:.3f} s (from min step times)   ratio to diffusers {r['cached_ratio']:.3f}   "
          f"wall-clock mean vs uncached {r['cached_wall_ratio']:.3f}")
    print(f"DiT step        {r['step_gflop']:.1f} GFLOP   achieved {r['achieved_gflops']:.1f} GFLOP/s   "
          f"measured GEMM {r['gemm_gflops']:.1f} GFLOP/s   ({100 * r['achieved_gflops'] / r['gemm_gflops']:.0f} %)")
    peaks = {k: v for k, v in r["device_peak_mb"].items() if v is not None}
    if peaks:
        print("peak device memory " + "   ".join(f"{k} {v / 1024:.2f} GB" for k, v in peaks.items()))
        for k, v in r.items():
            if k.startswith("step_s_"):
                print(f"  {k[7:]}: {v:.3f} s/step ({v / r['ours_median_full_s']:.2f}x unswapped)")


# ------------------------------------------------------------------------------------------------ Wan (full only)
def bench_wan_full(steps: int, threshold: float, memory_modes=(), config: dict = WAN_1_3B,
                   latent_shape=(21, 60, 104), device="cuda", dtype=torch.bfloat16) -> dict:
    """Wan-1.3B DiT at 81×480×832 (batched CFG, bf16): our step time and peak device memory per mode."""
    from diffusers import WanTransformer3DModel

    from idvideo_core.backbones.wan.transformer import WanDiT
    from idvideo_core.sampling.cache import make_cache, wan_rule
    from idvideo_core.testing.tiny_consisid import randomise

    dev, dt = torch.device(device), dtype
    base = randomise(WanTransformer3DModel(**config), 0, 0.02).to(dev, dt).eval()
    dit = WanDiT(base)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, config["in_channels"], *latent_shape, generator=g).to(dev, dt)
    ctx = torch.randn(2, 512, config["text_dim"], generator=g).to(dev, dt)
    ts = torch.linspace(999, 1, steps)
    out = {}

    def loop(cache=None):
        _device_peak_reset(dev)
        start = time.perf_counter()
        with torch.no_grad():
            for t in ts:
                dit(x, t.expand(2).to(dev), ctx, cache=cache) if cache else dit(x, t.expand(2).to(dev), ctx)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / steps, _device_peak_mb(dev)

    out["step_s"], out["peak_mb"] = loop()
    out["peak_mb"] = out["peak_mb"] or 0.0
    cache = make_cache(wan_rule(len(base.blocks)), steps, threshold or wan_rule(len(base.blocks)).default_threshold)
    out["cached_step_s"], _ = loop(cache)
    out["fraction_skipped"] = cache.stats.fraction_skipped
    from idvideo_core.memory import plan_and_manage

    for mode in memory_modes:
        mgr = plan_and_manage({"transformer": (base, "blocks")}, mode, dev)
        with mgr.use("transformer"):
            out[f"step_s_{mode}"], out[f"peak_mb_{mode}"] = loop()
        mgr.close()                   # hooks off before the next mode's manager
        out[f"peak_mb_{mode}"] = out[f"peak_mb_{mode}"] or 0.0
    return out


# ------------------------------------------------------------------------------------------------ main
def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true", help="real ConsisID and Wan-1.3B sizes on a GPU (bf16)")
    ap.add_argument("--steps", type=int, default=None, help="denoising steps (default 50; micro: 1)")
    ap.add_argument("--threshold", type=float, default=0.1, help="cache threshold (ConsisID default 0.1)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating timing rounds (default 3)")
    ap.add_argument("--timing-steps", type=int, default=10, help="steps per timing round (default 10)")
    ap.add_argument("--compile", action="store_true", help="also time compile_blocks (torch.compile per block)")
    ap.add_argument("--config", choices=("medium", "micro"), default="medium", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.full:
        if not torch.cuda.is_available():
            print("--full needs a CUDA GPU (none found); run the CPU medium config without --full.")
            return {}
        cfg = FULL_CONSISID
        modes = ("model_offload", "block_swap", "sequential")
        r = bench_consisid(dataclasses.replace(cfg, steps=args.steps or 50), args.steps or 50, args.threshold,
                           modes, args.rounds, args.timing_steps)
        print(f"device: {torch.cuda.get_device_name()}")
        print_report(r)
        w = bench_wan_full(args.steps or 50, 0.0, modes)
        print("== Wan2.1-1.3B DiT, 81×480×832, batched CFG, bf16: " + "   ".join(
            f"{k} {v:.3f}" for k, v in w.items()))
        r["wan"] = w
        return r
    cfg = MEDIUM if args.config == "medium" else MICRO
    steps = args.steps or (50 if args.config == "medium" else cfg.steps)
    try:
        import subprocess

        cpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model_name = next((ln.split(":", 1)[1].strip() for ln in cpu.splitlines() if ln.startswith("Model name")),
                          "?")
    except (OSError, StopIteration):
        model_name = "?"
    print(f"machine: {model_name}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    r = bench_consisid(dataclasses.replace(cfg, steps=steps), steps, args.threshold, (), args.rounds,
                       args.timing_steps)
    print_report(r)
    if args.compile:
        c = bench_compiled(cfg)
        r["compiled"] = c
        print(f"compile_blocks  compile + 2 steps {c['compile_s']:.1f} s   min step eager {c['eager_min_s']:.3f} s   "
              f"compiled {c['compiled_min_s']:.3f} s   ratio {c['ratio']:.3f}   max|Δ| {c['max_abs_diff']:.2e}")
    return r


if __name__ == "__main__":
    main()
