"""ConsisID's plug-in: CogVideoX-5B-I2V with the face latent on channels and LFE cross-attention every 2nd block."""
from __future__ import annotations

from ...lora.formats import LoraSupport
from ...preview import COGVIDEOX
from .. import cogvideox
from ..registry import BackboneSpec, ClipDefaults, register


def _generate(model, text, req):
    from .generate import generate

    return generate(model, text, req)


def _planned_clip(transformer):
    """The trained clip from the config (49 × 480 × 720 for ConsisID-preview)."""
    cfg = getattr(transformer, "config", None)
    try:
        return cfg.sample_width * 8, cfg.sample_height * 8, cfg.sample_frames
    except (AttributeError, TypeError):
        return None


def _preflight(loader, width, height, num_frames, steps, cfg):
    """The sampler's ``check_settings`` on the transformer and VAE configs read from ``config.json`` (no weights)."""
    from pathlib import Path
    from types import SimpleNamespace

    from ...safeload import read_json
    from .generate import ConsisIDSettings, check_settings, trained_size
    from .loading import resolve_consisid_folder

    folder = Path(resolve_consisid_folder(loader.get("model") or "ConsisID-preview"))
    configs = SimpleNamespace(
        transformer=SimpleNamespace(config=SimpleNamespace(**read_json(folder / "transformer" / "config.json"))),
        vae=SimpleNamespace(config=SimpleNamespace(**read_json(folder / "vae" / "config.json"))))
    if not width or not height:             # auto (0): the size the weights are pinned to, else the family's
        pinned = trained_size(configs) or (SPEC.defaults.width, SPEC.defaults.height)
        width, height = width or pinned[0], height or pinned[1]
    return check_settings(configs, ConsisIDSettings(width=width, height=height, num_frames=num_frames, steps=steps,
                                                    cfg=cfg)).num_frames


def _cache_rule(num_blocks):
    from ...sampling.cache import CONSISID

    return CONSISID


def _global_identity(model, face_rgb, width, height, kps_rgb=None):
    from .generate import encode_global_identity

    return encode_global_identity(model, face_rgb, width, height, kps_rgb)


def _trained_size(model):
    from .generate import trained_size

    return trained_size(model)


SPEC = register(BackboneSpec(
    family="consisid", label="ConsisID", text_family="cogvideox",
    defaults=ClipDefaults(width=720, height=480, num_frames=49, fps=8, steps=50, cfg=6.0, seed=42),
    frame_unit=8,                        # the CogVideoX VAE makes 8k+1 frames from an odd latent count
    block_path="transformer_blocks", identity="face",
    generate=_generate, encode_prompt=cogvideox.encode_prompt, workload=cogvideox.make_workload(0),
    set_attention=cogvideox.set_attention,
    cache_rule=_cache_rule, published="consisid", latent_rgb=COGVIDEOX,
    encode_global_identity=_global_identity, preflight=_preflight, trained_size=_trained_size,
    planned_clip=_planned_clip,
    lora=LoraSupport("CogVideoXLoraLoaderMixin"),   # CogVideoX LoRAs: diffusers / PEFT or kohya names of its layers
    description="ConsisID (CogVideoX-5B-I2V): global face latent on channels + local identity cross-attention.",
))
