"""T5-XXL and CogVideoX VAE single files for Concat-ID-CogVideoX (ComfyUI t5xxl layout, diffusers-named VAE, SAT
3d-vae.pt)."""
from __future__ import annotations

import pytest
import torch

from idvideo_core.backbones.concatid_cogvideox import components as C
from idvideo_core.errors import MissingModelError, WrongModelError


def _tiny_t5(max_distance=128, seed=0):
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    cfg = T5Config(vocab_size=120, d_model=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2,
                   relative_attention_num_buckets=8, relative_attention_max_distance=max_distance,
                   feed_forward_proj="gated-gelu", is_encoder_decoder=False, dropout_rate=0.0)
    return T5EncoderModel(cfg).eval()


def _tiny_vae(seed=1):
    from diffusers import AutoencoderKLCogVideoX

    vae = AutoencoderKLCogVideoX(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 32, 64, 64),
                                 layers_per_block=1, norm_num_groups=32, temporal_compression_ratio=4,
                                 down_block_types=("CogVideoXDownBlock3D",) * 4,
                                 up_block_types=("CogVideoXUpBlock3D",) * 4).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in vae.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.02)
    return vae


def test_t5_single_file_in_comfy_layout(tmp_path):
    from safetensors.torch import save_file

    ref = _tiny_t5()
    sd = {k: v.contiguous() for k, v in ref.state_dict().items()}
    assert "encoder.block.1.layer.1.DenseReluDense.wi_1.weight" in sd and "shared.weight" in sd
    path = tmp_path / "t5xxl_fp16.safetensors"
    save_file({k: v.half() for k, v in sd.items() if k != "encoder.embed_tokens.weight"}, str(path))
    got = C.load_t5_file(path, torch.float32)
    ids = torch.tensor([[5, 17, 33, 2, 0, 0]])
    with torch.no_grad():
        want = ref.half().float()(ids)[0]
        out = got(ids)[0]
    assert (out - want).abs().max() < 1e-5


def test_umt5_is_refused():
    sd = {"shared.weight": torch.zeros(4, 2), "encoder.block.0.layer.0.SelfAttention.q.weight": torch.zeros(2, 2),
          "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight": torch.zeros(8, 1),
          "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight": torch.zeros(8, 1)}
    with pytest.raises(WrongModelError, match="UMT5"):
        C.t5_config_from_keys(sd)


def test_tokenizer_needs_base_or_comfyui(tmp_path):
    with pytest.raises(MissingModelError) as exc:
        C.load_t5_tokenizer(tmp_path)
    assert str(tmp_path / "tokenizer") in str(exc.value)


def _to_sat_vae(sd, num_up=4):
    """Diffusers → SAT VAE names: CogVideo's converter rules run backwards (written here independently)."""
    out = {}
    for k, v in sd.items():
        parts = k.split(".")
        k2 = k.replace("conv_shortcut.", "nin_shortcut.")
        if ".down_blocks." in k and ".resnets." in k:
            k2 = k2.replace("down_blocks.", "down.").replace("resnets.", "block.")
        elif ".downsamplers.0." in k:
            k2 = k2.replace("down_blocks.", "down.").replace("downsamplers.0.", "downsample.")
        elif ".up_blocks." in k:
            i = int(parts[2])
            k2 = k2.replace(f"up_blocks.{i}.", f"up.{num_up - 1 - i}.").replace("resnets.", "block.")
            k2 = k2.replace("upsamplers.0.", "upsample.")
        elif ".mid_block.resnets." in k:
            j = int(parts[3])
            k2 = k2.replace(f"mid_block.resnets.{j}.", f"mid.block_{j + 1}.")
        out[k2] = v
    return out


def test_vae_single_files_diffusers_and_sat(tmp_path):
    from safetensors.torch import save_file

    ref = _tiny_vae()
    sd = ref.state_dict()
    p1 = tmp_path / "cogvideox_vae.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(p1))
    sat = _to_sat_vae(sd)
    assert "encoder.down.0.block.0.conv1.conv.weight" in sat and "decoder.up.3.block.0.norm1.conv_y.conv.weight" in sat
    assert "encoder.mid.block_1.conv1.conv.weight" in sat
    sat["loss.logvar"] = torch.zeros(())                            # training-only weights in the SAT file
    p2 = tmp_path / "3d-vae.pt"
    torch.save({"state_dict": sat}, p2)
    x = torch.rand(1, 3, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        want = ref.encode(x).latent_dist.mean
    for p in (p1, p2):
        vae = C.load_vae_file(p, torch.float32)
        assert vae.config.block_out_channels == (32, 32, 64, 64) and vae.config.latent_channels == 4
        assert all(torch.equal(v, sd[k]) for k, v in vae.state_dict().items())
        with torch.no_grad():
            assert torch.equal(vae.encode(x).latent_dist.mean, want)
    bad = dict(sat)
    bad["encoder.down.0.attn.0.q.weight"] = torch.zeros(1)
    with pytest.raises(WrongModelError):
        C.vae_from_state_dict(bad)


def test_loader_with_single_files(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    from idvideo_core.backbones.concatid_cogvideox.loading import load_named
    from idvideo_core.testing.tiny_concatid_cog import build_concatid_cog_models

    root = build_concatid_cog_models(tmp_path / "models")
    monkeypatch.setenv("IDVIDEO_MODELS_DIR", str(root))
    from diffusers import AutoencoderKLCogVideoX
    from transformers import T5EncoderModel

    base = root / "cogvideox" / "CogVideoX-5b"
    (root / "vae").mkdir()
    (root / "text_encoders").mkdir()
    vae = AutoencoderKLCogVideoX.from_pretrained(str(base / "vae"))
    save_file({k: v.contiguous() for k, v in vae.state_dict().items()}, str(root / "vae" / "cog_vae.safetensors"))
    te = T5EncoderModel.from_pretrained(str(base / "text_encoder"))
    save_file({k: v.contiguous() for k, v in te.state_dict().items() if k != "encoder.embed_tokens.weight"},
              str(root / "text_encoders" / "t5xxl_fp16.safetensors"))
    # the tiny base VAE has 4 groups, the single-file loader assumes CogVideoX-5B's 32: it must say so clearly
    with pytest.raises(WrongModelError, match="32 norm groups"):
        load_named("single-identity", "CogVideoX-5b", "fp32", vae="cog_vae.safetensors")
    m = load_named("single-identity", "CogVideoX-5b", "fp32", text_encoder="t5xxl_fp16.safetensors")
    assert m.text_encoder.config.relative_attention_max_distance == 128 and m.tokenizer is not None
    with pytest.raises(MissingModelError, match="no base folder"):
        load_named("single-identity", None, "fp32", vae="cog_vae.safetensors")
