"""ModelManager placement per mode, with ``meta`` as the stand-in compute device and ``cpu`` as the offload device.

Real weights really move between the two devices, and the toy parts really run on meta tensors, so a part that is
not where the plan says makes the forward raise. ComfyUI is not installed here; one test installs a small recording
stand-in for ``comfy.model_management`` (the only ComfyUI API the manager reaches, through ``bridge``) to check that
the manager asks ComfyUI to free memory before big loads and to empty its cache after offloading.
"""
from __future__ import annotations

import sys
import types

import pytest
import torch
from torch import nn

from idvideo_core.errors import InputError
from idvideo_core.memory import MemoryMode, MemoryPlan, ModelManager, model_sizes, plan_and_manage
from idvideo_core.memory import manager as manager_mod

META, CPU = torch.device("meta"), torch.device("cpu")


class ToyDiT(nn.Module):
    def __init__(self, n_blocks: int = 5, width: int = 16):
        super().__init__()
        self.embed = nn.Linear(8, width)
        self.transformer_blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU()) for _ in range(n_blocks))
        self.scale = nn.Parameter(torch.ones(width))           # a parent's own weight, read in forward
        self.head = nn.Linear(width, 8)

    def forward(self, x):
        h = self.embed(x) * self.scale
        for blk in self.transformer_blocks:
            h = h + blk(h)
        return self.head(h)


def parts():
    torch.manual_seed(0)
    return {"text_encoder": (nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8)), None),
            "transformer": (ToyDiT(), "transformer_blocks"),
            "vae": (nn.Sequential(nn.Linear(8, 8)), None),
            "eva": (nn.Linear(8, 8), None)}


def make(mode: MemoryMode, n_swap: int = 0, device=META, face_offload=True):
    plan = MemoryPlan(mode, device, CPU, blocks_to_swap=n_swap, offload_face_models=face_offload)
    mgr = ModelManager(plan, trace=True)
    for name, (module, blocks) in parts().items():
        mgr.add(name, module, kind="face" if name == "eva" else "model", blocks=blocks)
    return mgr


def x(device=META):
    return torch.randn(2, 3, 8, device=device)


@pytest.mark.parametrize("mode", [MemoryMode.MODEL_OFFLOAD, MemoryMode.BLOCK_SWAP])
def test_each_part_is_on_the_device_only_while_used(mode):
    mgr = make(mode, n_swap=3)
    assert set(mgr.placement().values()) == {"cpu"}                    # parked right after add
    with mgr.use("text_encoder") as te:
        assert te(x()).device == META
        where = mgr.placement()
        assert where["text_encoder"] == "meta" and where["transformer"] == "cpu" and where["vae"] == "cpu"
    assert mgr.placement()["text_encoder"] == "cpu"
    with mgr.use("transformer") as dit:
        assert dit(x()).device == META                               # raises if any weight were left in RAM
        where = mgr.placement()["transformer"]
        # block swap: the swapped blocks are back in RAM between forwards, the rest stays in
        assert where == ("cpu+meta" if mode is MemoryMode.BLOCK_SWAP else "meta")
        if mode is MemoryMode.BLOCK_SWAP:
            blocks = dit.transformer_blocks
            assert [next(b.parameters()).device.type for b in blocks] == ["meta", "meta", "cpu", "cpu", "cpu"]
            assert mgr.swapper("transformer").bytes_moved > 0
    assert mgr.placement()["transformer"] == "cpu"
    with mgr.use("vae") as vae:
        assert vae(x()).device == META
    with mgr.use("eva") as eva:
        assert eva(x()).device == META
    assert set(mgr.placement().values()) == {"cpu"}
    assert "transformer" in mgr.summary()


def test_block_swap_streams_inside_the_transformers_own_loop():
    mgr = make(MemoryMode.BLOCK_SWAP, n_swap=3)
    swapper = mgr.swapper("transformer")
    with mgr.use("transformer") as dit:
        dit(x())
        dit(x())
    kinds = [(e.kind, e.block) for e in swapper.events]
    assert kinds.count(("compute", 4)) == 2 and kinds.count(("load", 2)) == 2
    assert swapper.on_device() == []
    assert "Block swap: 3 of 5 blocks" in mgr.summary()


def test_sequential_moves_one_layer_at_a_time():
    mgr = make(MemoryMode.SEQUENTIAL)
    dit = mgr.get("transformer")
    seen = {}

    def spy(name):
        def hook(_m, _a):
            seen[name] = {n: str(next(mm.parameters()).device) for n, mm in
                          [("embed", dit.embed), ("block0", dit.transformer_blocks[0][1]), ("head", dit.head)]}
        return hook
    # Registered after the offload hooks, so it sees the state while the layer runs.
    dit.transformer_blocks[0][1].register_forward_pre_hook(spy("block0"))
    with mgr.use("transformer") as model:
        assert model(x()).device == META
    assert seen["block0"] == {"embed": "cpu", "block0": "meta", "head": "cpu"}
    assert set(mgr.placement().values()) == {"cpu"}
    assert "Sequential offload" in mgr.summary()


