"""Wan prompt encoding: UMT5, 512 tokens, real tokens kept and the rest zeroed (as Wan / DiffSynth / Phantom do).

Two tokenizer sources behind one small interface: the diffusers ``tokenizer/`` folder (HF tokenizer) and the
sentencepiece model ComfyUI embeds in its umt5 file (``spiece_model`` bytes). Both append ``</s>`` (id 1) and pad
with ``<pad>`` (id 0), like ``T5TokenizerFast(add_special_tokens=True)``.
"""
from __future__ import annotations

import html
import logging
import re

import torch

from ...types import TextEmbeds

log = logging.getLogger("idvideo")
WAN_TEXT_LEN = 512
# Phantom's ``config.sample_neg_prompt`` (the Wan2.1 default negative prompt) — its "null" text.
WAN_DEFAULT_NEGATIVE = ("色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，"
                        "JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，"
                        "手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走")
CONCATID_DEFAULT_NEGATIVE = "..."   # inference_wan.py's default negative prompt, literally


def clean_prompt(text: str) -> str:
    """Wan's ``clean='whitespace'``: ftfy (when installed), HTML unescape twice, collapse whitespace."""
    try:
        import ftfy

        text = ftfy.fix_text(text)
    except ImportError:
        pass
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip()


class HFWanTokenizer:
    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, texts: list[str], max_len: int = WAN_TEXT_LEN):
        out = self.tokenizer(texts, padding="max_length", max_length=max_len, truncation=True,
                             add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
        return out.input_ids, out.attention_mask


class SentencePieceWanTokenizer:
    """Tokenizer from serialized sentencepiece bytes (ComfyUI's ``spiece_model`` tensor)."""

    PAD, EOS = 0, 1

    def __init__(self, model_bytes: bytes):
        import sentencepiece as spm

        self.sp = spm.SentencePieceProcessor(model_proto=model_bytes)

    def __call__(self, texts: list[str], max_len: int = WAN_TEXT_LEN):
        ids = torch.full((len(texts), max_len), self.PAD, dtype=torch.long)
        mask = torch.zeros((len(texts), max_len), dtype=torch.long)
        for i, t in enumerate(texts):
            toks = self.sp.encode(t)[: max_len - 1] + [self.EOS]
            ids[i, : len(toks)] = torch.tensor(toks)
            mask[i, : len(toks)] = 1
        return ids, mask


@torch.no_grad()
def encode_texts(text_encoder, tokenizer, texts: list[str], device=None, dtype=None,
                 max_len: int = WAN_TEXT_LEN) -> torch.Tensor:
    """(B, 512, D): encoder states of the real tokens, zeros after them (no attention mask downstream)."""
    device = device or next(text_encoder.parameters()).device
    ids, mask = tokenizer([clean_prompt(t) for t in texts], max_len)
    hidden = text_encoder(ids.to(device), attention_mask=mask.to(device)).last_hidden_state
    hidden = hidden * mask.to(device)[..., None].to(hidden.dtype)
    return hidden.to(dtype or hidden.dtype)


def encode_wan_prompt(text_encoder, tokenizer, prompt: str, negative_prompt: str = "", device=None,
                      dtype=None) -> TextEmbeds:
    emb = encode_texts(text_encoder, tokenizer, [prompt, negative_prompt], device, dtype)
    n_tok = int(tokenizer([clean_prompt(prompt)], 4 * WAN_TEXT_LEN)[1].sum())
    truncated = n_tok > WAN_TEXT_LEN
    if truncated:
        log.warning("IDVideo: the prompt is longer than %d UMT5 tokens; the end was cut off.", WAN_TEXT_LEN)
    return TextEmbeds(prompt_embeds=emb[:1], negative_embeds=emb[1:], family="wan", prompt=prompt,
                      negative_prompt=negative_prompt, truncated=truncated)
