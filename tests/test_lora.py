"""LoRA loading (idvideo_core/lora): every key format equals diffusers' own ``load_lora_adapter`` on the same tiny
model and LoRA (max|Δ| ≤ 1e-5, fp32 forward); strength 0 is the base model bit for bit; switching and unloading
restore the weights exactly; unknown keys are reported by name; fp8 layers are patched one at a time."""
from __future__ import annotations

import copy
import json

import pytest
import torch

pytest.importorskip("peft")

from diffusers.loaders.lora_pipeline import WanLoraLoaderMixin
from safetensors.torch import save_file

from idvideo_core.backbones.registry import get as get_spec
from idvideo_core.backbones.wan.family import lora_support
from idvideo_core.backbones.wan.keys import diffusers_to_original_key
from idvideo_core.errors import WrongModelError
from idvideo_core.lora import LoraSpec, apply, convert_lora, load_lora_file, restore
from idvideo_core.testing.tiny_wan import tiny_transformer

TOL = 1e-5
WAN = lora_support(root_path="")               # the Wan family's LoRA support, for a bare diffusers model
WAN_LAYERS = ["self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o", "cross_attn.q", "cross_attn.k",
              "cross_attn.v", "cross_attn.o", "ffn.0", "ffn.2"]


def _wan():
    return tiny_transformer(0).float()


def _wan_inputs():
    g = torch.Generator().manual_seed(3)
    return (torch.randn(1, 16, 2, 8, 8, generator=g), torch.tensor([500.0]), torch.randn(1, 7, 32, generator=g))


def _run(model, inputs):
    with torch.no_grad():
        return model(*inputs, return_dict=False)[0]


def _orig_weight(model, orig_module):
    key = next(k for k in model.state_dict() if diffusers_to_original_key(k) == f"{orig_module}.weight")
    return model.state_dict()[key]


def wan_original_lora(model, rank=4, down="lora_down", up="lora_up", alpha=8.0, diff_b=True, blocks=(0, 1),
                      layers=WAN_LAYERS, seed=5, prefix="diffusion_model."):
    """A LoRA in ComfyUI / lightx2v layout (original Wan names)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for i in blocks:
        for o in layers:
            w = _orig_weight(model, f"blocks.{i}.{o}")
            sd[f"{prefix}blocks.{i}.{o}.{down}.weight"] = torch.randn(rank, w.shape[1], generator=g) * 0.1
            sd[f"{prefix}blocks.{i}.{o}.{up}.weight"] = torch.randn(w.shape[0], rank, generator=g) * 0.1
            if alpha is not None:
                sd[f"{prefix}blocks.{i}.{o}.alpha"] = torch.tensor(alpha)
            if diff_b:
                sd[f"{prefix}blocks.{i}.{o}.diff_b"] = torch.randn(w.shape[0], generator=g) * 0.1
    return sd


def _clone(sd):
    return {k: v.clone() for k, v in sd.items()}


def diffusers_reference(model, diffusers_sd, strength, metadata=None):
    """diffusers' own path: ``load_lora_adapter`` (PEFT layers, unmerged) + ``set_adapters`` strength."""
    ref = copy.deepcopy(model)
    ref.load_lora_adapter(diffusers_sd, prefix="transformer", adapter_name="ref", metadata=metadata)
    ref.set_adapters(["ref"], [strength])
    return ref


def _ours(model, sd, strength, metadata=None, support=WAN):
    ours = copy.deepcopy(model)
    conv = convert_lora(_clone(sd), ours, "test", metadata, support)
    assert not conv.unknown, conv.unknown
    apply(ours, [LoraSpec("test", strength, conv)])
    return ours, conv


@pytest.mark.parametrize("down,up,alpha,diff_b", [
    ("lora_down", "lora_up", 8.0, True),       # ComfyUI / Kijai's lightx2v + CausVid extractions (alpha, diff_b)
    ("lora_A", "lora_B", None, True),          # lightx2v's own releases (lora_A/B, original names, no alpha)
    ("lora_down", "lora_up", 2.0, False),      # plain ComfyUI LoRA
])
def test_wan_original_names_equal_diffusers(down, up, alpha, diff_b):
    base = _wan()
    sd = wan_original_lora(base, down=down, up=up, alpha=alpha, diff_b=diff_b)
    ours, conv = _ours(base, sd, 0.7)
    assert conv.via_diffusers > 0
    ref = diffusers_reference(base, WanLoraLoaderMixin.lora_state_dict(_clone(sd)), 0.7)
    x = _wan_inputs()
    out, want = _run(ours, x), _run(ref, x)
    assert (out - want).abs().max().item() <= TOL
    assert (out - _run(base, x)).abs().max().item() > 1e-2         # the LoRA does something


