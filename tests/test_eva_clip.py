"""EVA02-CLIP vision tower: parity with consisid_eva_clip, config inference, and safe/clear loading.

Every test writes a tiny checkpoint in the published layout (full CLIP state dict, fp16, ``visual.*`` + rope tables
+ text keys) and goes through the real loader.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from idvideo_core.errors import CorruptFileError, InputError, MissingModelError, UnsafeFileError, WrongModelError
from idvideo_core.faces.eva_clip import (
    OPENAI_MEAN, OPENAI_STD, EvaVisionConfig, EvaVisionTower, infer_eva_config, load_eva_clip, visual_state_dict)
from idvideo_core.testing.tiny_eva import (
    reference_model_config, tiny_eva_config, tiny_eva_state_dict, write_tiny_eva_checkpoint)

TINY_NAME = "IDVideo-tiny-EVA02-CLIP-test"


def _photo_pixels(tower: EvaVisionTower) -> torch.Tensor:
    """A real face photo, square-cropped around the face, through the tower's own ConsisID-style preprocessing."""
    import insightface
    from PIL import Image

    path = Path(insightface.__file__).parent / "data" / "images" / "Tom_Hanks_54745.png"
    img = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    h, w = img.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    crop = torch.from_numpy(img[top:top + s, left:left + s]).permute(2, 0, 1)[None].contiguous()
    return tower.prepare(crop)


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    return write_tiny_eva_checkpoint(tmp_path_factory.mktemp("eva") / "EVA02_CLIP_L_336_psz14_s6B.pt", seed=0)


@pytest.fixture(scope="module")
def reference_visual(tiny_ckpt):
    """consisid_eva_clip's own model for the tiny config, loaded by its own loader from the same file."""
    pytest.importorskip("consisid_eva_clip")
    from consisid_eva_clip import create_model_and_transforms, factory

    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(factory._MODEL_CONFIGS, TINY_NAME, reference_model_config(tiny_eva_config()))
        mp.setenv("RoPE", "0")  # create_model sets this process-wide; restore it afterwards
        model, _, _ = create_model_and_transforms(TINY_NAME, str(tiny_ckpt), precision="fp32", device="cpu",
                                                  force_custom_clip=True)
    return model.visual.eval()


def test_parity_with_reference_on_real_photo(tiny_ckpt, reference_visual):
    ours = load_eva_clip(tiny_ckpt)
    ckpt_keys = set(torch.load(tiny_ckpt, weights_only=True))
    ref_keys = {f"visual.{k}" for k in reference_visual.state_dict()}
    assert ref_keys <= ckpt_keys, "tiny file must hold every tensor the reference tower has"

    pixels = _photo_pixels(ours)
    assert pixels.shape == (1, 3, 336, 336)
    with torch.no_grad():
        ref_proj, ref_hidden = reference_visual(pixels, return_all_features=False, return_hidden=True, shuffle=False)
        proj, hidden = ours(pixels)

    assert proj.shape == (1, 32) and proj.dtype == torch.float32
    assert [tuple(h.shape) for h in hidden] == [(1, 577, 32)] * 5
    assert len(ref_hidden) == 5
    torch.testing.assert_close(proj, ref_proj, atol=1e-5, rtol=0)
    for mine, theirs in zip(hidden, ref_hidden):
        torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=0)
    # The taps really are different depths of the stream, not one tensor five times.
    assert (hidden[0] - hidden[-1]).abs().max() > 0.1


def test_rope_tables_match_reference(tiny_ckpt, reference_visual):
    ours = load_eva_clip(tiny_ckpt)
    torch.testing.assert_close(ours.rope.cos, reference_visual.rope.freqs_cos, atol=1e-6, rtol=0)
    torch.testing.assert_close(ours.rope.sin, reference_visual.rope.freqs_sin, atol=1e-6, rtol=0)


def test_attributes_and_bf16_load(tiny_ckpt):
    tower = load_eva_clip(tiny_ckpt, dtype=torch.bfloat16)
    assert tower.image_size == 336
    assert tuple(tower.image_mean) == OPENAI_MEAN and tuple(tower.image_std) == OPENAI_STD
    assert tower.dtype == torch.bfloat16 and tower.rope.cos.dtype == torch.bfloat16
    assert not any(p.requires_grad for p in tower.parameters()) and not tower.training
    with torch.no_grad():
        proj, hidden = tower(torch.zeros(1, 3, 336, 336))
    assert proj.dtype == torch.bfloat16 and torch.isfinite(proj.float()).all() and len(hidden) == 5


def test_wrong_input_size_is_input_error(tiny_ckpt):
    tower = load_eva_clip(tiny_ckpt)
    with pytest.raises(InputError, match="336"):
        tower(torch.zeros(1, 3, 224, 224))


def test_config_inferred_from_state_dict():
    assert infer_eva_config(visual_state_dict(tiny_eva_state_dict())) == tiny_eva_config()
    other = EvaVisionConfig(image_size=224, patch_size=16, width=24, depth=6, head_dim=8, mlp_hidden=40,
                            embed_dim=12)
    assert infer_eva_config(visual_state_dict(tiny_eva_state_dict(other))) == other
    assert other.hidden_taps == (4,) and tiny_eva_config().hidden_taps == (4, 8, 12, 16, 20)
    # Without the rotary tables the head size falls back to EVA02-CLIP's 64.
    wide = dataclasses.replace(other, width=128, head_dim=32)
    no_rope = {k: v for k, v in tiny_eva_state_dict(wide).items() if "rope" not in k}
    assert infer_eva_config(visual_state_dict(no_rope)).head_dim == 64


