"""Tiny T5/UMT5 text encoders and a sentencepiece tokenizer trained on the spot, in the published folder layouts.

Used by tests and by ``python -m idvideo_core generate --smoke``: no hub, no downloads.
"""
from __future__ import annotations

import io
import random
from pathlib import Path

_WORDS = ("a person man woman smiling walking talking city street park beach night day light camera slowly "
          "portrait face hair shirt jacket dress garment red blue green white black young old happy calm wind "
          "the of in on with and at by video cinematic close up wide shot running dancing sitting standing looks "
          "towards away from sky sun rain snow tree water ocean mountain room window table coffee book reading").split()


def _corpus(n: int = 3000, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 16))) for _ in range(n)]


def train_sentencepiece(path: Path, vocab_size: int = 96, seed: int = 0) -> Path:
    """Train a small unigram sentencepiece model with T5's special-token ids (pad 0, eos 1, unk 2)."""
    import sentencepiece as spm

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_corpus(seed=seed)), model_writer=model, vocab_size=vocab_size,
        model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, character_coverage=1.0,
        num_threads=1, minloglevel=2)
    path.write_bytes(model.getvalue())
    return path


def write_t5_tokenizer(folder: Path, extra_ids: int = 100, seed: int = 0) -> Path:
    """A ``tokenizer/`` folder as in CogVideoX/ConsisID repositories (spiece.model + configs)."""
    import json

    folder = Path(folder)
    train_sentencepiece(folder / "spiece.model", seed=seed)
    extra = [f"<extra_id_{i}>" for i in range(extra_ids)]
    specials = {"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>",
                "additional_special_tokens": extra}
    (folder / "special_tokens_map.json").write_text(json.dumps(specials, indent=1))
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "T5Tokenizer", "model_max_length": 226, "extra_ids": extra_ids, "legacy": True,
         **specials}, indent=1))
    (folder / "added_tokens.json").write_text(json.dumps({t: 96 + extra_ids - 1 - i for i, t in enumerate(extra)}))
    return folder


def write_t5_encoder(folder: Path, vocab_size: int, d_model: int = 32, seed: int = 0, shards: bool = True,
                     umt5: bool = False) -> Path:
    """A ``text_encoder/`` folder: tiny T5 (or UMT5) encoder weights, sharded with an index like T5-XXL's."""
    import torch
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    if umt5:
        from transformers import UMT5Config, UMT5EncoderModel

        cfg = UMT5Config(vocab_size=vocab_size, d_model=d_model, d_kv=16, d_ff=2 * d_model, num_layers=2,
                         num_heads=2, relative_attention_num_buckets=8, relative_attention_max_distance=32,
                         feed_forward_proj="gated-gelu", is_encoder_decoder=False, dropout_rate=0.0)
        model = UMT5EncoderModel(cfg)
    else:
        cfg = T5Config(vocab_size=vocab_size, d_model=d_model, d_kv=16, d_ff=2 * d_model, num_layers=2,
                       num_heads=2, relative_attention_num_buckets=8, relative_attention_max_distance=32,
                       feed_forward_proj="gated-gelu", is_encoder_decoder=False, dropout_rate=0.0)
        model = T5EncoderModel(cfg)
    model.eval()
    model.save_pretrained(str(folder), max_shard_size="40KB" if shards else "10GB", safe_serialization=True)
    return Path(folder)