def test_wan_kohya_musubi_equal_diffusers():
    base = _wan()
    dotted = wan_original_lora(base, diff_b=False)
    kohya = {k.replace("diffusion_model.", "lora_unet_").replace(".lora_", "@lora_").replace(".alpha", "@alpha")
             .replace(".", "_").replace("@", ".").replace("_weight", ".weight"): v for k, v in dotted.items()}
    assert "lora_unet_blocks_0_self_attn_q.lora_down.weight" in kohya
    ours, conv = _ours(base, kohya, 1.0)
    assert conv.via_diffusers == len(kohya)            # the whole file went through diffusers' musubi converter
    ref = diffusers_reference(base, WanLoraLoaderMixin.lora_state_dict(_clone(kohya)), 1.0)
    x = _wan_inputs()
    assert (_run(ours, x) - _run(ref, x)).abs().max().item() <= TOL


def test_wan_partial_kohya_equals_diffusers_of_the_same_lora():
    """A kohya LoRA on self-attention only: diffusers' musubi converter refuses it (it wants every layer); the
    names are matched here and the result equals diffusers loading the same LoRA in the original-name layout."""
    base = _wan()
    dotted = wan_original_lora(base, layers=["self_attn.q", "self_attn.v"], diff_b=False)
    kohya = {k.replace("diffusion_model.blocks.", "lora_unet_blocks_").replace(".self_attn.", "_self_attn_"): v
             for k, v in dotted.items()}
    with pytest.raises(KeyError):
        WanLoraLoaderMixin.lora_state_dict(_clone(kohya))
    ours, _ = _ours(base, kohya, 0.5)
    ref = diffusers_reference(base, WanLoraLoaderMixin.lora_state_dict(_clone(dotted)), 0.5)
    x = _wan_inputs()
    assert (_run(ours, x) - _run(ref, x)).abs().max().item() <= TOL


def _peft_lora_file(tmp_path, model, r=4, alpha=8, targets=("to_q", "to_k", "to_v", "to_out.0")):
    """A diffusers-format LoRA file written by diffusers (``save_lora_weights`` with its adapter metadata)."""
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    trained = copy.deepcopy(model)
    cfg = LoraConfig(r=r, lora_alpha=alpha, target_modules=list(targets), init_lora_weights=False)
    trained.add_adapter(cfg, adapter_name="t")
    sd = get_peft_model_state_dict(trained, adapter_name="t")
    meta = cfg.to_dict()
    meta["target_modules"] = sorted(meta["target_modules"])
    meta.pop("peft_type", None)
    WanLoraLoaderMixin.save_lora_weights(tmp_path, transformer_lora_layers=sd,
                                         transformer_lora_adapter_metadata=meta)
    return tmp_path / "pytorch_lora_weights.safetensors"


def _pipeline_load(model, path, strength):
    """What a diffusers pipeline's ``load_lora_weights`` does: ``lora_state_dict`` (with the file's metadata), then
    the transformer's ``load_lora_adapter``."""
    sd, meta = WanLoraLoaderMixin.lora_state_dict(str(path), return_lora_metadata=True)
    return diffusers_reference(model, sd, strength, metadata=meta)


def test_diffusers_peft_file_with_metadata_equals_load_lora_adapter(tmp_path):
    base = _wan()
    path = _peft_lora_file(tmp_path, base, r=4, alpha=8)       # scale 2: alpha must come from the metadata
    ours = copy.deepcopy(base)
    conv = load_lora_file(path, ours, support=WAN)
    assert not conv.unknown and conv.format == "diffusers / PEFT"
    assert {p.scale for p in conv.patches.values()} == {2.0}
    apply(ours, [LoraSpec("peft", 0.8, conv)])
    ref = _pipeline_load(base, path, 0.8)
    assert ref.blocks[0].attn1.to_q.scaling["ref"] == pytest.approx(2.0 * 0.8)      # alpha/r · strength
    x = _wan_inputs()
    assert (_run(ours, x) - _run(ref, x)).abs().max().item() <= TOL