def test_other_config_loads_and_runs(tmp_path):
    cfg = EvaVisionConfig(image_size=224, patch_size=16, width=24, depth=6, head_dim=8, mlp_hidden=40, embed_dim=12)
    tower = load_eva_clip(write_tiny_eva_checkpoint(tmp_path / "small.pt", cfg=cfg))
    assert tower.cfg == cfg
    with torch.no_grad():
        proj, hidden = tower(torch.randn(2, 3, 224, 224))
    assert proj.shape == (2, 12) and [tuple(h.shape) for h in hidden] == [(2, 197, 24)]


def test_real_l14_336_config_on_meta_matches_reference_parameter_count(monkeypatch):
    pytest.importorskip("consisid_eva_clip")
    from consisid_eva_clip.factory import get_model_config
    from consisid_eva_clip.model import _build_vision_tower

    cfg = EvaVisionConfig.l14_336()
    assert (cfg.num_tokens, cfg.num_heads, cfg.mlp_hidden, cfg.embed_dim) == (577, 16, 2730, 768)
    real = get_model_config("EVA02-CLIP-L-14-336")
    # The reference reads drop-path rates with .item(), impossible on meta: compute just those on the CPU.
    linspace = torch.linspace
    monkeypatch.setattr(torch, "linspace", lambda *a, **k: linspace(*a, **{**k, "device": "cpu"}))
    with torch.device("meta"):
        ref = _build_vision_tower(real["embed_dim"], real["vision_cfg"])
        ours = EvaVisionTower(cfg)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(ours) == count(ref) == 304_432_832
    ref_shapes = {k: tuple(v.shape) for k, v in ref.state_dict().items() if "rope" not in k}
    assert ref_shapes == {k: tuple(v.shape) for k, v in ours.state_dict().items()}


def test_safetensors_and_prefix_variants_load_the_same(tmp_path, tiny_ckpt):
    base = load_eva_clip(tiny_ckpt)
    st = load_eva_clip(write_tiny_eva_checkpoint(tmp_path / "eva.safetensors", seed=0))
    sd = torch.load(tiny_ckpt, weights_only=True)
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, tmp_path / "ddp.pt")
    ddp = load_eva_clip(tmp_path / "ddp.pt")
    torch.save({k[len("visual."):]: v for k, v in sd.items() if k.startswith("visual.")}, tmp_path / "bare.pth")
    bare = load_eva_clip(tmp_path / "bare.pth")
    x = torch.randn(1, 3, 336, 336)
    with torch.no_grad():
        want = base(x)[0]
        for tower in (st, ddp, bare):
            assert torch.equal(tower(x)[0], want)
    assert not any(k.startswith("text") for k in base.state_dict())


class _RunsCode:
    def __reduce__(self):
        return (print, ("this pickle runs code",))


def test_pickle_that_runs_code_is_refused(tmp_path):
    path = tmp_path / "EVA02_CLIP_L_336_psz14_s6B.pt"
    torch.save({"visual.pos_embed": torch.zeros(1), "payload": _RunsCode()}, path)
    with pytest.raises(UnsafeFileError):
        load_eva_clip(path)


def test_truncated_file_is_corrupt(tmp_path, tiny_ckpt):
    data = tiny_ckpt.read_bytes()
    path = tmp_path / "EVA02_CLIP_L_336_psz14_s6B.pt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError, match="download it again"):
        load_eva_clip(path)


def test_missing_tensor_is_corrupt(tmp_path):
    sd = tiny_eva_state_dict()
    del sd["visual.blocks.7.mlp.w3.weight"]
    torch.save(sd, tmp_path / "eva.pt")
    with pytest.raises(CorruptFileError, match=r"visual\.blocks\.7\.mlp\.w3\.weight"):
        load_eva_clip(tmp_path / "eva.pt")


def test_missing_file_lists_where_it_looked(tmp_path):
    with pytest.raises(MissingModelError, match="EVA02_CLIP_L_336_psz14_s6B"):
        load_eva_clip(tmp_path / "nope.pt")


@pytest.mark.parametrize("state", [
    {"visual.conv1.weight": torch.zeros(4, 3, 2, 2), "visual.positional_embedding": torch.zeros(5, 4)},
    {"text.token_embedding.weight": torch.zeros(4, 4)},
    {"weight": torch.zeros(2)},
], ids=["openai-clip", "text-only", "unrelated"])
def test_not_an_eva_tower_is_wrong_model(tmp_path, state):
    torch.save(state, tmp_path / "x.pt")
    with pytest.raises(WrongModelError, match="not an EVA02-CLIP checkpoint"):
        load_eva_clip(tmp_path / "x.pt")


def test_other_eva_variant_is_wrong_model(tmp_path):
    sd = tiny_eva_state_dict()
    sd["visual.blocks.0.attn.qkv.weight"] = torch.zeros(96, 32)  # EVA01-style fused qkv
    torch.save(sd, tmp_path / "eva01.pt")
    with pytest.raises(WrongModelError, match="variant"):
        load_eva_clip(tmp_path / "eva01.pt")
