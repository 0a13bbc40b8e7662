"""Concat-ID-CogVideoX end to end on tiny SAT-layout weights: nodes vs core API with one seed, reference order,
reference-count checks and warnings, missing-model errors."""
from __future__ import annotations

import logging

import pytest
import torch


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from idvideo_core.testing.tiny_concatid_cog import build_concatid_cog_models

    return build_concatid_cog_models(tmp_path_factory.mktemp("ccog_models"))


@pytest.fixture()
def env(models, monkeypatch):
    monkeypatch.setenv("IDVIDEO_MODELS_DIR", str(models))
    return models


def _img(seed, h=40, w=30):
    return torch.rand(1, h, w, 3, generator=torch.Generator().manual_seed(seed))


def _load(pack, weights="two-identities"):
    M = pack.NODE_CLASS_MAPPINGS
    model, = M["IDVConcatIDCogVideoXLoader"]().load(weights, "CogVideoX-5b", precision="fp32", memory_mode="auto",
                                                    blocks_to_swap=0)
    return M, model


def test_loader_lists_sat_folders_and_base(pack, env):
    M = pack.NODE_CLASS_MAPPINGS
    spec = M["IDVConcatIDCogVideoXLoader"].INPUT_TYPES()["required"]
    assert spec["weights"][0] == ["Concat-ID-pre-training", "single-identity", "two-identities"]
    assert spec["base_folder"][0] == ["CogVideoX-5b", "(none: single files below)"]
    assert spec["vae"][0][0] == spec["text_encoder"][0][0] == "(from base folder)"


def test_nodes_equal_core_api_and_order_matters(pack, env):
    from idvideo_core.backbones.concatid_cogvideox import generate as G

    M, model = _load(pack)
    assert model.family == "concatid_cogvideox" and model.transformer.config.norm_eps == 1e-6
    a, b = _img(1), _img(2, 50, 20)
    refs, preview = M["IDVMultiIdentityConcat"]().concat(64, 32, "whole image, black pad", "black pad",
                                                         subject_1=a, subject_2=b)
    assert [r.label for r in refs] == ["subject 1", "subject 2"] and preview.shape == (2, 32, 64, 3)
    text, = M["IDVTextEncode"]().encode(model, "two people talk", "")
    via_nodes, = M["IDVSampler"]().sample(model, text, 64, 32, 9, 3, 6.0, 42, references=refs)
    assert via_nodes.shape == (9, 32, 64, 3)
    # the core API: the package's sample + decode on the same references and seed
    images = [r.image for r in refs]
    lat = G.sample(model, text, images, G.Settings(width=64, height=32, num_frames=9, steps=3, cfg=6.0, seed=42))
    assert torch.equal(via_nodes, G.decode(model, lat))
    # reference order changes the video (prompt@@img1@@img2: ref 1 at t = T, ref 2 at t = T + 1)
    swapped, _ = M["IDVMultiIdentityConcat"]().concat(64, 32, "whole image, black pad", "black pad",
                                                      subject_1=b, subject_2=a)
    other, = M["IDVSampler"]().sample(model, text, 64, 32, 9, 3, 6.0, 42, references=swapped)
    assert (other - via_nodes).abs().max() > 1e-3
    again, = M["IDVSampler"]().sample(model, text, 64, 32, 9, 3, 6.0, 43, references=refs)
    assert not torch.equal(again, via_nodes)


def test_reference_count_rules(pack, env, caplog):
    from idvideo_core.errors import InputError

    M, model = _load(pack, "single-identity")
    text, = M["IDVTextEncode"]().encode(model, "a person", "")
    with pytest.raises(InputError, match="at least one reference"):
        M["IDVSampler"]().sample(model, text, 64, 32, 9, 1, 6.0, 42)
    four, _ = M["IDVMultiIdentityConcat"]().concat(64, 32, "whole image, black pad", "black pad",
                                                   subject_1=_img(1), subject_2=_img(2), subject_3=_img(3),
                                                   references=[])
    four = four + four[:1]
    with pytest.raises(InputError, match="at most 3"):
        M["IDVSampler"]().sample(model, text, 64, 32, 9, 1, 6.0, 42, references=four)
    with caplog.at_level(logging.WARNING, logger="idvideo"):
        M["IDVSampler"]().sample(model, text, 64, 32, 9, 1, 6.0, 42, references=four[:2])
    assert "trained with one reference" in caplog.text and "two-identities" in caplog.text


def test_negative_prompt_is_not_used(pack, env):
    M, model = _load(pack)
    refs, _ = M["IDVMultiIdentityConcat"]().concat(64, 32, "whole image, black pad", "black pad", subject_1=_img(5))
    t1, = M["IDVTextEncode"]().encode(model, "a person", "")
    t2, = M["IDVTextEncode"]().encode(model, "a person", "blurry, ugly")
    f1, = M["IDVSampler"]().sample(model, t1, 64, 32, 9, 2, 6.0, 1, references=refs)
    f2, = M["IDVSampler"]().sample(model, t2, 64, 32, 9, 2, 6.0, 1, references=refs)
    assert torch.equal(f1, f2)          # unconditional branch = zeroed T5 output, whatever the negative prompt


def test_missing_parts_list_every_search_path(pack, env, tmp_path):
    from idvideo_core.backbones.concatid_cogvideox import loading
    from idvideo_core.errors import MissingModelError

    with pytest.raises(MissingModelError) as exc:
        loading.resolve_base_folder("CogVideoX-nope")
    msg = str(exc.value)
    assert str(env / "cogvideox" / "CogVideoX-nope") in msg and str(env / "consisid" / "CogVideoX-nope") in msg
    assert "THUDM/CogVideoX-5b" in msg
    broken = tmp_path / "base"
    (broken / "vae").mkdir(parents=True)
    with pytest.raises(MissingModelError) as exc:
        loading.check_base_folder(broken)
    assert "text_encoder" in str(exc.value) and "tokenizer" in str(exc.value)
    with pytest.raises(MissingModelError) as exc:
        loading.resolve_dit("three-identities")
    assert "yongzhong/Concat-ID" in str(exc.value) and str(env / "concatid" / "three-identities") in str(exc.value)


def test_concatid_wan_warning_says_trained_with_one(pack, tmp_path_factory, monkeypatch, caplog):
    from idvideo_core.testing import build_wan_models

    root = build_wan_models(tmp_path_factory.mktemp("wan_models"))
    monkeypatch.setenv("IDVIDEO_MODELS_DIR", str(root))
    M = pack.NODE_CLASS_MAPPINGS
    model, = M["IDVWanModelLoader"]().load("Concat-ID-Wan", "Wan2.1-T2V-1.3B-Diffusers", "first_stage.pt",
                                          "(from base folder)", "(from base folder)", "fp32", "auto", 0)
    refs, _ = M["IDVMultiIdentityConcat"]().concat(64, 32, "whole image, black pad", "black pad",
                                                   subject_1=_img(1), subject_2=_img(2))
    text, = M["IDVTextEncode"]().encode(model, "two people", "")
    with caplog.at_level(logging.WARNING, logger="idvideo"):
        M["IDVSampler"]().sample(model, text, 64, 32, 5, 1, 5.0, 0, references=refs)
    assert "trained with ONE reference only" in caplog.text
