"""Full-size ConsisID and Wan-1.3B forwards traced on fake tensors: activation peak, FLOPs, the 12 GB plan.

No GPU, no weights in memory, no compute: the real-size DiTs are built on fake tensors on a fake CUDA device and one
batched-CFG forward is followed by ``MemTracker`` (live activations) and ``FlopCounterMode``. Attention runs as the
flash kernel the GPU uses, so no N² score matrix is counted. These are predictions for a GPU, not measurements:

    python -m tests.benchmarks.trace_full

``tests/test_memory_estimate.py`` uses the same helpers to hold the planner's estimate to the traces.
"""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GIB = 1024 ** 3
CUDA = torch.device("cuda")
BF16 = dict(device=CUDA, dtype=torch.bfloat16)

from .bench_consisid import FULL_CONSISID, WAN_1_3B, WAN_14B  # noqa: E402  the benchmark's full-size configs

CONSISID_FULL = FULL_CONSISID.transformer


def _flash(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **_):
    if attn_mask is not None:
        raise NotImplementedError("the traced forwards have no attention mask")
    return torch.ops.aten._scaled_dot_product_flash_attention(query, key, value, dropout_p, is_causal, False,
                                                              scale=scale)[0]


@contextlib.contextmanager
def fake_cuda():
    """Fake tensors on a fake CUDA device, SDPA as the flash kernel; raises RuntimeError where that is impossible."""
    from torch._subclasses.fake_tensor import FakeTensorMode, unset_fake_temporarily

    from idvideo_core.backbones.wan import transformer as wan_tf

    positions, rotary = wan_tf.token_positions, wan_tf.rotary_at

    def real_positions(grid, mode):       # integer RoPE indices are data, not activations: computed for real
        with unset_fake_temporarily():
            return positions(grid, mode)

    def fake_rotary(rope_module, pos, device=None):
        """``rotary_at`` with its range check on the real indices (a fake tensor has no values to compare); the
        gather itself runs on the fake tables like the real one."""
        with unset_fake_temporarily():
            too_far = int(pos.max()) >= rope_module.freqs_cos.shape[0]
        if too_far:
            with unset_fake_temporarily():
                return rotary(rope_module, pos, device)           # raises the pack's own error
        split = [rope_module.t_dim, rope_module.h_dim, rope_module.w_dim]
        idx = pos.to(rope_module.freqs_cos.device)
        cos = torch.cat([c[idx[:, a]] for a, c in enumerate(rope_module.freqs_cos.split(split, dim=1))], dim=-1)
        sin = torch.cat([c[idx[:, a]] for a, c in enumerate(rope_module.freqs_sin.split(split, dim=1))], dim=-1)
        return cos[None, :, None, :].to(device), sin[None, :, None, :].to(device)

    saved = F.scaled_dot_product_attention
    F.scaled_dot_product_attention = _flash
    wan_tf.token_positions, wan_tf.rotary_at = real_positions, fake_rotary
    try:
        with FakeTensorMode(allow_non_fake_inputs=True):
            torch.empty(1, device=CUDA)
            yield
    finally:
        F.scaled_dot_product_attention = saved
        wan_tf.token_positions, wan_tf.rotary_at = positions, rotary
        torch.set_default_dtype(torch.float32)


def build(cls, **config):
    """A bf16 model with real shapes on the fake CUDA device (inside :func:`fake_cuda`)."""
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(CUDA):
            return cls(**config).eval()
    finally:
        torch.set_default_dtype(torch.float32)


def build_consisid():
    from diffusers import ConsisIDTransformer3DModel

    return build(ConsisIDTransformer3DModel, **CONSISID_FULL)


def build_wan(config: dict = WAN_1_3B):
    from diffusers import WanTransformer3DModel

    from idvideo_core.backbones.wan.transformer import WanDiT

    return WanDiT(build(WanTransformer3DModel, **config))


