"""T5-family text encoders (T5-XXL for CogVideoX, UMT5-XXL for Wan) from ComfyUI's single files: what every family
that reads them shares. A plain module, not a plug-in package."""
from __future__ import annotations

from typing import Optional

import torch

from ..errors import CorruptFileError

# Keys ComfyUI files carry besides the weights: fp8 scales (applied below), the "scaled" marker, UMT5's tokenizer.
NON_WEIGHT_KEYS = ("scaled_fp8", "spiece_model")


def dequantise(sd: dict, dtype) -> dict:
    """fp8 ComfyUI files: upcast, applying ``*.scale_weight`` where present ("scaled" variants)."""
    out = {}
    for k, v in sd.items():
        if k.endswith(".scale_weight") or k.endswith(".scale_input") or k in NON_WEIGHT_KEYS:
            continue
        if v.is_floating_point():
            w = v.to(torch.float32)
            scale = sd.get(k[: -len("weight")] + "scale_weight") if k.endswith(".weight") else None
            if scale is not None:
                w = w * scale.to(torch.float32)
            v = w.to(dtype)
        out[k] = v
    return out


def encoder_from_state_dict(model_cls, config, sd: dict, dtype, source, what: str,
                            published: Optional[str] = None, drop=lambda key: False):
    """``model_cls(config)`` (a transformers T5/UMT5 encoder) filled from ``sd`` without a second copy: fp8 weights
    upcast, the shared/embedding tie restored from whichever of the two the file kept, keys for which ``drop`` is
    true left out (e.g. a full T5's decoder), strict load on a meta-initialised model."""
    weights = {k: v for k, v in dequantise(sd, dtype).items() if not drop(k)}
    if "shared.weight" not in weights:
        weights["shared.weight"] = weights["encoder.embed_tokens.weight"]
    weights.setdefault("encoder.embed_tokens.weight", weights["shared.weight"])
    with torch.device("meta"):
        model = model_cls(config)
    try:
        model.load_state_dict(weights, strict=True, assign=True)
    except RuntimeError as exc:
        raise CorruptFileError(source, f"the weights do not fit {what}: {str(exc)[:400]}",
                               published) from exc
    return model.eval().requires_grad_(False)
