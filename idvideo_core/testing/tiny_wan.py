"""Tiny random Wan2.1 checkpoints in the published layouts (tests and smoke runs; nothing is downloaded).

* :func:`write_diffusers_folder` — ``Wan2.1-T2V-1.3B-Diffusers`` layout: ``model_index.json``, ``transformer/``,
  ``vae/`` (AutoencoderKLWan), ``text_encoder/`` (UMT5), ``tokenizer/`` (sentencepiece trained on the spot),
  ``scheduler/``.
* :func:`write_comfy_files` — ComfyUI single files with ORIGINAL Wan key names: ``diffusion_models/*.safetensors``,
  ``vae/wan_2.1_vae.safetensors``, ``text_encoders/umt5_xxl_*.safetensors`` (HF T5 keys + ``spiece_model`` bytes).
* :func:`write_concatid_files` — ``first_stage.pt`` / ``second_stage_adaln.pt`` (original keys; AdaLN adds
  ``time_projection_ref.1.*`` and ``blocks.N.modulation_ref``), pickled state dicts.
* :func:`write_phantom_file` — ``Phantom-Wan-1.3B.pth``.

Dims: head_dim stays 128 (as in every Wan2.1 model, and what single-file loading infers), two heads, two layers.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

TINY_DIT = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=128, in_channels=16,
                out_channels=16, text_dim=32, freq_dim=32, ffn_dim=64, num_layers=2, cross_attn_norm=True,
                qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024)
TINY_VAE = dict(base_dim=8, z_dim=16)
UMT5_VOCAB = 256


@dataclass
class TinyWanPaths:
    diffusers_folder: Path | None = None
    comfy_root: Path | None = None           # holds diffusion_models/, vae/, text_encoders/
    dit_file: Path | None = None
    vae_file: Path | None = None
    text_encoder_file: Path | None = None
    concatid_stage1: Path | None = None
    concatid_adaln: Path | None = None
    phantom: Path | None = None


def _randomise(module: torch.nn.Module, seed: int, std: float = 0.1) -> None:
    """Random weights with a visible effect everywhere (norm scales around 1, the rest around 0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=g) * std
            if "norm" in name and p.ndim == 1:
                p.copy_(1 + noise)
            else:
                p.copy_(noise)


def tiny_transformer(seed: int = 0):
    from diffusers import WanTransformer3DModel

    model = WanTransformer3DModel(**TINY_DIT)
    _randomise(model, seed)
    return model.eval()


def tiny_vae(seed: int = 1):
    from diffusers import AutoencoderKLWan

    vae = AutoencoderKLWan(**TINY_VAE)
    _randomise(vae, seed, std=0.05)
    return vae.eval()


def tiny_umt5(seed: int = 2):
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(seed)
    cfg = UMT5Config(vocab_size=UMT5_VOCAB, d_model=TINY_DIT["text_dim"], d_kv=16, d_ff=64, num_layers=2,
                     num_heads=2, relative_attention_num_buckets=32, relative_attention_max_distance=128,
                     feed_forward_proj="gated-gelu", is_encoder_decoder=False, dropout_rate=0.0)
    return UMT5EncoderModel(cfg).eval()