def consisid_step(tf, latent_frames: int = 13):
    """(forward closure, tensors to track) for one batched-CFG ConsisID step through the pack's adapter."""
    from diffusers import CogVideoXDPMScheduler

    from idvideo_core.backbones.consisid.adapter import ConsisIDAdapter
    from idvideo_core.sampling.steppers import make_stepper
    from idvideo_core.testing.tiny_consisid import SCHEDULER_CONFIG
    from idvideo_core.types import LocalIdentity

    c = tf.config
    sched = CogVideoXDPMScheduler.from_config(SCHEDULER_CONFIG)
    sched.set_timesteps(50)
    h, w = c.sample_height, c.sample_width
    img = torch.zeros(1, latent_frames, c.out_channels, h, w, **BF16)
    text = torch.zeros(1, c.max_text_seq_length, c.text_embed_dim, **BF16)
    local = LocalIdentity(id_cond=torch.zeros(1, c.LFE_id_dim),
                          id_vit_hidden=[torch.zeros(1, 577, c.LFE_vit_dim)] * c.LFE_num_scale)
    ad = ConsisIDAdapter(tf, make_stepper(sched), text, text, img, local, 6.0)
    x = torch.zeros(2, latent_frames, c.in_channels, h, w, **BF16)
    t = torch.tensor([500, 500], device=CUDA)
    return (lambda: ad.forward(x, t)), (tf, x, ad.text, ad.image_latents, ad.face_emb)


def wan_step(dit, latent_frames: int = 21, h: int = 60, w: int = 104, refs: int = 0, batch: int = 2,
             mode: str = "phantom"):
    """(forward closure, tensors to track) for one Wan step: ``batch`` CFG branches, ``refs`` reference frames
    appended (Phantom's +K frames; 0 = stock)."""
    x = torch.zeros(batch, 16, latent_frames, h, w, **BF16)
    ctx = torch.zeros(batch, 512, dit.config.text_dim, **BF16)
    t = torch.full((batch,), 500.0, device=CUDA)
    if not refs:
        return (lambda: dit(x, t, ctx)), (dit, x, ctx)
    r = torch.zeros(batch, 16, refs, h, w, **BF16)
    return (lambda: dit(x, t, ctx, r, mode)), (dit, x, ctx, r)


def activation_peak(fn, tracked) -> int:
    """Peak bytes of live activations on the (fake) CUDA device while ``fn`` runs."""
    from torch.distributed._tools.mem_tracker import MemTracker, _MemRefType

    mt = MemTracker()
    mt.track_external(*tracked)
    with mt, torch.no_grad():
        fn()
    peak = mt.get_tracker_snapshot("peak")
    dev = next(v for k, v in peak.items() if torch.device(k).type == "cuda")
    return int(dev[_MemRefType.ACT])


def flops(fn) -> dict[str, float]:
    """FLOPs of ``fn`` by op (``total`` included)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc, torch.no_grad():
        fn()
    by_op = {str(op): float(n) for op, n in fc.get_flop_counts().get("Global", {}).items()}
    by_op["total"] = float(fc.get_total_flops())
    return by_op


def plan_for(tf, free_bytes: int, working_bytes: int):
    """(plan, sizes, resident bytes incl. one prefetched block) of ``auto`` for the transformer alone on a card with
    ``free_bytes`` free; ``working_bytes`` 0 = the planner's fallback reserve (15 % of free)."""
    from idvideo_core.memory.manager import model_sizes
    from idvideo_core.memory.modes import ModelSizes, resolve_mode

    sizes = model_sizes({"transformer": (tf, "transformer_blocks")})
    sizes = ModelSizes(**{**sizes.__dict__, "working": working_bytes})
    plan = resolve_mode("auto", sizes, CUDA, vram_state="normal", free_bytes=free_bytes)
    prefetch = sizes.block_bytes if plan.blocks_to_swap else 0
    resident = sizes.transformer - plan.blocks_to_swap * sizes.block_bytes + prefetch
    return plan, sizes, resident


