"""A tiny random ConsisID checkpoint in exactly the ``BestWishYsh/ConsisID-preview`` folder layout.

``model_index.json``, ``transformer/`` (sharded safetensors + index), ``vae/``, ``text_encoder/`` (sharded T5),
``tokenizer/`` (sentencepiece trained on the spot), ``scheduler/``. The real loading code reads it unchanged. The
face encoder (``face_encoder/``) is written by :func:`idvideo_core.testing.build_consisid_folder`.

Sizes: 64×96 video (8×12 latents, the model's "trained size" through its learned positional embedding, just as the
real model is fixed at 480×720), 9 frames (3 latent frames), 4 latent channels.
"""
from __future__ import annotations

import json
from pathlib import Path

# The tiny EVA tower's widths decide the LFE input sizes (see idvideo_core.testing.tiny_eva).
TINY_WIDTH, TINY_HEIGHT, TINY_FRAMES = 96, 64, 9
TEXT_DIM = 32

SCHEDULER_CONFIG = {
    "_class_name": "CogVideoXDPMScheduler",
    "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": False,
    "clip_sample_range": 1.0, "num_train_timesteps": 1000, "prediction_type": "v_prediction",
    "rescale_betas_zero_snr": True, "sample_max_value": 1.0, "set_alpha_to_one": True, "snr_shift_scale": 1.0,
    "steps_offset": 0, "timestep_spacing": "trailing", "trained_betas": None,
}


def transformer_config(eva_width: int, eva_embed_dim: int) -> dict:
    return dict(
        num_attention_heads=3, attention_head_dim=32, in_channels=8, out_channels=4, time_embed_dim=16,
        text_embed_dim=TEXT_DIM, num_layers=4, sample_width=TINY_WIDTH // 8, sample_height=TINY_HEIGHT // 8,
        sample_frames=TINY_FRAMES, patch_size=2, temporal_compression_ratio=4, max_text_seq_length=226,
        use_rotary_positional_embeddings=True, use_learned_positional_embeddings=True,
        is_train_face=True, is_kps=False, cross_attn_interval=2, cross_attn_dim_head=16, cross_attn_num_heads=2,
        LFE_id_dim=512 + eva_embed_dim, LFE_vit_dim=eva_width, LFE_depth=10, LFE_dim_head=16, LFE_num_heads=2,
        LFE_num_id_token=5, LFE_num_querie=8, LFE_output_dim=64, LFE_ff_mult=2, LFE_num_scale=5,
        local_face_scale=1.0,
    )


VAE_CONFIG = dict(
    in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8, 16, 16), layers_per_block=1,
    norm_num_groups=4, temporal_compression_ratio=4, sample_height=TINY_HEIGHT, sample_width=TINY_WIDTH,
    scaling_factor=0.7,
    down_block_types=("CogVideoXDownBlock3D",) * 4, up_block_types=("CogVideoXUpBlock3D",) * 4,
)


def randomise(module, seed: int, std: float = 0.05):
    """Random weights everywhere (diffusers zero-inits some output layers, which would hide bugs)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim == 1 and ("norm" in name or name.endswith("bias")):
                continue
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return module


def write_transformer(folder: Path, eva_width: int, eva_embed_dim: int, seed: int = 0) -> Path:
    from diffusers import ConsisIDTransformer3DModel

    model = ConsisIDTransformer3DModel(**transformer_config(eva_width, eva_embed_dim))
    randomise(model, seed)
    model.save_pretrained(str(folder), max_shard_size="1MB", safe_serialization=True)
    return Path(folder)


def write_vae(folder: Path, seed: int = 1) -> Path:
    from diffusers import AutoencoderKLCogVideoX

    vae = AutoencoderKLCogVideoX(**VAE_CONFIG)
    randomise(vae, seed, std=0.1)
    vae.save_pretrained(str(folder), safe_serialization=True)
    return Path(folder)


def write_consisid_base(root: Path, eva_width: int, eva_embed_dim: int, seed: int = 0) -> Path:
    """Everything but ``face_encoder/``."""
    from .tiny_text import write_t5_encoder, write_t5_tokenizer

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    write_transformer(root / "transformer", eva_width, eva_embed_dim, seed)
    write_vae(root / "vae", seed + 1)
    write_t5_tokenizer(root / "tokenizer", seed=seed)
    from transformers import T5Tokenizer

    vocab = len(T5Tokenizer.from_pretrained(str(root / "tokenizer")))
    write_t5_encoder(root / "text_encoder", vocab, d_model=TEXT_DIM, seed=seed + 2)
    (root / "scheduler").mkdir(exist_ok=True)
    (root / "scheduler" / "scheduler_config.json").write_text(json.dumps(SCHEDULER_CONFIG, indent=1))
    (root / "model_index.json").write_text(json.dumps({
        "_class_name": "ConsisIDPipeline", "_diffusers_version": "0.32.0.dev0",
        "scheduler": ["diffusers", "CogVideoXDPMScheduler"], "text_encoder": ["transformers", "T5EncoderModel"],
        "tokenizer": ["transformers", "T5Tokenizer"], "transformer": ["diffusers", "ConsisIDTransformer3DModel"],
        "vae": ["diffusers", "AutoencoderKLCogVideoX"]}, indent=1))
    return root