def adaln_extras_original(transformer, seed: int = 3) -> dict:
    """Concat-ID AdaLN extras in original names: copies of time_projection/modulation plus noise (as if trained)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    tp = transformer.condition_embedder.time_proj
    out["time_projection_ref.1.weight"] = tp.weight.detach() + 0.1 * torch.randn(tp.weight.shape, generator=g)
    out["time_projection_ref.1.bias"] = tp.bias.detach() + 0.1 * torch.randn(tp.bias.shape, generator=g)
    for i, blk in enumerate(transformer.blocks):
        t = blk.scale_shift_table.detach()
        out[f"blocks.{i}.modulation_ref"] = t + 0.1 * torch.randn(t.shape, generator=g)
    return out


def original_dit_state_dict(transformer) -> dict:
    from ..backbones.wan.keys import diffusers_to_original

    return {k: v.detach().clone().contiguous() for k, v in diffusers_to_original(transformer.state_dict()).items()}


def _write_tokenizer(folder: Path) -> Path:
    from .tiny_text import write_t5_tokenizer

    return write_t5_tokenizer(folder)


def write_diffusers_folder(root: Path, seed: int = 0) -> Path:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    tiny_transformer(seed).save_pretrained(str(root / "transformer"))
    tiny_vae(seed + 1).save_pretrained(str(root / "vae"))
    tiny_umt5(seed + 2).save_pretrained(str(root / "text_encoder"))
    _write_tokenizer(root / "tokenizer")
    (root / "scheduler").mkdir(exist_ok=True)
    (root / "scheduler" / "scheduler_config.json").write_text(json.dumps({
        "_class_name": "UniPCMultistepScheduler", "num_train_timesteps": 1000, "prediction_type": "flow_prediction",
        "use_flow_sigmas": True, "flow_shift": 3.0, "solver_order": 2}, indent=1))
    (root / "model_index.json").write_text(json.dumps({
        "_class_name": "WanPipeline", "transformer": ["diffusers", "WanTransformer3DModel"],
        "vae": ["diffusers", "AutoencoderKLWan"], "text_encoder": ["transformers", "UMT5EncoderModel"],
        "tokenizer": ["transformers", "T5TokenizerFast"], "scheduler": ["diffusers", "UniPCMultistepScheduler"]},
        indent=1))
    return root


def write_comfy_files(models_dir: Path, seed: int = 0, prefix: str = "", dit_name: str =
                      "wan2.1_t2v_1.3B_fp16.safetensors") -> TinyWanPaths:
    """ComfyUI single files under ``models_dir`` (same random weights as :func:`write_diffusers_folder`)."""
    from safetensors.torch import save_file

    from ..backbones.wan.keys import vae_diffusers_to_original

    models_dir = Path(models_dir)
    for sub in ("diffusion_models", "vae", "text_encoders"):
        (models_dir / sub).mkdir(parents=True, exist_ok=True)
    dit = original_dit_state_dict(tiny_transformer(seed))
    dit_path = models_dir / "diffusion_models" / dit_name
    save_file({prefix + k: v for k, v in dit.items()}, str(dit_path))
    vae_sd = {k: v.detach().clone().contiguous() for k, v in
              vae_diffusers_to_original(tiny_vae(seed + 1).state_dict()).items()}
    vae_path = models_dir / "vae" / "wan_2.1_vae.safetensors"
    save_file(vae_sd, str(vae_path))
    te = tiny_umt5(seed + 2)
    te_sd = {k: v.detach().clone().contiguous() for k, v in te.state_dict().items()
             if k != "encoder.embed_tokens.weight"}
    import shutil
    import tempfile

    tok_dir = Path(tempfile.mkdtemp(prefix="idv-tok-"))
    try:  # the tokenizer only travels inside the single file, as in ComfyUI's UMT5 files
        spm = _write_tokenizer(tok_dir / "tokenizer") / "spiece.model"
        te_sd["spiece_model"] = torch.frombuffer(bytearray(spm.read_bytes()), dtype=torch.uint8).clone()
    finally:
        shutil.rmtree(tok_dir, ignore_errors=True)
    te_path = models_dir / "text_encoders" / "umt5_xxl_fp16.safetensors"
    save_file(te_sd, str(te_path))
    return TinyWanPaths(comfy_root=models_dir, dit_file=dit_path, vae_file=vae_path, text_encoder_file=te_path)


def write_concatid_files(folder: Path, seed: int = 10) -> TinyWanPaths:
    """``first_stage.pt`` and ``second_stage_adaln.pt`` as torch-pickled state dicts with original key names."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    t1 = tiny_transformer(seed)
    s1 = original_dit_state_dict(t1)
    torch.save(s1, folder / "first_stage.pt")
    t2 = tiny_transformer(seed + 1)
    s2 = original_dit_state_dict(t2)
    s2.update(adaln_extras_original(t2, seed + 2))
    torch.save(s2, folder / "second_stage_adaln.pt")
    return TinyWanPaths(concatid_stage1=folder / "first_stage.pt", concatid_adaln=folder / "second_stage_adaln.pt")


def write_phantom_file(folder: Path, seed: int = 20) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "Phantom-Wan-1.3B.pth"
    torch.save(original_dit_state_dict(tiny_transformer(seed)), path)
    return path


FACE_PARSING_LABELS = ["background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear",
                       "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth"]


def write_face_parsing_folder(folder: Path, seed: int = 30) -> Path:
    """A tiny random Segformer in the ``jonathandinu/face-parsing`` layout (config.json + model.safetensors +
    preprocessor_config.json), 19 labels with the published names."""
    from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor

    folder = Path(folder)
    torch.manual_seed(seed)
    cfg = SegformerConfig(num_channels=3, num_encoder_blocks=4, depths=[1, 1, 1, 1], sr_ratios=[8, 4, 2, 1],
                          hidden_sizes=[8, 16, 24, 32], num_attention_heads=[1, 1, 1, 1], decoder_hidden_size=16,
                          num_labels=19, id2label={i: n for i, n in enumerate(FACE_PARSING_LABELS)},
                          label2id={n: i for i, n in enumerate(FACE_PARSING_LABELS)})
    SegformerForSemanticSegmentation(cfg).eval().save_pretrained(str(folder), safe_serialization=True)
    SegformerImageProcessor(size={"height": 128, "width": 128}).save_pretrained(str(folder))
    return folder