def main() -> dict:
    from idvideo_core.memory.estimate import default_workload, workload

    out: dict = {}
    with fake_cuda():
        tf = build_consisid()
        fn, tracked = consisid_step(tf)
        est = default_workload("consisid", tf, 2).activation_bytes
        out["consisid"] = dict(peak=activation_peak(fn, tracked), estimate=est, flops=flops(fn))
        f = out["consisid"]["flops"]
        print(f"ConsisID 49x480x720, 2 branches: activations {out['consisid']['peak'] / GIB:.2f} GiB traced, "
              f"{est / GIB:.2f} GiB estimated; {f['total'] / 1e12:.0f} TFLOP per step "
              f"(linears {(f.get('aten.addmm', 0) + f.get('aten.mm', 0)) / 1e12:.0f}, attention "
              f"{f.get('aten._scaled_dot_product_flash_attention', 0) / 1e12:.0f}); 50 steps in 80 s need "
              f"{50 * f['total'] / 80 / 1e12:.0f} TFLOP/s")
        fn7, tracked7 = consisid_step(tf, 7)
        print(f"  25x480x720 (9 676 tokens per branch): activations {activation_peak(fn7, tracked7) / GIB:.2f} GiB")
        free = 12 * 10 ** 9
        for label, work in (("15 % of free (the old rule)", 0), ("the traced estimate", est)):
            plan, sizes, resident = plan_for(tf, free, work)
            print(f"  12 GB free, reserve = {label}: {plan.mode.value}, {plan.blocks_to_swap} blocks swapped, "
                  f"resident + prefetch {resident / GIB:.2f} GiB, predicted peak {(resident + est) / 1e9:.2f} GB")
        dit = build_wan()
        fn, tracked = wan_step(dit)
        est_bytes = workload("wan", dit, 2, 832, 480, 81, references=0).activation_bytes
        out["wan"] = dict(peak=activation_peak(fn, tracked), flops=flops(fn))
        print(f"Wan-1.3B 81x480x832, 2 branches: activations {out['wan']['peak'] / GIB:.2f} GiB traced, "
              f"{est_bytes / GIB:.2f} GiB estimated; {out['wan']['flops']['total'] / 1e12:.0f} TFLOP per step")
        for frames, h, w, label in ((11, 60, 104, "41x480x832"), (21, 30, 52, "81x240x416")):
            peak = activation_peak(*wan_step(dit, frames, h, w))
            print(f"  {label} ({frames * h * w // 4} tokens per branch): activations {peak / GIB:.2f} GiB")
        out["phantom14b"] = trace_phantom_14b()
    return out


def trace_phantom_14b() -> list[dict]:
    """Phantom-Wan-14B (40 × 5120, FFN 13824) with K reference frames: traced activation peak, the planner's estimate
    and FLOPs per forward, for the three CFG branches batched and for one branch (the 12 GB plan runs them one at a
    time). Call inside :func:`fake_cuda`."""
    from idvideo_core.memory.estimate import Workload

    dit = build_wan(WAN_14B)
    rows = []
    for label, frames, refs, batch in (("81 frames, no refs, 2 branches (T2V)", 21, 0, 2),
                                       ("81 frames + 4 refs, 3 branches", 21, 4, 3),
                                       ("81 frames + 4 refs, 1 branch", 21, 4, 1),
                                       ("81 frames + 1 ref, 1 branch", 21, 1, 1),
                                       ("121 frames + 4 refs, 1 branch", 31, 4, 1)):
        fn, tracked = wan_step(dit, frames, 60, 104, refs=refs, batch=batch)
        peak = activation_peak(fn, tracked)
        est = Workload(batch, (frames + refs) * 30 * 52, 5120, 13824, 2).activation_bytes
        f = flops(fn)
        rows.append(dict(label=label, peak=peak, estimate=est, flops=f["total"],
                         attention=f.get("aten._scaled_dot_product_flash_attention", 0.0)))
        print(f"Phantom-14B 832x480, {label}: activations {peak / GIB:.2f} GiB traced, {est / GIB:.2f} GiB "
              f"estimated ({est / peak:.3f}×); {f['total'] / 1e12:.0f} TFLOP per forward (attention "
              f"{rows[-1]['attention'] / 1e12:.0f})")
    return rows


if __name__ == "__main__":
    main()
