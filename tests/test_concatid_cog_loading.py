"""Concat-ID-CogVideoX SAT checkpoints: key mapping, safe pickle reading, config inference, converter."""
from __future__ import annotations

import os

import pytest
import torch

from idvideo_core.backbones.concatid_cogvideox import checkpoint, convert, loading
from idvideo_core.backbones.concatid_cogvideox import keys as K
from idvideo_core.errors import (
    CorruptFileError,
    MissingModelError,
    UnsafeFileError,
    WrongModelError,
)
from idvideo_core.testing import tiny_concatid_cog as T


@pytest.fixture(scope="module")
def tiny():
    return T.tiny_transformer(seed=3)


@pytest.fixture(scope="module")
def sat_folder(tmp_path_factory, tiny):
    return T.write_sat_folder(tmp_path_factory.mktemp("ccog") / "two-identities", seed=3, transformer=tiny)


def test_sat_keys_are_the_published_names(tiny):
    sat = T.sat_state_dict(tiny)
    assert all(k.startswith("model.diffusion_model.") for k in sat)
    for name in ("transformer.layers.1.attention.query_key_value.weight", "transformer.layers.0.attention.dense.bias",
                 "transformer.layers.0.input_layernorm.weight", "transformer.layers.0.post_attention_layernorm.bias",
                 "transformer.layers.0.mlp.dense_h_to_4h.weight", "transformer.layers.0.mlp.dense_4h_to_h.weight",
                 "mixins.adaln_layer.adaLN_modulations.1.1.weight", "mixins.adaln_layer.query_layernorm_list.0.weight",
                 "mixins.adaln_layer.key_layernorm_list.1.bias", "mixins.patch_embed.proj.weight",
                 "mixins.patch_embed.text_proj.weight", "mixins.final_layer.adaLN_modulation.1.weight",
                 "mixins.final_layer.norm_final.weight", "mixins.final_layer.linear.bias",
                 "transformer.final_layernorm.weight", "time_embed.0.weight", "time_embed.2.bias",
                 "transformer.position_embeddings.weight"):
        assert "model.diffusion_model." + name in sat, name
    inner = 2 * 16
    assert sat["model.diffusion_model.transformer.layers.0.attention.query_key_value.weight"].shape == (3 * inner, inner)
    assert sat["model.diffusion_model.mixins.adaln_layer.adaLN_modulations.0.1.weight"].shape == (12 * inner, 16)


def test_round_trip_and_chunk_layout(tiny):
    dsd = tiny.state_dict()
    sat = K.diffusers_to_sat(dsd)
    back = K.sat_to_diffusers(sat)
    assert set(back) == set(dsd)
    assert all(torch.equal(back[k], dsd[k]) for k in dsd)
    # the documented layout: qkv = cat(q, k, v); adaLN 12 chunks = norm1[0:3] norm2[0:3] norm1[3:6] norm2[3:6]
    qkv = sat["model.diffusion_model.transformer.layers.0.attention.query_key_value.weight"]
    assert torch.equal(qkv[32:64], dsd["transformer_blocks.0.attn1.to_k.weight"])
    ada = sat["model.diffusion_model.mixins.adaln_layer.adaLN_modulations.0.1.bias"].chunk(12)
    n1 = dsd["transformer_blocks.0.norm1.linear.bias"].chunk(6)
    n2 = dsd["transformer_blocks.0.norm2.linear.bias"].chunk(6)
    assert torch.equal(ada[6], n1[3]) and torch.equal(ada[3], n2[0]) and torch.equal(ada[11], n2[5])


def test_unknown_and_ignored_keys(tiny):
    sat = T.sat_state_dict(tiny)
    for k in K.IGNORED_SAT_KEYS:          # only SAT's fixed position tables are dropped
        sat["model.diffusion_model." + k] = torch.zeros(1)
    assert "norm_final.weight" in K.sat_to_diffusers(sat)
    for extra in ("mixins.pos_embed.pos_embedding", "transformer.word_embeddings.weight",
                  "transformer.layers.0.attention.query_key_value.lora_A"):
        bad = dict(sat)
        bad["model.diffusion_model." + extra] = torch.zeros(3)
        with pytest.raises(K.UnknownKeysError) as exc:
            K.sat_to_diffusers(bad)
        assert exc.value.keys == [extra]


def test_load_sat_folder_reads_latest_and_infers_config(sat_folder, tiny):
    assert checkpoint.sat_states_path(sat_folder) == sat_folder / "1000" / "mp_rank_00_model_states.pt"
    m = loading.load_transformer(sat_folder)
    c = m.config
    assert (c.num_attention_heads, c.attention_head_dim, c.num_layers, c.time_embed_dim, c.text_embed_dim,
            c.in_channels, c.out_channels, c.patch_size) == (2, 16, 2, 16, 32, 4, 4, 2)
    assert c.norm_eps == 1e-6 and c.use_rotary_positional_embeddings and not c.use_learned_positional_embeddings
    assert m.norm_final.eps == 1e-6 and m.norm_out.norm.eps == 1e-6
    ref = tiny.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in m.state_dict().items())
    # the iteration folder and the .pt itself load too
    assert loading.load_transformer(sat_folder / "1000").config.num_layers == 2


def test_missing_latest_and_bad_latest(tmp_path, sat_folder):
    with pytest.raises(MissingModelError) as exc:
        checkpoint.sat_states_path(tmp_path)
    assert str(tmp_path / "latest") in str(exc.value)
    (tmp_path / "latest").write_text("../../etc")
    with pytest.raises(CorruptFileError):
        checkpoint.sat_states_path(tmp_path)
    (tmp_path / "latest").write_text("2000")
    with pytest.raises(MissingModelError) as exc:
        checkpoint.sat_states_path(tmp_path)
    assert "2000" in str(exc.value)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo SHOULD-NOT-RUN > /dev/null",))


def test_pickle_with_code_is_refused_without_running_it(tmp_path, tiny, monkeypatch):
    path = tmp_path / "mp_rank_00_model_states.pt"
    torch.save({"module": T.sat_state_dict(tiny), "args": _Evil()}, path)
    calls = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a))
    with pytest.raises(UnsafeFileError) as exc:
        checkpoint.load_sat_states(path)
    assert "system" in str(exc.value) and not calls


def test_converter_round_trip(tmp_path, sat_folder, tiny):
    for names in ("sat", "diffusers"):
        out = tmp_path / f"cc_{names}.safetensors"
        assert convert.main([str(sat_folder), str(out), "--names", names]) == 0
        from safetensors.torch import load_file

        sd = load_file(str(out))
        assert K.detect_names(sd) == names
        assert "model.diffusion_model.transformer.position_embeddings.weight" not in sd
        m = loading.load_transformer(out)
        ref = tiny.state_dict()
        assert all(torch.equal(v, ref[k]) for k, v in m.state_dict().items())
    assert convert.main([str(sat_folder), str(tmp_path / "x.pt")]) == 2


def test_wrong_model_is_named(tmp_path):
    from safetensors.torch import save_file

    p = tmp_path / "wan.safetensors"
    save_file({"blocks.0.self_attn.q.weight": torch.zeros(2, 2)}, str(p))
    with pytest.raises(WrongModelError):
        loading.load_transformer(p)
