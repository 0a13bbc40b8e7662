"""Prompt encoding: T5 (CogVideoX/ConsisID, 226 tokens) as the reference pipelines do it."""
from __future__ import annotations

import logging
from pathlib import Path

from .errors import CorruptFileError, MissingModelError
from .safeload import check_model_folder_files
from .types import TextEmbeds

log = logging.getLogger("idvideo")

COGVIDEOX_MAX_TOKENS = 226


def load_t5(encoder_dir: Path, tokenizer_dir: Path, dtype):
    from transformers import T5EncoderModel, T5Tokenizer

    for d in (encoder_dir, tokenizer_dir):
        if not Path(d).is_dir():
            raise MissingModelError(f"the T5 folder {Path(d).name}/", [d])
    check_model_folder_files(encoder_dir)
    try:
        tokenizer = T5Tokenizer.from_pretrained(str(tokenizer_dir))
        encoder = T5EncoderModel.from_pretrained(str(encoder_dir), torch_dtype=dtype)
    except (OSError, ValueError, RuntimeError) as exc:
        raise CorruptFileError(encoder_dir, f"loading T5 failed: {exc}") from exc
    encoder.eval().requires_grad_(False)
    return encoder, tokenizer


def _encode_one(text_encoder, tokenizer, prompt: str, max_tokens: int, device, dtype):
    import torch

    ids = tokenizer([prompt], padding="max_length", max_length=max_tokens, truncation=True,
                    add_special_tokens=True, return_tensors="pt").input_ids
    full = tokenizer([prompt], padding="longest", return_tensors="pt").input_ids
    truncated = full.shape[-1] > ids.shape[-1] or (full.shape[-1] == ids.shape[-1] and not torch.equal(ids, full))
    if truncated:
        dropped = tokenizer.batch_decode(full[:, max_tokens - 1:-1])[0]
        log.warning("IDVideo: the prompt is longer than %d tokens; this part was cut off: %s", max_tokens, dropped)
    with torch.no_grad():
        emb = text_encoder(ids.to(device))[0]
    return emb.to(dtype=dtype, device=device), truncated


def encode_cogvideox_prompt(text_encoder, tokenizer, prompt: str, negative_prompt: str = "",
                            device=None, dtype=None, max_tokens: int = COGVIDEOX_MAX_TOKENS) -> TextEmbeds:
    """T5 embeddings of the prompt and negative prompt (empty negative = ``""``, as diffusers' ConsisIDPipeline)."""
    device = device or next(text_encoder.parameters()).device
    dtype = dtype or text_encoder.dtype
    pos, trunc = _encode_one(text_encoder, tokenizer, prompt, max_tokens, device, dtype)
    neg, _ = _encode_one(text_encoder, tokenizer, negative_prompt or "", max_tokens, device, dtype)
    return TextEmbeds(prompt_embeds=pos, negative_embeds=neg, family="cogvideox", prompt=prompt,
                      negative_prompt=negative_prompt or "", truncated=trunc)