# ------------------------------------------------------------------------------------------ Phantom-Wan-14B files
# Phantom-Wan-14B's shape ratios at toy size: FFN = 2.7 × dim (13824 / 5120), heads 128 wide as in every Wan2.1,
# 5 heads (dim 640 is the smallest multiple of 128 whose 2.7× is whole), 4096→64 text width, 256→32 frequencies.
TINY_DIT_14B_RATIO = dict(TINY_DIT, num_attention_heads=5, ffn_dim=1728, num_layers=2, text_dim=64)
DIT_FORMATS = ("bf16", "fp16", "fp8_e4m3fn", "fp8_e4m3fn_scaled")


def tiny_transformer_14b_ratio(seed: int = 5):
    """A 14B-ratio DiT whose weights are exactly bf16 values (so the bf16 file is lossless), in float32."""
    from diffusers import WanTransformer3DModel

    model = WanTransformer3DModel(**TINY_DIT_14B_RATIO)
    _randomise(model, seed, std=0.05)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    return model.eval()


def _fp8_target(key: str, v: torch.Tensor) -> bool:
    """The tensors ComfyUI's fp8 Wan files store in fp8: 2-D weights of the blocks' attention and FFN layers."""
    return (key.startswith("blocks.") and key.endswith(".weight") and v.ndim == 2
            and any(p in key for p in ("self_attn.", "cross_attn.", ".ffn.")))


def dit_file_tensors(transformer, fmt: str, prefix: str = "") -> dict:
    """Original-key tensors of ``transformer`` as a file of format ``fmt`` stores them (see :data:`DIT_FORMATS`).

    ``fp8_e4m3fn``: block Linear weights cast to float8 (no scale); ``fp8_e4m3fn_scaled``: divided by a per-tensor
    scale amax/448 first, the scale stored as ``<layer>.scale_weight`` (float32 scalar) beside a ``scaled_fp8`` marker,
    as ComfyUI writes them. Norms, biases, modulation and embeddings stay in float (bf16; norms float32)."""
    from ..memory.fp8 import FP8_DTYPE, quantize_fp8

    sd = original_dit_state_dict(transformer)
    out = {}
    for k, v in sd.items():
        v = v.float()
        if fmt == "fp16":
            out[k] = v.half()
        elif fmt == "bf16" or not _fp8_target(k, v):
            out[k] = v.float() if (".norm" in k and v.ndim == 1) else v.to(torch.bfloat16)
        elif fmt == "fp8_e4m3fn":
            out[k] = v.clamp(-448, 448).to(FP8_DTYPE)
        else:
            q, s = quantize_fp8(v, per_row=False)
            out[k] = q
            out[k[: -len("weight")] + "scale_weight"] = s.reshape(()).float()
    if fmt == "fp8_e4m3fn_scaled":
        out["scaled_fp8"] = torch.empty(2, dtype=FP8_DTYPE)
    return {prefix + k: v.contiguous() for k, v in out.items()}


def write_dit_formats(folder: Path, transformer=None, prefix: str = "model.diffusion_model.") -> dict[str, Path]:
    """ComfyUI single files ``Phantom-Wan-14B_<fmt>.safetensors`` of one tiny 14B-ratio DiT, one per format."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    transformer = transformer if transformer is not None else tiny_transformer_14b_ratio()
    out = {}
    for fmt in DIT_FORMATS:
        path = folder / f"Phantom-Wan-14B_{fmt}.safetensors"
        save_file(dit_file_tensors(transformer, fmt, prefix), str(path))
        out[fmt] = path
    return out


def write_phantom14b_shards(folder: Path, transformer=None, shards: int = 3) -> Path:
    """The official layout: ``Phantom_Wan_14B-0000N-of-0000M.safetensors`` (original Wan keys, bf16, no prefix) and
    ``Phantom_Wan_14B.safetensors.index.json`` (``weight_map``: key → shard). Returns the index path."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    transformer = transformer if transformer is not None else tiny_transformer_14b_ratio()
    sd = {k: v.to(torch.bfloat16).contiguous() for k, v in original_dit_state_dict(transformer).items()}
    keys = sorted(sd)
    per = -(-len(keys) // shards)
    weight_map, total = {}, 0
    for i in range(shards):
        name = f"Phantom_Wan_14B-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: sd[k] for k in keys[i * per:(i + 1) * per]}
        save_file(part, str(folder / name))
        weight_map.update({k: name for k in part})
        total += sum(v.numel() * v.element_size() for v in part.values())
    index = folder / "Phantom_Wan_14B.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=1))
    return index
