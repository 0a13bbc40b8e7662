"""Phantom-Wan-14B files as creators have them: the official shards, ComfyUI single files in bf16 / fp16 / fp8_e4m3fn /
fp8_e4m3fn_scaled, streamed into a meta-initialised DiT; config from tensor shapes; fp8 kept or dequantised.

The fixture is one tiny DiT with 14B's shape ratios (FFN 2.7 × dim, 128-wide heads) whose weights are exact bf16
values, written in every format. Forward bound for the fp8 formats (what the loader promises): the output of the
DiT loaded from an fp8 file equals, to float32 rounding, the DiT whose weights are the file's dequantised values
(nothing else is lost while loading), and each of those weights is within memory/fp8.py's per-element bound of the
bf16 weight (|Δw| ≤ 2⁻⁴|w| + 2⁻¹⁰·s). The resulting output error against the bf16 model is reported and held to a
relative L2 error ≤ 2⁻⁴ (the per-weight relative bound; measured 3.3–3.6 % on this fixture).
"""
from __future__ import annotations

import pytest
import torch

from idvideo_core.backbones.wan.loading import DitLoadReport, load_dit, read_dit_header
from idvideo_core.errors import CorruptFileError, MissingModelError
from idvideo_core.memory.fp8 import (ABS_ERROR_BOUND_SCALED, FP8_DTYPE, REL_ERROR_BOUND, Fp8Linear)
from idvideo_core.testing.tiny_wan import (TINY_DIT, TINY_DIT_14B_RATIO, dit_file_tensors, tiny_transformer,
                                           tiny_transformer_14b_ratio, write_dit_formats, write_phantom14b_shards)

FP8_FORMATS = ("fp8_e4m3fn", "fp8_e4m3fn_scaled")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("wan14b")
    tf = tiny_transformer_14b_ratio()
    return tf, write_dit_formats(root / "diffusion_models", tf), write_phantom14b_shards(root / "Phantom", tf)


def _inputs(cfg, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(2, 16, 3, 6, 8, generator=g), torch.tensor([999.0, 321.5]),
            torch.randn(2, 9, cfg["text_dim"], generator=g), torch.randn(2, 16, 2, 6, 8, generator=g))


def _forward(dit, cfg):
    x, t, ctx, refs = _inputs(cfg)
    with torch.no_grad():
        return dit(x, t, ctx, refs, "phantom").float()


def _rel(a, b):
    return float((a - b).norm() / b.norm())


def test_config_is_inferred_from_shapes_never_names(files, tmp_path):
    _, fmts, index = files
    for src in (index, index.parent, fmts["fp8_e4m3fn_scaled"], index.parent / "Phantom_Wan_14B-00002-of-00003.safetensors"):
        _, _, cfg = read_dit_header(src)
        assert (cfg["num_attention_heads"], cfg["attention_head_dim"], cfg["ffn_dim"], cfg["num_layers"]) == \
            (5, 128, 1728, 2)
        assert (cfg["in_channels"], cfg["out_channels"], cfg["text_dim"], cfg["freq_dim"]) == (16, 16, 64, 32)
    # a 1.3B-ratio file named like a 14B one is read as what its tensors say
    from safetensors.torch import save_file

    misnamed = tmp_path / "Phantom-Wan-14B_bf16.safetensors"
    save_file(dit_file_tensors(tiny_transformer(), "bf16"), str(misnamed))
    _, _, cfg = read_dit_header(misnamed)
    assert (cfg["num_attention_heads"], cfg["ffn_dim"], cfg["text_dim"]) == (2, TINY_DIT["ffn_dim"], 32)


def test_shards_and_every_single_file_format_load_to_the_bf16_forward(files):
    from idvideo_core.backbones.wan.transformer import WanDiT

    tf, fmts, index = files
    ref = _forward(WanDiT(tf), TINY_DIT_14B_RATIO)
    sharded = load_dit(index)
    assert (_forward(sharded, TINY_DIT_14B_RATIO) - ref).abs().max().item() <= 1e-5
    for fmt in ("bf16", "fp16"):
        out = _forward(load_dit(fmts[fmt]), TINY_DIT_14B_RATIO)
        assert (out - ref).abs().max().item() <= 1e-5, fmt
    for fmt in FP8_FORMATS:
        rep = DitLoadReport(fmt)
        dit = load_dit(fmts[fmt], torch.float32, report=rep)
        assert rep.file_format == fmt and rep.upcast == 2 * 10 and rep.fp8_layers == 0
        # exactly the file's dequantised weights: the same forward as the bf16 model given those weights
        deq = tiny_transformer_14b_ratio()
        sd = dit_file_tensors(tf, fmt)
        with torch.no_grad():
            for name, mod in deq.named_modules():
                if isinstance(mod, torch.nn.Linear) and name.startswith("blocks."):
                    from idvideo_core.backbones.wan.keys import diffusers_to_original_key

                    k = diffusers_to_original_key(f"{name}.weight")
                    s = sd.get(k[: -len("weight")] + "scale_weight", torch.tensor(1.0))
                    w = sd[k].float() * s
                    bound = REL_ERROR_BOUND * mod.weight.abs() + ABS_ERROR_BOUND_SCALED * s
                    assert ((w - mod.weight).abs() <= bound * (1 + 1e-6)).all(), (fmt, name)
                    mod.weight.copy_(w)
        out = _forward(dit, TINY_DIT_14B_RATIO)
        assert (out - _forward(WanDiT(deq), TINY_DIT_14B_RATIO)).abs().max().item() <= 1e-5, fmt
        assert _rel(out, ref) <= REL_ERROR_BOUND, (fmt, _rel(out, ref))


