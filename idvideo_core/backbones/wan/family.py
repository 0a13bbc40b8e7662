"""What every Wan2.1-based family's spec shares: UMT5 prompts, the block list, the activation estimate, attention
through diffusers' dispatcher, the TeaCache polynomials, the latent colour map. A family package calls
:func:`wan_spec` with its :class:`~.method.WanMethod` and its own labels/defaults."""
from __future__ import annotations

from ...attention import set_dispatcher_attention
from ...preview import WAN21
from ..registry import BackboneSpec, ClipDefaults
from .method import WanMethod

# Wan2.1-T2V-1.3B's trained clip (Concat-ID-Wan and Phantom-1.3B use it): 832×480, 81 frames at 16 fps, 50 steps.
WAN_1_3B_CLIP = ClipDefaults(width=832, height=480, num_frames=81, fps=16, steps=50, cfg=5.0, seed=0)


def encode_prompt(text_encoder, tokenizer, prompt, negative_prompt="", device=None, dtype=None):
    from .text import encode_wan_prompt

    return encode_wan_prompt(text_encoder, tokenizer, prompt, negative_prompt, device=device, dtype=dtype)


def _base(transformer):
    return getattr(transformer, "base", transformer)          # WanDiT wraps diffusers' WanTransformer3DModel


def set_attention(transformer, choice, kernel=None):
    set_dispatcher_attention(_base(transformer), choice, kernel)


def preflight(loader, width, height, num_frames, steps, cfg):
    """Guidance range and the 4k+1 frame rule, the sampler's own check (``runtime.check_clip``), before loading."""
    from .runtime import check_clip

    return check_clip(cfg, num_frames)


def cache_rule(num_blocks):
    from ...sampling.cache import wan_rule

    return wan_rule(num_blocks)


def make_workload(method: WanMethod, default_refs: int):
    """Reference frames join the video frames; one batched forward over the method's CFG branches."""
    n_branches = len(method.branches(None, None, None))

    def workload(transformer, dtype_bytes, width, height, num_frames, references=None):
        from ...memory.estimate import Workload

        cfg = getattr(_base(transformer), "config", None)
        try:
            dim = cfg.num_attention_heads * cfg.attention_head_dim
            ffn = cfg.ffn_dim
            pt, ph, pw = cfg.patch_size
        except (AttributeError, TypeError, ValueError):
            return None
        refs = default_refs if references is None else int(references)
        tokens = ((num_frames - 1) // 4 + 1 + refs) // pt * (height // 8 // ph) * (width // 8 // pw)
        # the loader may plan the branches one after the other (memory/storage.py): then one branch per forward
        batch = n_branches if getattr(transformer, "batch_branches", True) else 1
        return Workload(batch, tokens, dim, ffn, dtype_bytes)

    return workload


# Original layer names whose LoRA pairs diffusers' ``_convert_non_diffusers_wan_lora_to_diffusers`` converts (attention
# q/k/v/o and I2V k_img/v_img, FFN, time projection, head, text/time embedders, image embedder); everything else in a
# Wan LoRA (norm / modulation / other deltas, other pairs) is converted by idvideo_core.lora.
DIFFUSERS_WAN_LORA_PAIRS = (r"blocks\.\d+\.(self_attn|cross_attn)\.(q|k|v|o|k_img|v_img)|blocks\.\d+\.ffn\.(0|2)"
                            r"|time_projection\.1|head\.head|(text|time)_embedding\.(0|2)|img_emb\.proj\.(1|3)")


def lora_support(root_path: str = "base"):
    """Wan LoRAs: diffusers' ``WanLoraLoaderMixin`` converters, original Wan names through ``keys.py``, the diffusers
    ``WanTransformer3DModel`` at ``WanDiT.base`` (``root_path=""`` for a bare diffusers model)."""
    from ...lora.formats import LoraSupport
    from .keys import diffusers_to_original_key

    return LoraSupport("WanLoraLoaderMixin", root_path, diffusers_to_original_key, DIFFUSERS_WAN_LORA_PAIRS)


def wan_spec(family: str, label: str, method: WanMethod, published: str, default_refs: int,
             defaults: ClipDefaults = WAN_1_3B_CLIP, description: str = "", planned_clip=None) -> BackboneSpec:
    from .runtime import method_generate

    return BackboneSpec(
        family=family, label=label, text_family="wan", defaults=defaults, frame_unit=4,
        block_path="base.blocks", block_list=lambda tf: _base(tf).blocks, identity="references",
        preflight=preflight,
        generate=method_generate(method), encode_prompt=encode_prompt, workload=make_workload(method, default_refs),
        set_attention=set_attention, cache_rule=cache_rule, published=published, latent_rgb=WAN21,
        max_references=method.max_references, trained_references=method.trained_references,
        planned_clip=planned_clip, sampler_presets=("lightx2v_4step",), lora=lora_support(),
        description=description)
