"""Tiny LoRA files in the published layouts, and the tiny DiT file the fast templates name.

* :func:`lightx2v_lora_state_dict` — the layout of the lightx2v / CausVid Wan2.1 LoRAs as ComfyUI users have them
  (original Wan names under ``diffusion_model.``): ``lora_down`` / ``lora_up`` + ``alpha`` for the attention and FFN
  linears, ``diff_b`` bias deltas on them, ``diff`` / ``diff_b`` on the norms and ``blocks.N.diff_m`` modulation
  deltas (the keys diffusers' converter drops and ComfyUI reports as "lora key not loaded").
* :func:`write_phantom14b_fp8_file` — the tiny Phantom DiT as a ComfyUI ``fp8_e4m3fn`` single file, under the name the
  14B templates use.
"""
from __future__ import annotations

from pathlib import Path

import torch

DISTILL_LORA_NAME = "wan2.1_t2v_14b_lora_rank64_lightx2v_4step.safetensors"   # lightx2v/Wan2.1-Distill-Loras
PHANTOM_14B_FP8_NAME = "Phantom-Wan-14B_fp8_e4m3fn.safetensors"
_PAIRS = ("self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o", "cross_attn.q", "cross_attn.k",
          "cross_attn.v", "cross_attn.o", "ffn.0", "ffn.2")


def lightx2v_lora_state_dict(transformer, rank: int = 4, alpha: float = 4.0, seed: int = 40,
                             std: float = 0.05) -> dict:
    """A random LoRA for ``transformer`` (a diffusers ``WanTransformer3DModel``) in the lightx2v layout."""
    from .tiny_wan import original_dit_state_dict

    g = torch.Generator().manual_seed(seed)
    orig = original_dit_state_dict(transformer)
    sd = {}
    for i in range(len(transformer.blocks)):
        for layer in _PAIRS:
            w = orig[f"blocks.{i}.{layer}.weight"]
            pre = f"diffusion_model.blocks.{i}.{layer}"
            sd[f"{pre}.lora_down.weight"] = torch.randn(rank, w.shape[1], generator=g) * std
            sd[f"{pre}.lora_up.weight"] = torch.randn(w.shape[0], rank, generator=g) * std
            sd[f"{pre}.alpha"] = torch.tensor(float(alpha))
            sd[f"{pre}.diff_b"] = torch.randn(w.shape[0], generator=g) * std
        for norm in ("self_attn.norm_q", "self_attn.norm_k", "cross_attn.norm_q", "cross_attn.norm_k", "norm3"):
            w = orig[f"blocks.{i}.{norm}.weight"]
            sd[f"diffusion_model.blocks.{i}.{norm}.diff"] = torch.randn(w.shape, generator=g) * std
        sd[f"diffusion_model.blocks.{i}.norm3.diff_b"] = torch.randn(orig[f"blocks.{i}.norm3.bias"].shape,
                                                                     generator=g) * std
        sd[f"diffusion_model.blocks.{i}.diff_m"] = torch.randn(orig[f"blocks.{i}.modulation"].shape,
                                                               generator=g) * std
    return {k: v.to(torch.bfloat16).contiguous() for k, v in sd.items()}


def write_distill_lora(folder: Path | str, dit_seed: int = 20, name: str = DISTILL_LORA_NAME) -> Path:
    """The tiny LoRA for the tiny Phantom DiT (same random DiT as ``write_phantom_file``)."""
    from safetensors.torch import save_file

    from .tiny_wan import tiny_transformer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    save_file(lightx2v_lora_state_dict(tiny_transformer(dit_seed)), str(path))
    return path


def write_phantom14b_fp8_file(folder: Path | str, seed: int = 20, name: str = PHANTOM_14B_FP8_NAME) -> Path:
    """The tiny Phantom DiT (text width of the tiny UMT5, so templates run end to end) as a ComfyUI ``fp8_e4m3fn``
    single file: :func:`~.tiny_wan.dit_file_tensors` (block linears in fp8 without scales, the rest in float)."""
    from safetensors.torch import save_file

    from .tiny_wan import dit_file_tensors, tiny_transformer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    save_file(dit_file_tensors(tiny_transformer(seed), "fp8_e4m3fn", "model.diffusion_model."), str(path))
    return path
