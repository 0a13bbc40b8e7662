"""``auto`` for Phantom-Wan-14B on simulated 24 GB and 12 GB cards: fp8 storage, branch batching and block swap so
that the resident weights + the traced activation peak fit (free memory passed in, as the planner tests do).

The 14B sizes come from the real 14B tensor shapes (diffusers' WanTransformer3DModel built on the meta device: no
memory), the activations from the Phantom spec's workload (memory/estimate.py constants, held to the traced 14B
forward by test_estimate_covers_the_traced_14b_forward). A card's free memory is its size minus 1 GiB (CUDA context
and allocator reserve).
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from idvideo_core.backbones import registry
from idvideo_core.backbones.wan.loading import dit_sizes
from idvideo_core.backbones.phantom_wan.defaults import PHANTOM_14B, phantom_defaults
from idvideo_core.memory.modes import GIB, MemoryMode
from idvideo_core.memory.storage import plan_storage

WAN_14B = dict(patch_size=(1, 2, 2), num_attention_heads=40, attention_head_dim=128, in_channels=16, out_channels=16,
               text_dim=4096, freq_dim=256, ffn_dim=13824, num_layers=40, cross_attn_norm=True,
               qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024)
UMT5_XXL = {"default": int(11.36e9), "fp8_e4m3": int(6.0e9)}      # bf16 / fp8-scaled umt5_xxl (ComfyUI file sizes)
VAE = int(0.25e9)


@pytest.fixture(scope="module")
def shapes():
    from diffusers import WanTransformer3DModel

    with torch.device("meta"):
        m = WanTransformer3DModel(**WAN_14B)
    return {k: v for k, v in m.state_dict().items()}


def _plan(shapes, card_gb, refs=4, clip=None):
    spec = registry.get("phantom_wan")
    sizes = {s: dit_sizes(shapes, s, torch.bfloat16) for s in ("default", "fp8_e4m3")}
    for s in sizes.values():
        s.other = VAE + UMT5_XXL["default"]
    w, h, f = clip or (PHANTOM_14B.width, PHANTOM_14B.height, PHANTOM_14B.frames)
    cfg = SimpleNamespace(**WAN_14B)

    def working(batched):
        return spec.workload(SimpleNamespace(config=cfg, batch_branches=batched), 2, w, h, f, refs).activation_bytes

    free = card_gb * GIB - GIB
    return plan_storage(sizes, working, "auto", "cuda", branches=3, free_bytes=free, vram_state="normal",
                        text_encoder=UMT5_XXL), free


def test_14b_sizes_from_shapes(shapes):
    d = dit_sizes(shapes, "default", torch.bfloat16)
    f8 = dit_sizes(shapes, "fp8_e4m3", torch.bfloat16)
    assert d.num_blocks == f8.num_blocks == 40
    assert 28.0e9 < d.transformer < 29.5e9                       # 14.3 B parameters, bf16 (+ fp32 norms/modulation)
    assert 0.49 < f8.transformer / d.transformer < 0.52          # block Linears at 1 byte
    assert phantom_defaults(WAN_14B) is PHANTOM_14B and (PHANTOM_14B.frames, PHANTOM_14B.fps) == (121, 24)


@pytest.mark.parametrize("card_gb", [24, 12])
def test_auto_on_small_cards_picks_fp8_and_fits(shapes, card_gb, capsys):
    sp, free = _plan(shapes, card_gb)
    print(f"\n--- simulated {card_gb} GB card ({free / GIB:.1f} GiB free), Phantom-14B 832x480x121 + 4 refs ---")
    print(sp.describe())
    assert sp.storage == "fp8_e4m3"                              # bf16 (28.6 GB) cannot fit either card
    assert sp.predicted_peak <= free                             # weights + traced activation peak fit
    assert sp.plan.mode in (MemoryMode.MODEL_OFFLOAD, MemoryMode.BLOCK_SWAP)
    assert sp.text_encoder_storage == ("fp8_e4m3" if card_gb == 12 else "default")
    if card_gb == 12:
        assert sp.plan.mode is MemoryMode.BLOCK_SWAP and 0 < sp.plan.blocks_to_swap < 40
        assert not sp.batch_branches                             # three batched branches need 20 GiB alone
        # one more block kept resident would not fit: the plan swaps just enough
        assert sp.predicted_peak + sp.sizes.block_bytes > free - sp.plan.working_bytes + sp.sizes.working or \
            sp.plan.blocks_to_swap == 1
    text = sp.describe()
    assert "fp8" in text and "one at a time" in text or "batched" in text


def test_references_add_frames_to_the_plan(shapes):
    one, _ = _plan(shapes, 12, refs=1)
    four, _ = _plan(shapes, 12, refs=4)
    assert four.sizes.working > one.sizes.working                # +K frames of tokens
    assert four.plan.blocks_to_swap >= one.plan.blocks_to_swap
    ratio = four.sizes.working / one.sizes.working
    assert ratio == pytest.approx((31 + 4) / (31 + 1), rel=1e-6)


def test_80_gb_card_keeps_bf16(shapes):
    sp, _ = _plan(shapes, 80, clip=(832, 480, 81))
    assert sp.storage == "default" and sp.batch_branches and sp.plan.mode in (MemoryMode.GPU,
                                                                                MemoryMode.MODEL_OFFLOAD)


def test_loader_auto_plans_before_reading_and_prints(tmp_path, caplog):
    """End to end on the tiny 14B-ratio files: the loader reads the headers, plans for a card too small for the
    float weights, loads in fp8, runs the branches one at a time, and logs the plan."""
    from idvideo_core.backbones.wan.loading import read_dit_header
    from idvideo_core.backbones.wan.model import load_wan_model
    from idvideo_core.memory.fp8 import Fp8Linear
    from idvideo_core.testing.tiny_wan import write_comfy_files, write_dit_formats

    comfy = write_comfy_files(tmp_path / "m")
    fmts = write_dit_formats(tmp_path / "d")
    _, shp, cfg = read_dit_header(fmts["bf16"])
    f32 = dit_sizes(shp, "default", torch.float32)
    one = registry.get("phantom_wan").workload(SimpleNamespace(config=SimpleNamespace(**cfg), batch_branches=False),
                                               4, 832, 480, 81).activation_bytes
    free = one + int(f32.transformer * 0.8)      # one branch's activations + less than the float32 weights
    with caplog.at_level("INFO", logger="idvideo"):
        m = load_wan_model("phantom_wan", dit=fmts["bf16"], vae=comfy.vae_file, text_encoder=comfy.text_encoder_file,
                           precision="fp32", device="cpu", weight_storage="auto", free_bytes=free,
                           vram_state="normal", plan_device="cuda")
    sp = m.options["storage_plan"]
    assert sp.storage == "fp8_e4m3" and m.options["weight_storage"] == "fp8_e4m3"
    assert any(isinstance(x, Fp8Linear) for x in m.transformer.modules())
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "IDVideo storage plan" in text and "stored as fp8_e4m3" in text and "file bf16" in text
    assert not sp.batch_branches and m.transformer.batch_branches is False
    # the runtime's estimate follows the plan: one branch per forward at the loader's clip
    from idvideo_core.memory.estimate import default_workload

    assert default_workload("phantom_wan", m.transformer, 4).batch == 1


def test_estimate_covers_the_traced_14b_forward():
    """The planner's activation constants hold for the 14B shapes with references (+K frames), batched or not: the
    real-size 14B forward traced on fake tensors (tests/benchmarks/trace_full.py), estimate within [1, 1.15] ×."""
    pytest.importorskip("torch.distributed._tools.mem_tracker")
    from benchmarks import trace_full as tr
    from benchmarks.bench_consisid import WAN_14B as FULL
    from idvideo_core.memory.estimate import Workload

    ctx = tr.fake_cuda()
    ctx.__enter__()
    try:
        dit = tr.build_wan(FULL)
        for frames, refs, batch in ((6, 4, 3), (11, 1, 1)):
            traced = tr.activation_peak(*tr.wan_step(dit, frames, 30, 52, refs=refs, batch=batch))
            est = Workload(batch, (frames + refs) * 15 * 26, 5120, 13824, 2).activation_bytes
            assert 1.0 <= est / traced <= 1.15, (frames, refs, batch, est / GIB, traced / GIB)
    finally:
        ctx.__exit__(None, None, None)
