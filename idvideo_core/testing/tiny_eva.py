"""Tiny EVA02-CLIP checkpoints in the published file layout, for tests.

The real ``EVA02_CLIP_L_336_psz14_s6B.pt`` is a full CLIP state dict in fp16: ``visual.*`` (including the rotary
tables ``visual.rope.freqs_*`` and one copy per block, ``visual.blocks.N.attn.rope.freqs_*``) next to the text
tower. The tiny file keeps that layout and the real token count (336 px / patch 14 → 577 tokens) and depth (24, so
all five hidden-state taps exist), shrinking only the widths.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..faces.eva_clip import EvaVisionConfig, EvaVisionTower, rope_tables

# Text tower of the tiny file: enough keys (with shapes a reference CLIP built from TINY_TEXT_CFG accepts) to make a
# loader prove it skips the text half.
TINY_TEXT_CFG = {"context_length": 77, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1}


def tiny_eva_config() -> EvaVisionConfig:
    """Real token grid and depth, tiny widths: width 32, 2 heads of 16, SwiGLU 85 (= int(32 * 2.6667)), embed 32."""
    return EvaVisionConfig(image_size=336, patch_size=14, width=32, depth=24, head_dim=16,
                           mlp_hidden=int(32 * 2.6667), embed_dim=32)


def reference_model_config(cfg: EvaVisionConfig, text_cfg: dict | None = None) -> dict:
    """The ``consisid_eva_clip`` model-config JSON (as in ``model_configs/EVA02-CLIP-L-14-336.json``) for ``cfg``."""
    return {
        "embed_dim": cfg.embed_dim,
        "vision_cfg": {
            "image_size": cfg.image_size, "layers": cfg.depth, "width": cfg.width, "drop_path_rate": 0,
            "head_width": cfg.head_dim, "mlp_ratio": (cfg.mlp_hidden + 0.5) / cfg.width,
            "patch_size": cfg.patch_size, "eva_model_name": "eva-clip-idvideo-test", "xattn": True,
            "fusedLN": True, "rope": True, "pt_hw_seq_len": cfg.pt_hw_seq_len, "intp_freq": cfg.rope_interpolate,
            "naiveswiglu": True, "subln": True,
        },
        "text_cfg": dict(text_cfg or TINY_TEXT_CFG, xattn=False, fusedLN=True),
    }


def _random_visual_state(cfg: EvaVisionConfig, seed: int) -> dict[str, torch.Tensor]:
    """Weights scaled so activations stay O(1) through 24 blocks: far from zero (a parity test on near-zero outputs
    proves little) yet not growing to tens, where fp32 rounding of different-but-equal kernels alone nears 1e-5."""
    gen = torch.Generator().manual_seed(seed)
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in EvaVisionTower(cfg).state_dict().items()}
    out = {}
    for name, shape in shapes.items():
        noise = torch.randn(shape, generator=gen)
        if name.endswith(("norm1.weight", "norm2.weight", "ln.weight", "norm.weight")):
            value = 1.0 + 0.1 * noise
        elif name.endswith(("bias",)) or name in ("cls_token", "pos_embed"):
            value = (0.5 if name in ("cls_token", "pos_embed") else 0.1) * noise
        else:  # linear / conv weights: fan-in scaling
            fan_in = int(torch.tensor(shape[1:]).prod())
            value = noise / fan_in ** 0.5
            if name.endswith(("attn.proj.weight", "mlp.w3.weight")):  # residual branches: keep the stream O(1)
                value = value / (2 * cfg.depth) ** 0.5
        out[name] = value
    return out


def tiny_eva_state_dict(cfg: EvaVisionConfig | None = None, seed: int = 0,
                        dtype: torch.dtype = torch.float16) -> dict[str, torch.Tensor]:
    """A full-CLIP state dict in the published layout (``visual.*`` + rope tables + a few text-tower keys)."""
    cfg = cfg or tiny_eva_config()
    sd = {f"visual.{k}": v.to(dtype) for k, v in _random_visual_state(cfg, seed).items()}
    cos, sin = rope_tables(cfg)
    for prefix in ["visual."] + [f"visual.blocks.{i}.attn." for i in range(cfg.depth)]:
        sd[f"{prefix}rope.freqs_cos"] = cos.to(dtype).clone()
        sd[f"{prefix}rope.freqs_sin"] = sin.to(dtype).clone()
    gen = torch.Generator().manual_seed(seed + 1)
    t = TINY_TEXT_CFG
    sd["text.token_embedding.weight"] = (0.02 * torch.randn(t["vocab_size"], t["width"], generator=gen)).to(dtype)
    sd["text.positional_embedding"] = (0.01 * torch.randn(t["context_length"], t["width"], generator=gen)).to(dtype)
    sd["logit_scale"] = torch.tensor(4.6052, dtype=dtype)
    return sd


def write_tiny_eva_checkpoint(path: Path | str, seed: int = 0, cfg: EvaVisionConfig | None = None,
                              dtype: torch.dtype = torch.float16) -> Path:
    """Write a tiny EVA02-CLIP checkpoint (``.pt`` via ``torch.save`` of a plain dict, or ``.safetensors``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = tiny_eva_state_dict(cfg, seed, dtype)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    else:
        torch.save(sd, path)
    return path