def _tiny_cogvideox():
    from diffusers import CogVideoXTransformer3DModel

    from idvideo_core.testing.tiny_consisid import randomise

    m = CogVideoXTransformer3DModel(num_attention_heads=2, attention_head_dim=16, in_channels=4, out_channels=4,
                                    time_embed_dim=16, text_embed_dim=32, num_layers=2, sample_width=8,
                                    sample_height=8, sample_frames=5, patch_size=2, max_text_seq_length=6,
                                    use_rotary_positional_embeddings=False)
    return randomise(m, 7).float().eval()


def _cog_inputs():
    g = torch.Generator().manual_seed(4)
    return (torch.randn(1, 2, 4, 8, 8, generator=g), torch.randn(1, 6, 32, generator=g), torch.tensor([400]))


def _run_cog(model, x):
    with torch.no_grad():
        return model(hidden_states=x[0], encoder_hidden_states=x[1], timestep=x[2], return_dict=False)[0]


def test_cogvideox_diffusers_file_equals_load_lora_adapter(tmp_path):
    base = _tiny_cogvideox()
    path = _peft_lora_file(tmp_path, base, r=4, alpha=4, targets=("to_q", "to_v", "proj_out"))
    ours = copy.deepcopy(base)
    conv = load_lora_file(path, ours, support=get_spec("consisid").lora)
    assert not conv.unknown
    apply(ours, [LoraSpec("cog", 1.3, conv)])
    ref = _pipeline_load(base, path, 1.3)
    x = _cog_inputs()
    out, want = _run_cog(ours, x), _run_cog(ref, x)
    assert (out - want).abs().max().item() <= TOL
    assert (out - _run_cog(base, x)).abs().max().item() > 1e-3


def test_cogvideox_kohya_names_equal_diffusers():
    """kohya names of diffusers layers (``lora_unet_transformer_blocks_0_attn1_to_q``) with alphas: the same LoRA
    as a diffusers state dict with alpha/rank folded in, through ``load_lora_adapter``."""
    base = _tiny_cogvideox()
    g = torch.Generator().manual_seed(9)
    kohya, peft_sd = {}, {}
    for i in range(2):
        for layer in ("attn1.to_q", "attn1.to_k", "ff.net.0.proj"):
            w = base.get_submodule(f"transformer_blocks.{i}.{layer}").weight
            d, u = torch.randn(3, w.shape[1], generator=g) * 0.2, torch.randn(w.shape[0], 3, generator=g) * 0.2
            k = f"lora_unet_transformer_blocks_{i}_{layer.replace('.', '_')}"
            kohya.update({f"{k}.lora_down.weight": d, f"{k}.lora_up.weight": u, f"{k}.alpha": torch.tensor(1.5)})
            peft_sd[f"transformer.transformer_blocks.{i}.{layer}.lora_A.weight"] = d * 0.5   # alpha / rank
            peft_sd[f"transformer.transformer_blocks.{i}.{layer}.lora_B.weight"] = u.clone()
    ours, conv = _ours(base, kohya, 1.0, support=get_spec("consisid").lora)
    assert len(conv.patches) == 6
    ref = diffusers_reference(base, peft_sd, 1.0)
    x = _cog_inputs()
    assert (_run_cog(ours, x) - _run_cog(ref, x)).abs().max().item() <= TOL


def test_lightx2v_extras_are_applied_as_deltas():
    """``diff`` (norms, head), ``diff_m`` (modulation), a stand-alone ``diff_b``: weight += strength · delta, on the
    diffusers parameter the original name maps to (original ``norm3`` is diffusers ``norm2``). diffusers' converter
    drops these; they are applied here."""
    base = _wan()
    g = torch.Generator().manual_seed(11)
    sd = {}
    targets = {
        "diffusion_model.blocks.0.norm3.diff": "blocks.0.norm2.weight",
        "diffusion_model.blocks.0.norm3.diff_b": "blocks.0.norm2.bias",
        "diffusion_model.blocks.1.self_attn.norm_q.diff": "blocks.1.attn1.norm_q.weight",
        "diffusion_model.blocks.0.diff_m": "blocks.0.scale_shift_table",
        "diffusion_model.head.head.diff": "proj_out.weight",
        "diffusion_model.head.head.diff_b": "proj_out.bias",
        "diffusion_model.time_projection.1.diff_b": "condition_embedder.time_proj.bias",
        "diffusion_model.patch_embedding.diff": "patch_embedding.weight",
    }
    params = dict(base.named_parameters())
    for k, p in targets.items():
        sd[k] = torch.randn(params[p].shape, generator=g) * 0.1
    ours, _ = _ours(base, sd, 0.6)
    got = dict(ours.named_parameters())
    for k, p in targets.items():
        want = params[p].detach().float() + 0.6 * sd[k]
        assert torch.allclose(got[p], want, atol=1e-7, rtol=0), k
    untouched = set(params) - set(targets.values())
    assert all(torch.equal(got[n], params[n]) for n in untouched)