def test_gpu_mode_keeps_parts_but_face_models_leave():
    mgr = make(MemoryMode.GPU, device=CPU)          # CPU stands in for the device: values survive the moves
    mgr.plan.on_cpu = False
    with mgr.use("text_encoder"):
        pass
    assert mgr.components["text_encoder"].on_device
    with mgr.use("eva"):
        pass
    assert not mgr.components["eva"].on_device      # offload_face_models=True


def test_cpu_plan_never_moves_anything():
    plan = MemoryPlan(MemoryMode.GPU, CPU, CPU, on_cpu=True)
    mgr = ModelManager(plan)
    te = nn.Linear(4, 4)
    mgr.add("text_encoder", te)
    with mgr.use("text_encoder") as m:
        assert m is te
    assert mgr.components["text_encoder"].on_device


def test_plan_and_manage_on_cpu():
    mgr = plan_and_manage(parts(), "auto", device="cpu", face_parts=("eva",))
    assert mgr.plan.on_cpu and mgr.components["eva"].kind == "face"
    with mgr.use("transformer") as dit:
        assert dit(x(CPU)).shape == (2, 3, 8)
    sizes = model_sizes(parts())
    assert sizes.num_blocks == 5 and sizes.block_bytes > 0 and sizes.other > 0


def test_unknown_part_names_the_fix():
    mgr = make(MemoryMode.MODEL_OFFLOAD)
    with pytest.raises(InputError, match="have: text_encoder, transformer, vae, eva"):
        with mgr.use("unet"):
            pass


def test_comfyui_is_asked_to_free_memory_and_empty_its_cache(monkeypatch):
    calls = []
    mm = types.ModuleType("comfy.model_management")
    mm.free_memory = lambda n, dev, keep_loaded=(): calls.append(("free_memory", n, str(dev)))
    mm.soft_empty_cache = lambda *a, **k: calls.append(("soft_empty_cache",))
    mm.get_torch_device = lambda: META
    comfy = types.ModuleType("comfy")
    comfy.model_management = mm
    monkeypatch.setitem(sys.modules, "comfy", comfy)
    monkeypatch.setitem(sys.modules, "comfy.model_management", mm)
    monkeypatch.delenv("IDVIDEO_NO_COMFY", raising=False)
    monkeypatch.setattr(manager_mod, "BIG_PART_BYTES", 1000)          # the toy parts count as big ones

    mgr = make(MemoryMode.MODEL_OFFLOAD)
    with mgr.use("transformer"):
        assert calls and calls[0][0] == "free_memory" and calls[0][2] == "meta"
        assert calls[0][1] == mgr.components["transformer"].nbytes
    assert calls[-1] == ("soft_empty_cache",)
    calls.clear()
    with mgr.use("eva"):                                             # 288 bytes: below the threshold
        pass
    assert calls == [("soft_empty_cache",)]


def test_a_new_plan_on_the_same_model_removes_the_old_managers_hooks(monkeypatch):
    """attach_memory twice on one model (a re-plan): the first manager's block-swap hooks must not keep firing."""
    from idvideo_core import bridge
    from idvideo_core.backbones.base import LoadedModel
    from idvideo_core.runtime import attach_memory

    monkeypatch.setattr(bridge, "vram_state", lambda: "normal")      # as ComfyUI reports a GPU without flags

    p = parts()
    model = LoadedModel(family="consisid", transformer=p["transformer"][0], vae=p["vae"][0], scheduler_config={},
                        dtype=torch.float32, device=META)
    attach_memory(model, "block_swap", blocks_to_swap=3)
    first = model.memory
    with first.use("transformer") as dit:
        dit(x())
    blocks = model.transformer.transformer_blocks
    assert all(b._forward_pre_hooks for b in blocks)                  # the swapper drives the blocks
    attach_memory(model, "model_offload")
    assert model.memory is not first
    assert not any(b._forward_pre_hooks or b._forward_hooks for b in blocks)
    with model.memory.use("transformer") as dit:
        assert dit(x()).device == META
    moved = first.swapper("transformer").bytes_moved
    assert moved > 0
    with model.memory.use("transformer") as dit:
        dit(x())
    assert first.swapper("transformer").bytes_moved == moved          # the old swapper no longer moves anything
