"""Step cache (TeaCache-style) rules and wiring, attention kernel switch and block compilation (tiny weights)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from idvideo_core.sampling.cache import (
    CONSISID,
    WAN_1_3B,
    CacheRule,
    StepCache,
    computed_steps,
    make_cache,
)

ALWAYS_SKIP = CacheRule("always skip", (-1.0,), 0.1)          # rescaled distance -1: the sum never reaches
NEVER_SKIP = CacheRule("never skip", (1e9,), 0.1)              # rescaled distance huge: always recompute


def _drive(cache: StepCache, steps: int, slot=0):
    hidden = torch.ones(2, 3)
    for i in range(steps):
        cache.run(torch.full((2, 4), 1.0 + 0.01 * i), hidden, lambda h: h * 2, slot)


@pytest.mark.parametrize("steps", [2, 3, 10, 50])
@pytest.mark.parametrize("rule", [CONSISID, WAN_1_3B, ALWAYS_SKIP])
def test_first_and_last_steps_are_never_skipped(rule, steps):
    cache = StepCache(dataclasses.replace(rule, coefficients=(-1.0,)), steps, threshold=10.0)
    _drive(cache, steps)
    done = computed_steps(cache.stats)
    assert done[0] == 0 and done[-1] == steps - 1
    assert set(range(min(rule.warmup, steps))) <= set(done)
    assert len(done) == min(steps, max(1, rule.warmup) + 1)        # everything else was skipped
    assert cache.stats.skipped + cache.stats.evaluations == steps


def test_counters_and_skip_reuses_residual():
    cache = StepCache(ALWAYS_SKIP, 5)
    outs = []
    h = torch.ones(1, 2)
    for i in range(5):
        outs.append(cache.run(torch.full((1, 2), 1.0 + i), h + i, lambda x: x * 3))
    # step 0 computed: residual = 2·h; steps 1-3 reuse it on their own input; step 4 computed
    assert [o[0, 0].item() for o in outs] == [3.0, 4.0, 5.0, 6.0, 15.0]
    assert (cache.stats.evaluations, cache.stats.skipped) == (2, 3)
    assert cache.stats.fraction_skipped == pytest.approx(0.6)
    assert "3 of 5" in cache.summary()


def test_threshold_knob_and_slots():
    lo, hi = StepCache(CONSISID, 50, 0.05), StepCache(CONSISID, 50, 0.5)
    for c in (lo, hi):
        h = torch.ones(1, 3)
        for i in range(50):
            c.run(torch.tensor([[1.0 + 0.03 * i]]), h, lambda x: x + 1)
    assert hi.stats.skipped > lo.stats.skipped
    two = StepCache(NEVER_SKIP, 4)
    for i in range(4):
        for slot in ("cond", "uncond"):
            two.run(torch.ones(1), torch.ones(1), lambda x: x, slot)
    assert computed_steps(two.stats, "cond") == computed_steps(two.stats, "uncond") == [0, 1, 2, 3]
    assert make_cache(CONSISID, 50, 0.0) is None and make_cache(CONSISID, 50, None) is None
    assert CONSISID.default_threshold == 0.1
    assert CONSISID.rescale(0.0) == pytest.approx(-0.0523162339)


# ------------------------------------------------------------------------------------------------ ConsisID
@pytest.fixture(scope="module")
def consisid(consisid_folder):
    from idvideo_core import runtime
    from idvideo_core.backbones.consisid.generate import encode_global_identity
    from idvideo_core.backbones.consisid.loading import load_consisid
    from idvideo_core.testing.tiny_consisid import TINY_HEIGHT, TINY_WIDTH
    from idvideo_core.testing.tiny_eva import tiny_eva_config
    from idvideo_core.types import LocalIdentity

    model = load_consisid(consisid_folder, "fp32", torch.device("cpu"))
    face = np.random.default_rng(1).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    text = runtime.encode_prompt(model, "a woman walks through the city at night", "")
    ident = encode_global_identity(model, face, TINY_WIDTH, TINY_HEIGHT)
    cfg = tiny_eva_config()
    g = torch.Generator().manual_seed(0)
    local = LocalIdentity(id_cond=torch.randn(1, 512 + cfg.embed_dim, generator=g),
                          id_vit_hidden=[torch.randn(1, 577, cfg.width, generator=g) for _ in range(5)])
    return model, text, ident, local


def _sample(consisid, steps, cache=None):
    from idvideo_core.backbones.consisid.generate import (
        ConsisIDSettings,
        sample_consisid,
    )
    from idvideo_core.testing.tiny_consisid import TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH

    model, text, ident, local = consisid
    s = ConsisIDSettings(width=TINY_WIDTH, height=TINY_HEIGHT, num_frames=TINY_FRAMES, steps=steps, seed=3)
    return sample_consisid(model, text, ident, local, s, progress=False, cache=cache)


def test_consisid_cache_that_never_skips_is_exact(consisid):
    ref = _sample(consisid, 4)
    cache = StepCache(NEVER_SKIP, 4)
    out = _sample(consisid, 4, cache)
    assert cache.stats.skipped == 0 and cache.stats.evaluations == 4
    assert torch.equal(out, ref)


def test_consisid_cache_skips_blocks_and_face_attention(consisid):
    model = consisid[0]
    calls = {"blocks": 0, "face": 0}
    hooks = [model.transformer.transformer_blocks[0].register_forward_hook(
        lambda *a: calls.__setitem__("blocks", calls["blocks"] + 1)),
        model.transformer.perceiver_cross_attention[0].register_forward_hook(
            lambda *a: calls.__setitem__("face", calls["face"] + 1))]
    try:
        cache = StepCache(ALWAYS_SKIP, 6)
        out = _sample(consisid, 6, cache)
    finally:
        for h in hooks:
            h.remove()
    assert computed_steps(cache.stats) == [0, 5]
    assert calls == {"blocks": 2, "face": 2}               # one batched CFG forward per computed step
    ref = _sample(consisid, 6)
    assert torch.isfinite(out).all() and not torch.equal(out, ref)


def test_runtime_cache_threshold_reaches_the_sampler(consisid, caplog):
    from idvideo_core import runtime
    from idvideo_core.testing.tiny_consisid import TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH

    model, text, ident, local = consisid
    with caplog.at_level("INFO", logger="idvideo"):
        runtime.generate(model, text, width=TINY_WIDTH, height=TINY_HEIGHT, num_frames=TINY_FRAMES, steps=3,
                         cfg=6.0, seed=1, global_identity=ident, local_identity=local, vae_tiling=False,
                         progress=False, cache_threshold=0.1)
    assert "block-stack evaluations skipped" in caplog.text


# ------------------------------------------------------------------------------------------------ Wan
def test_wan_cache_exact_when_computing_and_skips_blocks():
    from idvideo_core.backbones.wan.transformer import WanDiT
    from idvideo_core.testing.tiny_wan import tiny_transformer

    dit = WanDiT(tiny_transformer())
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 16, 2, 8, 8, generator=g)
    ctx = torch.randn(2, 6, 32, generator=g)
    refs = torch.randn(2, 16, 1, 8, 8, generator=g)
    ts = [torch.tensor([t, t]) for t in (900.0, 600.0, 300.0)]
    with torch.no_grad():
        ref = [dit(x, t, ctx, refs, "concatid") for t in ts]
        keep = StepCache(NEVER_SKIP, 3)
        assert all(torch.equal(dit(x, t, ctx, refs, "concatid", cache=keep), r) for t, r in zip(ts, ref))
        calls = []
        h = dit.base.blocks[0].attn1.register_forward_hook(lambda *a: calls.append(1))
        skip = StepCache(dataclasses.replace(ALWAYS_SKIP, warmup=1), 3)
        outs = [dit(x, t, ctx, refs, "concatid", cache=skip) for t in ts]
        h.remove()
    assert computed_steps(skip.stats) == [0, 2] and len(calls) == 2
    assert torch.equal(outs[0], ref[0]) and not torch.equal(outs[1], ref[1])


# ------------------------------------------------------------------------------------------------ attention
def test_kernel_processor_equals_diffusers_processor(consisid):
    from idvideo_core.attention import (
        SDPA,
        KernelCogVideoXProcessor,
        sdpa_kernel,
        set_attention,
    )

    model = consisid[0]
    ref = _sample(consisid, 2)
    set_attention(model.transformer, "consisid", SDPA, kernel=sdpa_kernel)
    try:
        assert isinstance(model.transformer.transformer_blocks[0].attn1.processor, KernelCogVideoXProcessor)
        out = _sample(consisid, 2)
    finally:
        set_attention(model.transformer, "consisid", SDPA)
    assert not isinstance(model.transformer.transformer_blocks[0].attn1.processor, KernelCogVideoXProcessor)
    assert (out - ref).abs().max().item() <= 1e-5


def test_sageattention_missing_is_a_clear_error(consisid):
    import importlib.util

    from idvideo_core.attention import SAGE, set_attention
    from idvideo_core.errors import InputError, MissingDependencyError
    from idvideo_core.testing.tiny_wan import tiny_transformer

    if importlib.util.find_spec("sageattention") is not None:
        pytest.skip("sageattention is installed here")
    for tf, fam in ((consisid[0].transformer, "consisid"), (tiny_transformer(), "wan")):
        with pytest.raises(MissingDependencyError, match="pip install sageattention"):
            set_attention(tf, fam, SAGE)
    with pytest.raises(InputError, match="Unknown attention"):
        set_attention(consisid[0].transformer, "consisid", "flash9")


def test_compile_blocks_toggles_each_block():
    from idvideo_core.attention import compile_blocks
    from idvideo_core.testing.tiny_wan import tiny_transformer

    tf = tiny_transformer()
    assert compile_blocks(tf, "wan", True) == len(tf.blocks)
    assert all(b._compiled_call_impl is not None for b in tf.blocks)
    assert compile_blocks(tf, "wan", True) == 0                    # idempotent
    assert compile_blocks(tf, "wan", False) == len(tf.blocks)
    assert all(b._compiled_call_impl is None for b in tf.blocks)