def test_strength_zero_is_the_base_model_bit_for_bit():
    base = _wan()
    model = copy.deepcopy(base)
    conv = convert_lora(wan_original_lora(model), model, "z", support=WAN)
    apply(model, [LoraSpec("z", 0.0, conv)])
    for (n, a), (_, b) in zip(base.state_dict().items(), model.state_dict().items()):
        assert torch.equal(a, b), n
    x = _wan_inputs()
    assert torch.equal(_run(model, x), _run(base, x))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_switching_and_unloading_restore_exactly(dtype):
    base = tiny_transformer(0).to(dtype)
    model = copy.deepcopy(base)
    a = convert_lora(wan_original_lora(model, seed=1), model, "a", support=WAN)
    b = convert_lora(wan_original_lora(model, seed=2, down="lora_A", up="lora_B", alpha=None), model, "b",
                     support=WAN)
    apply(model, [LoraSpec("a", 1.0, a)])
    patched_a = {n: t.clone() for n, t in model.state_dict().items()}
    apply(model, [LoraSpec("b", 0.5, b), LoraSpec("a", 1.0, a)])         # switch: restore, then both
    apply(model, [LoraSpec("a", 1.0, a)])                                # back to a alone: same bits as before
    assert all(torch.equal(patched_a[n], t) for n, t in model.state_dict().items())
    assert restore(model) > 0
    for (n, x), (_, y) in zip(base.state_dict().items(), model.state_dict().items()):
        assert torch.equal(x, y), n


def test_unknown_keys_are_reported_by_name(tmp_path):
    base = _wan()
    sd = wan_original_lora(base, blocks=(0,), layers=["self_attn.q"])
    sd["diffusion_model.blocks.0.self_attn.q.dora_scale"] = torch.ones(256)
    sd["diffusion_model.blocks.7.self_attn.q.lora_down.weight"] = torch.zeros(4, 256)    # no block 7
    sd["diffusion_model.blocks.7.self_attn.q.lora_up.weight"] = torch.zeros(256, 4)
    sd["diffusion_model.blocks.0.mystery"] = torch.zeros(3)
    conv = convert_lora(sd, base, "u", support=WAN)
    text = " ".join(conv.unknown)
    for name in ("diffusion_model.blocks.0.self_attn.q.dora_scale",
                 "diffusion_model.blocks.7.self_attn.q.lora_down.weight",
                 "diffusion_model.blocks.7.self_attn.q.lora_up.weight", "diffusion_model.blocks.0.mystery"):
        assert name in text
    assert "blocks.0.attn1.to_q" in conv.patches                        # the rest still loads
    assert "NOT applied" in conv.summary() and "mystery" in conv.summary()


def test_a_lora_for_another_size_is_refused_before_touching_weights():
    base = _wan()
    model = copy.deepcopy(base)
    sd = wan_original_lora(model, blocks=(0,), layers=["self_attn.q"])
    sd["diffusion_model.blocks.0.self_attn.q.lora_down.weight"] = torch.zeros(4, 5120)     # a 14B LoRA
    conv = convert_lora(sd, model, "big", support=WAN)
    with pytest.raises(WrongModelError, match="blocks.0.attn1.to_q"):
        apply(model, [LoraSpec("big", 1.0, conv)])
    assert all(torch.equal(a, b) for a, b in zip(base.state_dict().values(), model.state_dict().values()))


