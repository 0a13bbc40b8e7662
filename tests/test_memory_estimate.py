"""The planner's working reserve (memory/estimate.py) against traced activation peaks of the full-size DiTs.

The real ConsisID (42 × 3072) and Wan2.1-1.3B (30 × 1536) transformers are built on fake tensors on a fake CUDA
device: no weights in memory, no compute, no GPU. ``MemTracker`` follows every tensor the batched forward creates
and frees; attention is the flash kernel the GPU runs (no N² score matrix). The estimate must cover the traced peak
and not overshoot it by more than 15 %.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from idvideo_core.memory.estimate import Workload, default_workload
from idvideo_core.memory.modes import GIB, MemoryMode, ModelSizes, resolve_mode

fake_tensor = pytest.importorskip("torch._subclasses.fake_tensor")
mem_tracker = pytest.importorskip("torch.distributed._tools.mem_tracker")

CONSISID_FULL = dict(num_attention_heads=48, attention_head_dim=64, in_channels=32, out_channels=16,
                     time_embed_dim=512, text_embed_dim=4096, num_layers=42, sample_width=90, sample_height=60,
                     sample_frames=49, patch_size=2, temporal_compression_ratio=4, max_text_seq_length=226,
                     use_rotary_positional_embeddings=True, use_learned_positional_embeddings=True,
                     is_train_face=True, is_kps=False, cross_attn_interval=2, local_face_scale=1.0,
                     cross_attn_dim_head=128, cross_attn_num_heads=16, LFE_id_dim=1280, LFE_vit_dim=1024,
                     LFE_depth=10, LFE_dim_head=64, LFE_num_heads=16, LFE_num_id_token=5, LFE_num_querie=32,
                     LFE_output_dim=2048, LFE_ff_mult=4, LFE_num_scale=5)
WAN_1_3B = dict(patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16,
                out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True,
                qk_norm="rms_norm_across_heads", eps=1e-6)
CUDA = torch.device("cuda")


@pytest.fixture()
def fake_cuda(monkeypatch):
    """A fake-tensor mode on a fake CUDA device, attention routed to the flash kernel (what SDPA picks on GPUs)."""
    def flash(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **_):
        assert attn_mask is None
        return torch.ops.aten._scaled_dot_product_flash_attention(query, key, value, dropout_p, is_causal, False,
                                                                  scale=scale)[0]

    monkeypatch.setattr(F, "scaled_dot_product_attention", flash)
    mode = fake_tensor.FakeTensorMode(allow_non_fake_inputs=True)
    with mode:
        try:
            torch.empty(1, device=CUDA)
        except (RuntimeError, AssertionError) as exc:       # pragma: no cover - builds without CUDA support
            pytest.skip(f"fake CUDA tensors unavailable in this torch build: {exc}")
        old = torch.get_default_dtype()
        yield
        torch.set_default_dtype(old)


def _build(cls, **config):
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(CUDA):
            return cls(**config).eval()
    finally:
        torch.set_default_dtype(torch.float32)


def _traced_peak(fn, *tracked) -> int:
    mt = mem_tracker.MemTracker()
    mt.track_external(*tracked)
    with mt, torch.no_grad():
        fn()
    peak = mt.get_tracker_snapshot("peak")
    dev = next(v for k, v in peak.items() if torch.device(k).type == "cuda")
    return int(dev[mem_tracker._MemRefType.ACT])


def _consisid_peak(tf, latent_frames):
    from diffusers import CogVideoXDPMScheduler

    from idvideo_core.backbones.consisid.adapter import ConsisIDAdapter
    from idvideo_core.sampling.steppers import make_stepper
    from idvideo_core.testing.tiny_consisid import SCHEDULER_CONFIG
    from idvideo_core.types import LocalIdentity

    c = tf.config
    sched = CogVideoXDPMScheduler.from_config(SCHEDULER_CONFIG)
    sched.set_timesteps(50)
    bf = dict(device=CUDA, dtype=torch.bfloat16)
    img = torch.zeros(1, latent_frames, 16, 60, 90, **bf)
    text = torch.zeros(1, 226, c.text_embed_dim, **bf)
    local = LocalIdentity(id_cond=torch.zeros(1, c.LFE_id_dim),
                          id_vit_hidden=[torch.zeros(1, 577, c.LFE_vit_dim)] * c.LFE_num_scale)
    ad = ConsisIDAdapter(tf, make_stepper(sched), text, text, img, local, 6.0)
    x = torch.zeros(2, latent_frames, 32, 60, 90, **bf)
    t = torch.tensor([500, 500], device=CUDA)
    return _traced_peak(lambda: ad.forward(x, t), tf, x, ad.text, ad.image_latents, ad.face_emb)


def test_consisid_full_size_estimate_covers_the_traced_forward(fake_cuda):
    from diffusers import ConsisIDTransformer3DModel

    tf = _build(ConsisIDTransformer3DModel, **CONSISID_FULL)
    default = default_workload("consisid", tf, 2)
    assert (default.batch, default.tokens, default.dim, default.ffn_dim) == (2, 13 * 30 * 45 + 226, 3072, 12288)
    traced = _consisid_peak(tf, 13)                 # 49 frames (one size: Wan below checks the token scaling)
    assert traced > 0.5 * GIB
    assert 1.0 <= default.activation_bytes / traced <= 1.15, (default.activation_bytes / GIB, traced / GIB)


def test_wan_full_size_estimate_covers_the_traced_forward(fake_cuda):
    from diffusers import WanTransformer3DModel

    from idvideo_core.backbones.wan.transformer import WanDiT

    dit = WanDiT(_build(WanTransformer3DModel, **WAN_1_3B))
    for frames, h, w in ((21, 60, 104), (11, 30, 52)):
        x = torch.zeros(2, 16, frames, h, w, device=CUDA, dtype=torch.bfloat16)
        ctx = torch.zeros(2, 512, 4096, device=CUDA, dtype=torch.bfloat16)
        t = torch.full((2,), 500.0, device=CUDA)
        traced = _traced_peak(lambda: dit(x, t, ctx), dit, x, ctx)
        est = Workload(2, frames * (h // 2) * (w // 2), 1536, 8960, 2).activation_bytes
        assert 1.0 <= est / traced <= 1.15, (frames, est / GIB, traced / GIB)
    concat = default_workload("concatid_wan", dit, 2)
    phantom = default_workload("phantom_wan", dit, 2)
    assert (concat.batch, concat.tokens) == (2, (21 + 1) * 30 * 52)
    assert (phantom.batch, phantom.tokens) == (3, (21 + 4) * 30 * 52)


def test_planner_keeps_the_forward_free_on_a_12_gb_card(fake_cuda):
    """Full ConsisID in bf16 on a card with 12 GB free: auto picks block swap, and the resident weights + one
    prefetched block + the traced-size working reserve fit; the old rule (15 % of free memory, 1.7 GiB) would have
    left less than the forward needs (2.9 GiB estimated)."""
    from diffusers import ConsisIDTransformer3DModel

    from idvideo_core.memory.manager import model_sizes

    tf = _build(ConsisIDTransformer3DModel, **CONSISID_FULL)
    sizes = model_sizes({"transformer": (tf, "transformer_blocks")})
    work = default_workload("consisid", tf, 2).activation_bytes
    free = 12 * 10 ** 9
    assert work > 0.15 * free                        # the forward needs more than the old share reserved
    sizes_w = ModelSizes(**{**sizes.__dict__, "working": work})
    plan = resolve_mode("auto", sizes_w, CUDA, vram_state="normal", free_bytes=free)
    assert plan.mode is MemoryMode.BLOCK_SWAP
    resident = sizes.transformer - plan.blocks_to_swap * sizes.block_bytes + sizes.block_bytes
    assert resident + work <= free
    old = resolve_mode("auto", sizes, CUDA, vram_state="normal", free_bytes=free)
    assert old.blocks_to_swap < plan.blocks_to_swap
    assert sizes.transformer - old.blocks_to_swap * sizes.block_bytes + sizes.block_bytes + work > free


def test_sampler_warns_when_the_clip_outgrows_the_plans_reserve(consisid_folder, caplog):
    """The plan is made at load for the default clip; a much larger clip gets a warning naming blocks_to_swap."""
    from idvideo_core.backbones.consisid.loading import load_consisid
    from idvideo_core.memory import MemoryPlan, ModelManager
    from idvideo_core.runtime import check_working_memory

    model = load_consisid(consisid_folder, "fp32", torch.device("cpu"))
    c = model.transformer.config
    w, h, f = c.sample_width * 8, c.sample_height * 8, c.sample_frames
    reserve = default_workload("consisid", model.transformer, 4).activation_bytes
    plan = MemoryPlan(MemoryMode.MODEL_OFFLOAD, torch.device("meta"), torch.device("cpu"), working_bytes=reserve)
    model.memory = ModelManager(plan)
    model.memory.add("transformer", model.transformer, blocks="transformer_blocks")
    with caplog.at_level("WARNING", logger="idvideo"):
        assert not check_working_memory(model, w, h, f)                 # the planned clip: quiet
        assert not caplog.records
        assert check_working_memory(model, 2 * w, 2 * h, 4 * f - 3)     # 4× the area, 4× the frames
    msg = caplog.records[-1].getMessage()
    assert "blocks_to_swap" in msg and f"{2 * w}x{2 * h}x{4 * f - 3}" in msg
    cpu_plan = MemoryPlan(MemoryMode.GPU, torch.device("cpu"), torch.device("cpu"), on_cpu=True,
                          working_bytes=reserve)
    model.memory = ModelManager(cpu_plan)
    assert not check_working_memory(model, 2 * w, 2 * h, 4 * f - 3)     # on the CPU nothing is planned