@pytest.mark.parametrize("fmt", FP8_FORMATS + ("bf16",))
def test_fp8_storage_keeps_the_files_bytes(files, fmt):
    """storage=fp8_e4m3: fp8 files stay as stored (bit for bit, with scale_weight as the layer's scale), bf16 files
    are quantised per row as they stream; same forward as the default-storage load within the fp8 bound."""
    tf, fmts, _ = files
    rep = DitLoadReport(fmt)
    dit = load_dit(fmts[fmt], torch.float32, storage="fp8_e4m3", report=rep)
    layers = {n: m for n, m in dit.base.named_modules() if isinstance(m, Fp8Linear)}
    assert len(layers) == rep.fp8_layers == 2 * 10              # q, k, v, o twice + FFN in, out, per block
    assert not any(isinstance(m, torch.nn.Linear) and n.startswith("blocks.") for n, m in dit.base.named_modules())
    assert rep.quantised == (20 if fmt == "bf16" else 0)
    sd = dit_file_tensors(tf, fmt)
    layer = layers["blocks.1.ffn.net.0.proj"]
    assert layer.weight.dtype == FP8_DTYPE
    if fmt != "bf16":
        stored = sd["blocks.1.ffn.0.weight"]
        assert torch.equal(layer.weight.view(torch.uint8), stored.view(torch.uint8))
        assert float(layer.weight_scale) == float(sd.get("blocks.1.ffn.0.scale_weight", torch.tensor(1.0)))
    default = _forward(load_dit(fmts[fmt], torch.float32), TINY_DIT_14B_RATIO)
    out = _forward(dit, TINY_DIT_14B_RATIO)
    if fmt == "bf16":
        assert _rel(out, default) <= REL_ERROR_BOUND
    else:
        assert (out - default).abs().max().item() <= 1e-5       # the same fp8 values, upcast per layer
    # bytes: the fp8 layers hold one byte per weight (+ their scales) where the default load holds four
    d_rep = DitLoadReport(fmt)
    load_dit(fmts[fmt], torch.float32, report=d_rep)
    n_fp8 = sum(m.weight.numel() for m in layers.values())
    n_scale = sum(m.weight_scale.numel() for m in layers.values())
    assert rep.bytes_loaded == d_rep.bytes_loaded - 3 * n_fp8 + 4 * n_scale


def test_streaming_reads_one_tensor_at_a_time(files, monkeypatch):
    """Nothing holds the whole file: each tensor read is released before the next is read (the model keeps only
    the converted copy), so the transient memory is one tensor, not a second model."""
    import weakref

    from idvideo_core.backbones.wan import loading

    _, fmts, index = files
    alive, reads = [], [0]
    real_get = loading.TensorSource.get

    def get(self, key):
        t = real_get(self, key)
        reads[0] += 1
        alive[:] = [r for r in alive if r() is not None]
        alive.append(weakref.ref(t))
        get.max_alive = max(getattr(get, "max_alive", 0), len(alive))
        return t

    monkeypatch.setattr(loading.TensorSource, "get", get)
    load_dit(fmts["bf16"], torch.float32)                        # every tensor is converted (bf16 → fp32): a copy
    assert reads[0] > 50 and get.max_alive <= 2


def test_missing_shard_and_truncated_shard_are_named(files, tmp_path):
    import shutil

    _, _, index = files
    d = tmp_path / "P"
    shutil.copytree(index.parent, d)
    (d / "Phantom_Wan_14B-00003-of-00003.safetensors").unlink()
    with pytest.raises(MissingModelError, match="00003-of-00003"):
        load_dit(d)
    shutil.copy(index.parent / "Phantom_Wan_14B-00003-of-00003.safetensors", d)
    p = d / "Phantom_Wan_14B-00002-of-00003.safetensors"
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(CorruptFileError, match="00002-of-00003"):
        load_dit(d / "Phantom_Wan_14B.safetensors.index.json")


def test_diffusers_folder_streams_too_and_can_store_fp8(tmp_path):
    """A diffusers ``transformer/`` folder (diffusers key names) goes through the same streamed loader: same forward
    as diffusers' own from_pretrained, and fp8 storage applies while streaming."""
    from diffusers import WanTransformer3DModel

    from idvideo_core.backbones.wan.transformer import WanDiT
    from idvideo_core.testing.tiny_wan import write_diffusers_folder

    folder = write_diffusers_folder(tmp_path / "Wan2.1-T2V-1.3B-Diffusers")
    stock = WanDiT(WanTransformer3DModel.from_pretrained(str(folder / "transformer")).eval())
    rep = DitLoadReport("folder")
    dit = load_dit(folder, torch.float32, report=rep)
    assert rep.file_format == "fp32" and rep.config["num_attention_heads"] == TINY_DIT["num_attention_heads"]
    assert (_forward(dit, TINY_DIT) - _forward(stock, TINY_DIT)).abs().max().item() <= 1e-5
    f8 = load_dit(folder, torch.float32, storage="fp8_e4m3")
    assert sum(isinstance(m, Fp8Linear) for m in f8.modules()) == 2 * 10
    assert _rel(_forward(f8, TINY_DIT), _forward(stock, TINY_DIT)) <= REL_ERROR_BOUND
