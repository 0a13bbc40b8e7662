"""Wan loading from both layouts (format from keys), Concat-ID/Phantom checkpoints, converter CLI, stock parity."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from idvideo_core.backbones.wan import keys as K
from idvideo_core.backbones.wan.loading import load_dit, load_text_encoder, load_vae
from idvideo_core.backbones.wan.model import load_wan_model
from idvideo_core.backbones.wan.text import encode_texts
from idvideo_core.errors import UnsafeFileError, WrongModelError
from idvideo_core.testing.tiny_wan import (write_comfy_files, write_concatid_files, write_diffusers_folder,
                                           write_phantom_file)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    root = tmp_path_factory.mktemp("wan")
    folder = write_diffusers_folder(root / "Wan2.1-T2V-1.3B-Diffusers")
    comfy = write_comfy_files(root / "models")
    cid = write_concatid_files(root / "concatid")
    phantom = write_phantom_file(root / "phantom")
    return folder, comfy, cid, phantom


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(2, 16, 3, 6, 8, generator=g), torch.tensor([999.0, 321.5]),
            torch.randn(2, 9, 32, generator=g))


def test_both_layouts_give_the_same_dit_and_stock_parity(layouts):
    from diffusers import WanTransformer3DModel

    folder, comfy, _, _ = layouts
    stock = WanTransformer3DModel.from_pretrained(str(folder / "transformer")).eval()
    from_folder = load_dit(folder)
    from_file = load_dit(comfy.dit_file)          # original keys, safetensors
    x, t, ctx = _inputs()
    with torch.no_grad():
        ref = stock(x, t, ctx).sample
        for dit in (from_folder, from_file):
            out = dit(x, t, ctx)                  # zero references → our path
            assert (out - ref).abs().max().item() <= 1e-5
            assert dit.adaln is None


def test_prefixed_comfy_file_and_format_from_keys_not_names(layouts, tmp_path):
    folder, comfy, _, _ = layouts
    # A file named like a VAE that holds a prefixed DiT still loads as a DiT.
    c2 = write_comfy_files(tmp_path / "m", prefix="model.diffusion_model.", dit_name="looks_like_vae.safetensors")
    a, b = load_dit(c2.dit_file), load_dit(comfy.dit_file)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    with pytest.raises(WrongModelError):
        load_dit(comfy.vae_file)                  # a VAE is refused as a DiT, by its keys


def test_vae_both_layouts_equal(layouts):
    folder, comfy, _, _ = layouts
    v1, v2 = load_vae(folder), load_vae(comfy.vae_file)
    x = torch.rand(1, 3, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        a = v1.encode(x).latent_dist.mode()
        b = v2.encode(x).latent_dist.mode()
    assert torch.equal(a, b)


def test_text_encoder_both_layouts_equal(layouts):
    folder, comfy, _, _ = layouts
    e1, t1 = load_text_encoder(folder)
    e2, t2 = load_text_encoder(comfy.text_encoder_file)     # spiece_model embedded in the file
    texts = ["a woman smiling in the park", "..."]
    ids1, m1 = t1(texts)
    ids2, m2 = t2(texts)
    assert torch.equal(ids1, ids2) and torch.equal(m1, m2)
    a, b = encode_texts(e1, t1, texts), encode_texts(e2, t2, texts)
    assert a.shape == (2, 512, 32)
    assert torch.allclose(a, b, atol=1e-6)
    n = int(m1[0].sum())
    assert a[0, n:].abs().max() == 0 and a[0, :n].abs().max() > 0       # zero padding after the real tokens


def test_concatid_checkpoints_weights_only(layouts):
    _, _, cid, _ = layouts
    s1 = load_dit(cid.concatid_stage1)
    assert s1.adaln is None
    ad = load_dit(cid.concatid_adaln)
    assert ad.adaln is not None and len(ad.adaln.blocks) == 2
    raw = torch.load(cid.concatid_adaln, weights_only=True)
    assert torch.equal(ad.adaln.blocks[1].ref_scale_shift_table, raw["blocks.1.modulation_ref"])
    assert torch.equal(ad.adaln.ref_time_proj.weight, raw["time_projection_ref.1.weight"])
    assert torch.equal(ad.base.condition_embedder.time_proj.weight, raw["time_projection.1.weight"])


def test_unsafe_pickle_refused(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    p = tmp_path / "first_stage.pt"
    with open(p, "wb") as fh:
        pickle.dump({"x": Evil()}, fh)
    with pytest.raises(UnsafeFileError):
        load_dit(p)


@pytest.mark.parametrize("names", ["original", "diffusers"])
def test_converter_cli(layouts, tmp_path, names):
    _, _, cid, _ = layouts
    out = tmp_path / f"adaln_{names}.safetensors"
    r = subprocess.run([sys.executable, "-m", "idvideo_core.backbones.wan.convert", str(cid.concatid_adaln), str(out),
                        "--names", names], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    from idvideo_core.safeload import safetensors_keys

    ks = safetensors_keys(out)
    assert K.detect_transformer_format(ks) == names and K.is_concatid_adaln(ks)
    a, b = load_dit(cid.concatid_adaln), load_dit(out)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_phantom_pth_and_full_model_assembly(layouts):
    folder, comfy, cid, phantom = layouts
    m = load_wan_model("phantom_wan", base=folder, dit=phantom, precision="fp32", device="cpu")
    assert m.family == "phantom_wan" and m.tokenizer is not None and m.text_encoder is not None
    m2 = load_wan_model("concatid_wan", dit=cid.concatid_adaln, vae=comfy.vae_file,
                        text_encoder=comfy.text_encoder_file, precision="fp32", device="cpu")
    assert m2.options["adaln"] is True
    with pytest.raises(WrongModelError):
        load_wan_model("phantom_wan", base=folder, dit=cid.concatid_adaln, precision="fp32", device="cpu",
                       load_text_encoder_too=False)