def test_fp8_layers_patched_one_at_a_time_and_restored_exactly():
    from idvideo_core.memory.fp8 import (
        ABS_ERROR_BOUND_SCALED,
        FP8_DTYPE,
        REL_ERROR_BOUND,
        Fp8Linear,
        quantize_module_fp8,
    )

    model = _wan()
    report = quantize_module_fp8(model)
    assert report.quantized
    before = {n: t.clone() for n, t in model.state_dict().items()}
    deq = {n: m.dequantized_weight(torch.float32) for n, m in model.named_modules() if isinstance(m, Fp8Linear)}
    sd = wan_original_lora(_wan(), diff_b=False)
    conv = convert_lora(sd, model, "f", support=WAN)
    apply(model, [LoraSpec("f", 1.0, conv)])
    checked = 0
    for name, m in model.named_modules():
        if not isinstance(m, Fp8Linear):
            continue
        assert m.weight.dtype == FP8_DTYPE                            # still stored in fp8
        p = conv.patches.get(name)
        if p is None:
            continue
        want = deq[name] + p.scale * (p.up.float() @ p.down.float())
        got = m.dequantized_weight(torch.float32)
        bound = REL_ERROR_BOUND * want.abs() + ABS_ERROR_BOUND_SCALED * m.weight_scale
        assert bool(((got - want).abs() <= bound + 1e-7).all()), name
        assert (got - deq[name]).abs().max() > 1e-3
        checked += 1
    assert checked == len(conv.patches) > 0
    restore(model)
    assert all(torch.equal(before[n], t) for n, t in model.state_dict().items())


def test_lora_loader_node_chains_and_samples_with_and_without(tmp_path, monkeypatch):
    """Two loaders chained; the model without the LoRA still samples with the base weights afterwards."""
    from idvideo_core import lora as lora_mod
    from idvideo_core.backbones.base import LoadedModel
    from idvideo_core.backbones.wan.transformer import WanDiT
    from nodes.lora import IDVLoraLoader

    loras = tmp_path / "loras"
    loras.mkdir()
    base_tr = _wan()
    save_file(wan_original_lora(base_tr, seed=1), str(loras / "a.safetensors"))
    save_file(wan_original_lora(base_tr, seed=2, alpha=None), str(loras / "b.safetensors"))
    (loras / "notes.txt").write_text("x")
    monkeypatch.setenv("IDVIDEO_MODELS_DIR", str(tmp_path))
    assert lora_mod.list_loras() == ["a.safetensors", "b.safetensors"]
    model = LoadedModel(family="wan", transformer=WanDiT(copy.deepcopy(base_tr)), vae=None, scheduler_config={})
    node = IDVLoraLoader()
    m1, rep1 = node.load(model, "a.safetensors", 1.0)
    m2, rep2 = node.load(m1, "b.safetensors", 0.5)
    assert "20 layers patched" in rep1 and m2.transformer is model.transformer
    assert [s.name for s in m2.options["loras"]] == ["a.safetensors", "b.safetensors"]
    assert "loras" not in model.options                                  # the input model is unchanged
    lora_mod.sync(m2)
    assert lora_mod.applied(m2.transformer) == (("a.safetensors", 1.0), ("b.safetensors", 0.5))
    lora_mod.sync(model)                                                 # the other branch: no LoRA
    assert all(torch.equal(a, b) for a, b in zip(base_tr.state_dict().values(),
                                                 model.transformer.base.state_dict().values()))
    assert json.dumps(rep2)


def test_patch_writes_into_parked_home_copies():
    """Block swap / model offload keep one home copy per weight and load copies of it: a LoRA applied at rest
    must change (and restore) those very tensors, not replace them."""
    from idvideo_core.memory.moves import ParkedWeights

    base = _wan()
    model = copy.deepcopy(base)
    parked = ParkedWeights(model.blocks[1], "cpu")                    # as block swap parks a swapped block
    ptrs = [s.home.data_ptr() for s in parked.slots]
    conv = convert_lora(wan_original_lora(model), model, "p", support=WAN)
    apply(model, [LoraSpec("p", 1.0, conv)])
    q = model.blocks[1].attn1.to_q
    slot = next(s for s in parked.slots if s.owner is q and s.name == "weight")
    p = conv.patches["blocks.1.attn1.to_q"]
    want = base.blocks[1].attn1.to_q.weight.detach() + p.scale * (p.up.float() @ p.down.float())
    assert torch.allclose(slot.home, want, atol=1e-6)
    assert [s.home.data_ptr() for s in parked.slots] == ptrs                 # written in place
    restore(model)
    assert torch.equal(slot.home, base.blocks[1].attn1.to_q.weight)


