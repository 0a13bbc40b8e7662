"""Block swap placement and equivalence, without a GPU.

How placement is tested honestly: the compute device is ``meta`` and the offload device is ``cpu``. Both are real
torch devices, weights really move between them, and the toy transformer really runs on meta tensors, so a weight
the swapper forgot to bring in (still on cpu) makes the forward raise a device-mismatch error. A recorder hook,
registered after the swapper's own hooks, writes down where every block lives at the moment each block computes.
Numeric equivalence is checked separately on cpu->cpu, where the same schedule runs with real values.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from idvideo_core.errors import InputError
from idvideo_core.memory import BlockSwapper, devices_of, module_bytes


class ToyDiT(nn.Module):
    """Loops over its blocks inside forward, like diffusers' transformers."""

    def __init__(self, n_blocks: int = 6, width: int = 16):
        super().__init__()
        self.embed = nn.Linear(8, width)
        self.transformer_blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU()) for _ in range(n_blocks))
        self.register_buffer("pos", torch.linspace(0, 1, width))
        self.head = nn.Linear(width, 8)

    def forward(self, x):
        h = self.embed(x) + self.pos
        for blk in self.transformer_blocks:
            h = h + blk(h)
        return self.head(h)


def _record_placement(model: ToyDiT, log: list):
    def hook(i):
        def _h(_m, _a):
            log.append((i, [devices_of(b) for b in model.transformer_blocks]))
        return _h
    return [b.register_forward_pre_hook(hook(i)) for i, b in enumerate(model.transformer_blocks)]


@pytest.mark.parametrize("n_swap,prefetch", [(3, 1), (6, 2), (2, 0), (0, 1)])
def test_placement_during_hooked_forward_on_meta(n_swap, prefetch):
    torch.manual_seed(0)
    model = ToyDiT()
    originals = [{k: v.clone() for k, v in b.state_dict().items()} for b in model.transformer_blocks]
    # The non-block parts go to the stand-in device too; the swapper places the resident blocks itself.
    for m in (model.embed, model.head):
        m.to_empty(device="meta")
    model.pos = model.pos.to("meta")
    swapper = BlockSwapper(model.transformer_blocks, n_swap, "meta", "cpu", prefetch=prefetch,
                           trace=True).install_hooks()
    log: list = []
    handles = _record_placement(model, log)
    for _step in range(2):
        out = model(torch.randn(2, 5, 8, device="meta"))
        assert out.device.type == "meta"
    for h in handles:
        h.remove()

    first = 6 - n_swap
    assert [i for i, _ in log] == list(range(6)) * 2
    for i, where in log:
        for j, devs in enumerate(where):
            if j < first:
                assert devs == {"meta"}, (i, j, devs)                  # resident blocks never leave
            elif i <= j <= i + prefetch:
                assert devs == {"meta"}, (i, j, devs)                  # the computing block and its prefetch
            else:
                assert devs == {"cpu"}, (i, j, devs)                   # everything else parked in RAM
        on_dev = sum(1 for j, devs in enumerate(where) if j >= first and devs == {"meta"})
        assert on_dev <= min(1 + prefetch, n_swap)

    swapper.close()
    for j in range(first, 6):
        blk = model.transformer_blocks[j]
        assert devices_of(blk) == {"cpu"}
        for k, v in blk.state_dict().items():                          # parking never lost a value
            assert torch.equal(v, originals[j][k])
    # Prefetch: a swapped block's copy is issued before the block ahead of it computes, so it overlaps that compute.
    if prefetch and n_swap > 1:
        ev = [(e.kind, e.block) for e in swapper.events[: len(swapper.events) // 2]]
        for j in range(max(first, 1), 6):
            load_at = ev.index(("load", j))
            compute_prev = ev.index(("compute", j - 1))
            assert load_at < compute_prev


def test_iterate_api_matches_plain_forward_on_cpu():
    torch.manual_seed(1)
    model = ToyDiT()
    x = torch.randn(2, 5, 8)
    ref = model(x)
    swapper = BlockSwapper(model.transformer_blocks, 4, "cpu", "cpu", prefetch=1)
    h = model.embed(x) + model.pos
    seen = []
    for blk in swapper.iterate():
        seen.append(swapper.on_device())
        h = h + blk(h)
    out = model.head(h)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    assert seen[:2] == [[], [2]]     # resident blocks 0, 1; block 1 already issued the load of block 2
    assert seen[2] == [2, 3]         # computing 2 while 3 is prefetched
    assert seen[5] == [5]            # the last block prefetches nothing
    assert swapper.on_device() == []


def test_hooked_forward_is_exact_and_counts_bytes():
    torch.manual_seed(2)
    model = ToyDiT()
    x = torch.randn(3, 4, 8)
    ref = model(x)
    swapper = BlockSwapper(model.transformer_blocks, 5, "cpu", "cpu", prefetch=2).install_hooks()
    with torch.inference_mode():
        out = model(x)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    per_block = module_bytes(model.transformer_blocks[1])
    assert swapper.bytes_moved == 5 * per_block
    swapper.close()
    assert model(x).equal(ref)       # hooks removed, weights intact


def test_summary_reports_memory_per_part():
    model = ToyDiT(n_blocks=4)
    swapper = BlockSwapper(model.transformer_blocks, 3, "cpu", "cpu", prefetch=1)
    text = swapper.summary()
    assert "3 of 4 blocks" in text and "resident blocks on cpu: 1" in text and "at most 2" in text


def test_bad_block_count_names_the_fix():
    model = ToyDiT(n_blocks=4)
    with pytest.raises(InputError, match="between 0 and 4"):
        BlockSwapper(model.transformer_blocks, 5, "cpu", "cpu")
