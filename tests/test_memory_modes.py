"""resolve_mode: ComfyUI's VRAM flags and free memory -> a memory plan (no GPU needed: state and memory are given)."""
from __future__ import annotations

import pytest
import torch

from idvideo_core.errors import InputError
from idvideo_core.memory import MemoryMode, ModelSizes, resolve_mode

GB = 1024 ** 3
# Roughly ConsisID in bf16: 11 GB transformer of 42 blocks, T5 + VAE 10 GB.
CONSISID = ModelSizes(transformer=11 * GB, other=10 * GB, num_blocks=42, block_bytes=GB // 4, working=4 * GB)


def plan(requested="auto", free=80 * GB, state="normal", sizes=CONSISID, **kw):
    return resolve_mode(requested, sizes, "cuda", vram_state=state, free_bytes=free, **kw)


def test_cpu_keeps_everything_on_cpu_whatever_was_asked():
    for req in ("auto", "block_swap", "sequential"):
        p = resolve_mode(req, CONSISID, "cpu", vram_state="normal")
        assert p.on_cpu and p.device.type == "cpu" and p.offload_device.type == "cpu"
        assert not p.offloads and p.blocks_to_swap == 0 and not p.vae_tiling
        assert "CPU" in p.reasons[0]
    p = resolve_mode("auto", CONSISID, "cuda", vram_state="cpu")        # ComfyUI --cpu
    assert p.on_cpu and p.device.type == "cpu"


def test_auto_follows_free_memory():
    assert plan(free=80 * GB).mode is MemoryMode.GPU
    assert plan(free=80 * GB).vae_tiling is False                       # ample memory: exact decode
    assert plan(free=25 * GB).mode is MemoryMode.GPU                    # 21 GB + 4 GB working fit exactly
    assert plan(free=24 * GB).mode is MemoryMode.MODEL_OFFLOAD
    p = plan(free=16 * GB)
    assert p.mode is MemoryMode.MODEL_OFFLOAD and p.vae_tiling and p.offload_face_models
    p = plan(free=12 * GB)
    assert p.mode is MemoryMode.BLOCK_SWAP
    # 11 GB + one prefetched block + 4 GB working must fit in 12 GB: swap ceil(3.25 GB / 0.25 GB) = 13 blocks.
    assert p.blocks_to_swap == 13
    assert plan(free=4 * GB).mode is MemoryMode.SEQUENTIAL


def test_flags_map_to_modes():
    assert plan(state="high", free=8 * GB).mode is MemoryMode.GPU
    assert plan(state="high").offload_device.type == "cpu"
    assert plan(state="novram").mode is MemoryMode.SEQUENTIAL
    assert plan(state="lowvram", free=80 * GB).mode is MemoryMode.MODEL_OFFLOAD
    assert plan(state="lowvram", free=12 * GB).mode is MemoryMode.BLOCK_SWAP
    assert plan(free=None).mode is MemoryMode.MODEL_OFFLOAD                # unknown free memory: the safe choice


def test_explicit_modes_are_honoured():
    assert plan("gpu", free=2 * GB).mode is MemoryMode.GPU
    p = plan("block_swap", blocks_to_swap=20)
    assert p.mode is MemoryMode.BLOCK_SWAP and p.blocks_to_swap == 20
    assert plan("block_swap", blocks_to_swap=99).blocks_to_swap == 42
    assert plan("block_swap", free=80 * GB).blocks_to_swap == 1          # always at least one block when asked
    assert plan("block_swap", blocks_to_swap=0).mode is MemoryMode.MODEL_OFFLOAD
    assert plan(MemoryMode.SEQUENTIAL).mode is MemoryMode.SEQUENTIAL


def test_bad_inputs_name_the_fix():
    with pytest.raises(InputError, match="auto, gpu, model_offload, block_swap, sequential"):
        plan("fast")
    with pytest.raises(InputError, match="0 or more"):
        plan("block_swap", blocks_to_swap=-1)


def test_describe_lists_reasons():
    text = plan(free=12 * GB).describe()
    assert text.startswith("IDVideo memory plan: block_swap on cuda") and "13 of 42 blocks" in text


def test_plain_int_model_bytes():
    p = resolve_mode("auto", 2 * GB, torch.device("cuda"), vram_state="normal", free_bytes=40 * GB)
    assert p.mode is MemoryMode.GPU
