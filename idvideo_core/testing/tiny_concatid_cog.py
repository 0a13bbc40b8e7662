"""Tiny random Concat-ID-CogVideoX checkpoints in the published SAT layout, plus a tiny CogVideoX-5B base folder.

SAT folder (as ``yongzhong/Concat-ID`` ``single-identity/`` / ``two-identities/`` and ``Concat-ID-pre-training``)::

    <folder>/latest                                  "1000"
    <folder>/1000/mp_rank_00_model_states.pt         {'module': {model.diffusion_model.<SAT key>: tensor}, …}

The state dict uses the real SAT key names (``transformer.layers.N.attention.query_key_value.weight``,
``mixins.adaln_layer.adaLN_modulations.N.1.weight``, …, and SAT's unused ``transformer.position_embeddings.weight``);
the rest of the pickle is DeepSpeed/SAT bookkeeping of the same kinds the real files carry (iteration, DeepSpeed
``param_shapes`` of ``torch.Size`` in ``OrderedDict``s, a ``set``, ``random.getstate()`` and numpy's RNG state).

Base folder (``models/cogvideox/CogVideoX-5b``): ``text_encoder/`` (sharded T5), ``tokenizer/``, ``vae/``.
Sizes: 64×96 video, 9 frames → latents 3×4×8×12; DiT 2 layers, 2 heads of 16, text 32.
"""
from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

TINY_WIDTH, TINY_HEIGHT, TINY_FRAMES = 96, 64, 9
TEXT_DIM = 32
ITERATION = 1000


def tiny_config() -> dict:
    return dict(num_attention_heads=2, attention_head_dim=16, in_channels=4, out_channels=4, time_embed_dim=16,
                text_embed_dim=TEXT_DIM, num_layers=2, sample_width=TINY_WIDTH // 8, sample_height=TINY_HEIGHT // 8,
                sample_frames=TINY_FRAMES, patch_size=2, norm_eps=1e-6, use_rotary_positional_embeddings=True,
                use_learned_positional_embeddings=False)


def tiny_transformer(seed: int = 0):
    """A diffusers ``CogVideoXTransformer3DModel`` with random weights everywhere (norms included)."""
    import torch
    from diffusers import CogVideoXTransformer3DModel

    model = CogVideoXTransformer3DModel(**tiny_config())
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight") and p.ndim == 1:
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model.eval()


def sat_state_dict(transformer, seed: int = 0) -> dict:
    """The SAT-named DiT state dict (with SAT's unused absolute position table, as real checkpoints have)."""
    import torch

    from ..backbones.concatid_cogvideox.keys import SAT_PREFIX, diffusers_to_sat

    sd = diffusers_to_sat(transformer.state_dict())
    inner = transformer.config.num_attention_heads * transformer.config.attention_head_dim
    g = torch.Generator().manual_seed(seed + 99)
    sd[SAT_PREFIX + "transformer.position_embeddings.weight"] = torch.randn(64, inner, generator=g) * 0.02
    return sd


def write_sat_folder(folder: Path | str, seed: int = 0, iteration: int = ITERATION, transformer=None) -> Path:
    import random

    import numpy as np
    import torch

    folder = Path(folder)
    (folder / str(iteration)).mkdir(parents=True, exist_ok=True)
    tf = transformer if transformer is not None else tiny_transformer(seed)
    module = sat_state_dict(tf, seed)
    state = {
        "module": module,
        "buffer_names": [],
        "optimizer": None,
        "param_shapes": [OrderedDict((k, v.shape) for k, v in module.items())],
        "sparse_tensor_module_names": set(),
        "skipped_steps": 0, "global_steps": iteration, "global_samples": iteration * 8,
        "dp_world_size": 8, "mp_world_size": 1, "ds_version": "0.14.4",
        "iteration": iteration,
        "random_rng_state": random.Random(seed).getstate(),
        "np_rng_state": np.random.RandomState(seed).get_state(),
        "torch_rng_state": torch.Generator().manual_seed(seed).get_state(),
    }
    torch.save(state, folder / str(iteration) / "mp_rank_00_model_states.pt")
    (folder / "latest").write_text(str(iteration))
    return folder


def write_base_folder(root: Path | str, seed: int = 0) -> Path:
    """``text_encoder/`` + ``tokenizer/`` + ``vae/`` of a CogVideoX-5B diffusers folder (tiny)."""
    from transformers import T5Tokenizer

    from .tiny_consisid import write_vae
    from .tiny_text import write_t5_encoder, write_t5_tokenizer

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    write_vae(root / "vae", seed + 1)
    write_t5_tokenizer(root / "tokenizer", seed=seed)
    vocab = len(T5Tokenizer.from_pretrained(str(root / "tokenizer")))
    write_t5_encoder(root / "text_encoder", vocab, d_model=TEXT_DIM, seed=seed + 2)
    (root / "model_index.json").write_text(json.dumps({
        "_class_name": "CogVideoXPipeline", "text_encoder": ["transformers", "T5EncoderModel"],
        "tokenizer": ["transformers", "T5Tokenizer"], "vae": ["diffusers", "AutoencoderKLCogVideoX"],
        "transformer": ["diffusers", "CogVideoXTransformer3DModel"],
        "scheduler": ["diffusers", "CogVideoXDPMScheduler"]}, indent=1))
    return root


def build_concatid_cog_models(models_root: Path | str) -> Path:
    """``concatid/{single-identity,two-identities,Concat-ID-pre-training}`` + ``cogvideox/CogVideoX-5b``."""
    models_root = Path(models_root)
    for n, name in enumerate(("single-identity", "two-identities", "Concat-ID-pre-training")):
        write_sat_folder(models_root / "concatid" / name, seed=40 + n)
    write_base_folder(models_root / "cogvideox" / "CogVideoX-5b")
    return models_root
