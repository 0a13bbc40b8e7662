"""Attention kernels and block compilation for the DiTs, chosen per generation.

* ``sdpa`` (default): diffusers' own processors, i.e. ``torch.nn.functional.scaled_dot_product_attention``;
  the reference numerics.
* ``sageattention``: the SageAttention kernel (8-bit QK, GPU only) when the package is installed. Wan's processors
  already go through diffusers' attention dispatcher, so they are switched to its ``sage`` backend. ConsisID's
  CogVideoX processor calls SDPA directly, so its attention modules get :class:`KernelCogVideoXProcessor`, the same
  joint text+video attention with the kernel swapped (tested equal to diffusers' processor with the SDPA kernel).
* ``compile_blocks``: ``torch.compile`` per transformer block (every block has the same shapes, so one graph is
  reused; compiling the whole model would also trace the per-generation parts).
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from .errors import InputError, MissingDependencyError

log = logging.getLogger("idvideo")

SDPA, SAGE = "sdpa", "sageattention"
ATTENTION_CHOICES = (SDPA, SAGE)


def sage_kernel() -> Callable:
    try:
        from sageattention import sageattn
    except ImportError as exc:
        raise MissingDependencyError("sageattention", "The 'sageattention' attention option") from exc
    return sageattn


def sdpa_kernel(q, k, v, tensor_layout: str = "HND", is_causal: bool = False):
    """SDPA with sageattention's calling convention (used to test the processor against diffusers')."""
    import torch.nn.functional as F

    if tensor_layout != "HND":
        raise ValueError("only the HND layout is used here")
    return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)


class KernelCogVideoXProcessor:
    """CogVideoX joint attention (text tokens first, RoPE on the video tokens) with a pluggable kernel."""

    def __init__(self, kernel: Callable):
        self.kernel = kernel

    def __call__(self, attn, hidden_states, encoder_hidden_states, attention_mask=None, image_rotary_emb=None):
        import torch
        from diffusers.models.embeddings import apply_rotary_emb

        n_text = encoder_hidden_states.shape[1]
        x = torch.cat([encoder_hidden_states, hidden_states], dim=1)
        b = x.shape[0]

        def split_heads(t):
            return t.view(b, -1, attn.heads, t.shape[-1] // attn.heads).transpose(1, 2)

        q, k, v = split_heads(attn.to_q(x)), split_heads(attn.to_k(x)), split_heads(attn.to_v(x))
        if attn.norm_q is not None:
            q = attn.norm_q(q)
        if attn.norm_k is not None:
            k = attn.norm_k(k)
        if image_rotary_emb is not None:
            q = torch.cat([q[:, :, :n_text], apply_rotary_emb(q[:, :, n_text:], image_rotary_emb)], dim=2)
            if not attn.is_cross_attention:
                k = torch.cat([k[:, :, :n_text], apply_rotary_emb(k[:, :, n_text:], image_rotary_emb)], dim=2)
        out = self.kernel(q, k, v, tensor_layout="HND", is_causal=False)
        out = out.transpose(1, 2).reshape(b, -1, attn.heads * out.shape[-1]).to(q.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        return out[:, n_text:], out[:, :n_text]


def set_joint_attention(blocks, choice: str = SDPA, kernel: Callable | None = None) -> None:
    """CogVideoX-style blocks (``blk.attn1`` = joint text+video attention calling SDPA directly): ``sdpa`` restores
    diffusers' processor, anything else installs :class:`KernelCogVideoXProcessor` with the chosen kernel."""
    check_choice(choice)
    for blk in blocks:
        attn = blk.attn1
        if not hasattr(attn, "_idv_default_processor"):
            attn._idv_default_processor = attn.processor
        if choice == SDPA and kernel is None:
            attn.set_processor(attn._idv_default_processor)
        else:
            attn.set_processor(KernelCogVideoXProcessor(kernel or sage_kernel()))


def set_dispatcher_attention(module, choice: str = SDPA, kernel: Callable | None = None) -> None:
    """Models whose processors go through diffusers' attention dispatcher (Wan): switch its backend."""
    check_choice(choice)
    if choice == SAGE:
        sage_kernel()                                           # clear error before diffusers' own check
        module.set_attention_backend("sage")
        return
    for m in module.modules():                                  # back to the globally active (native) backend
        proc = getattr(m, "processor", None)
        if proc is not None and hasattr(proc, "_attention_backend"):
            proc._attention_backend = None


def check_choice(choice: str) -> None:
    if choice not in ATTENTION_CHOICES:
        raise InputError(f"Unknown attention option '{choice}'.", f"Choose one of: {', '.join(ATTENTION_CHOICES)}.")


def set_attention(transformer, family: str, choice: str = SDPA, kernel: Callable | None = None) -> None:
    """Switch the DiT's attention kernel the family's way; ``sdpa`` restores diffusers' processors.
    ``kernel`` overrides (tests)."""
    from .backbones import registry

    check_choice(choice)
    registry.get(family).set_attention(transformer, choice, kernel)


def block_list(transformer, family: str):
    from .backbones import registry

    return registry.get(family).blocks(transformer)


def compile_blocks(transformer, family: str, enabled: bool = True, **compile_kwargs) -> int:
    """Compile (or un-compile) each transformer block in place; returns how many blocks changed."""
    changed = 0
    for blk in block_list(transformer, family):
        compiled = getattr(blk, "_idv_compiled", False)
        if enabled and not compiled:
            blk.compile(**compile_kwargs)
            blk._idv_compiled = True
            changed += 1
        elif not enabled and compiled:
            blk._compiled_call_impl = None                      # what nn.Module.compile set; back to eager
            blk._idv_compiled = False
            changed += 1
    if changed:
        log.info("IDVideo: torch.compile %s for %d transformer blocks", "on" if enabled else "off", changed)
    return changed
