"""Wan key maps: original ↔ diffusers, both directions, Concat-ID extras and the rename pitfalls."""
from __future__ import annotations

import pytest
import torch

from idvideo_core.backbones.wan import keys as K
from idvideo_core.testing.tiny_wan import adaln_extras_original, original_dit_state_dict, tiny_transformer, tiny_vae


@pytest.fixture(scope="module")
def tiny():
    return tiny_transformer(0)


def test_round_trip_both_directions(tiny):
    dsd = tiny.state_dict()
    orig = K.diffusers_to_original(dsd)
    assert len(orig) == len(dsd)
    assert K.original_to_diffusers(orig).keys() == dsd.keys()
    # and original → diffusers → original
    assert K.diffusers_to_original(K.original_to_diffusers(orig)).keys() == orig.keys()


def test_stock_keys_agree_with_diffusers_single_file_converter(tiny):
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    orig = original_dit_state_dict(tiny)
    theirs = convert_wan_transformer_to_diffusers(dict(orig))
    ours = K.original_to_diffusers(orig)
    assert ours.keys() == theirs.keys()
    for k in ours:
        assert ours[k] is theirs[k] or torch.equal(ours[k], theirs[k])


def test_concatid_extras_and_rename_pitfalls(tiny):
    orig = original_dit_state_dict(tiny)
    orig.update(adaln_extras_original(tiny))
    d = K.original_to_diffusers(orig)
    # modulation_ref must not become "scale_shift_table_ref"; time_projection_ref.1 must not hit time_proj
    assert "blocks.0.ref_scale_shift_table" in d and "blocks.1.ref_scale_shift_table" in d
    assert not any("scale_shift_table_ref" in k for k in d)
    assert torch.equal(d["ref_time_proj.weight"], orig["time_projection_ref.1.weight"])
    assert torch.equal(d["condition_embedder.time_proj.weight"], orig["time_projection.1.weight"])
    assert torch.equal(d["blocks.0.scale_shift_table"], orig["blocks.0.modulation"])
    assert torch.equal(d["blocks.0.ref_scale_shift_table"], orig["blocks.0.modulation_ref"])
    # original norm3 (affine cross-attention norm) is diffusers norm2; diffusers norm3 has no weights
    assert torch.equal(d["blocks.0.norm2.weight"], orig["blocks.0.norm3.weight"])
    assert not any(".norm3." in k for k in d)
    assert K.original_to_diffusers_key("blocks.3.norm3.bias") == "blocks.3.norm2.bias"
    assert K.diffusers_to_original_key("blocks.3.norm2.bias") == "blocks.3.norm3.bias"
    # back again
    assert K.diffusers_to_original(d).keys() == orig.keys()
    base, extra = K.split_concatid_extras(d)
    assert set(extra) == {"ref_time_proj.weight", "ref_time_proj.bias", "blocks.0.ref_scale_shift_table",
                          "blocks.1.ref_scale_shift_table"}
    assert K.is_concatid_adaln(orig.keys()) and not K.is_concatid_adaln(base.keys())


def test_prefix_detection_and_unknown_keys(tiny):
    orig = original_dit_state_dict(tiny)
    pref = {"model.diffusion_model." + k: v for k, v in orig.items()}
    assert K.detect_transformer_format(pref) == "original"
    assert K.detect_transformer_format(tiny.state_dict()) == "diffusers"
    assert K.original_to_diffusers(pref).keys() == tiny.state_dict().keys()
    with pytest.raises(K.UnknownKeysError) as e:
        K.original_to_diffusers({**orig, "blocks.0.mystery.weight": torch.zeros(1)})
    assert e.value.keys == ["blocks.0.mystery.weight"]


def test_vae_inverse_agrees_with_diffusers_converter():
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    sd = tiny_vae().state_dict()
    orig = K.vae_diffusers_to_original(sd)
    assert K.detect_vae_format(orig) == "original" and K.detect_vae_format(sd) == "diffusers"
    back = convert_wan_vae_to_diffusers(dict(orig))
    assert back.keys() == sd.keys()
    assert all(torch.equal(back[k], sd[k]) for k in sd)
    assert "decoder.upsamples.4.shortcut.weight" in orig or not any("conv_shortcut" in k for k in sd)