def test_cli_lora_argument():
    from idvideo_core.cli import build_parser, lora_arg

    args = build_parser().parse_args(["generate", "--lora", "/x/a.safetensors:0.5", "--lora", "C:/b.safetensors"])
    assert [lora_arg(i) for i in args.lora] == [("/x/a.safetensors", 0.5), ("C:/b.safetensors", 1.0)]


def test_fp8_bias_deltas_and_weights_restore_together():
    """An fp8 layer's weight (fp8 + scale) and its float bias are patched and restored independently."""
    from idvideo_core.memory.fp8 import quantize_module_fp8

    model = _wan()
    quantize_module_fp8(model)
    before = {n: t.clone() for n, t in model.state_dict().items()}
    conv = convert_lora(wan_original_lora(_wan(), diff_b=True), model, "fb", support=WAN)
    apply(model, [LoraSpec("fb", 0.9, conv)])
    q = model.blocks[0].attn1.to_q
    assert not torch.equal(q.bias, before["blocks.0.attn1.to_q.bias"])
    assert not torch.equal(q.weight_scale, before["blocks.0.attn1.to_q.weight_scale"])
    restore(model)
    assert all(torch.equal(before[n], t) for n, t in model.state_dict().items())


def test_lightx2v_layout_equals_diffusers_plus_the_deltas_it_drops():
    """The whole lightx2v / CausVid layout (pairs + alpha + diff_b, norm diffs, diff_m): diffusers' own loading of
    what it converts, plus the deltas its converter drops (norm ``diff``/``diff_b``, ``diff_m``) added to the
    reference's base weights by hand as ComfyUI applies them (weight += strength · diff)."""
    from idvideo_core.testing.tiny_lora import lightx2v_lora_state_dict

    base = _wan()
    sd = {k: v.float() for k, v in lightx2v_lora_state_dict(base).items()}
    ours, _ = _ours(base, sd, 0.8)
    ref = copy.deepcopy(base)
    names = {"self_attn.norm_q": "attn1.norm_q.weight", "self_attn.norm_k": "attn1.norm_k.weight",
             "cross_attn.norm_q": "attn2.norm_q.weight", "cross_attn.norm_k": "attn2.norm_k.weight",
             "norm3": "norm2.weight"}
    dropped = 0
    with torch.no_grad():
        for i, blk in enumerate(ref.blocks):
            for orig, target in names.items():
                blk.get_parameter(target).add_(0.8 * sd.pop(f"diffusion_model.blocks.{i}.{orig}.diff"))
                dropped += 1
            blk.norm2.bias.add_(0.8 * sd.pop(f"diffusion_model.blocks.{i}.norm3.diff_b"))
            blk.scale_shift_table.add_(0.8 * sd.pop(f"diffusion_model.blocks.{i}.diff_m"))
            dropped += 2
    assert dropped == 7 * len(ref.blocks)
    ref.load_lora_adapter(WanLoraLoaderMixin.lora_state_dict(_clone(sd)), prefix="transformer", adapter_name="r")
    ref.set_adapters(["r"], [0.8])
    x = _wan_inputs()
    assert (_run(ours, x) - _run(ref, x)).abs().max().item() <= TOL


def test_conv_patch_embedding_lora_pair():
    """A LoRA pair on the Conv3d patch embedding (5-D down / up matrices, as LoRA extractors write for convs)."""
    base = _wan()
    w = base.patch_embedding.weight                                  # (dim, 16, 1, 2, 2)
    g = torch.Generator().manual_seed(2)
    down = torch.randn(3, *w.shape[1:], generator=g) * 0.1
    up = torch.randn(w.shape[0], 3, 1, 1, 1, generator=g) * 0.1
    sd = {"diffusion_model.patch_embedding.lora_down.weight": down,
          "diffusion_model.patch_embedding.lora_up.weight": up,
          "diffusion_model.patch_embedding.alpha": torch.tensor(6.0)}
    ours, _ = _ours(base, sd, 0.5)
    want = w.detach() + 0.5 * 2.0 * (up.flatten(1) @ down.flatten(1)).reshape(w.shape)
    assert torch.allclose(ours.patch_embedding.weight, want, atol=1e-6)
