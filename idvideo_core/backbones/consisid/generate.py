"""ConsisID generation: global identity encoding, input checks, sampling through the shared loop, decoding."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

from ... import bridge
from ...errors import InputError
from ...sampling import denoise
from ...sampling.steppers import make_stepper
from ...types import GlobalIdentity, LocalIdentity, TextEmbeds
from ..base import LoadedModel
from ..cogvideox import vae_factors
from .adapter import ConsisIDAdapter

log = logging.getLogger("idvideo")



def trained_size(model: LoadedModel) -> Optional[tuple[int, int]]:
    """(width, height) the model is fixed to, when its learned positional embedding pins it (ConsisID-preview)."""
    cfg = model.transformer.config
    if getattr(cfg, "use_learned_positional_embeddings", False):
        s, _ = vae_factors(model.vae)
        return cfg.sample_width * s, cfg.sample_height * s
    return None


@dataclass
class ConsisIDSettings:
    width: int = 720
    height: int = 480
    num_frames: int = 49
    steps: int = 50
    cfg: float = 6.0
    seed: int = 42
    use_dynamic_cfg: bool = False
    face_scale: Optional[float] = None
    eta: float = 0.0


def check_settings(model: LoadedModel, s: ConsisIDSettings) -> ConsisIDSettings:
    """Validate before any compute (clear errors) and snap what can be snapped (with a warning)."""
    spatial, temporal = vae_factors(model.vae)
    if s.steps < 1:
        raise InputError(f"steps must be at least 1 (got {s.steps}).", "Use 50 steps (the reference default).")
    if not (1.0 <= s.cfg <= 30.0):
        raise InputError(f"cfg {s.cfg} is out of range.", "Use a guidance scale between 1 and 30 (default 6).")
    fixed = trained_size(model)
    if fixed is not None and (s.width, s.height) != fixed:
        raise InputError(
            f"This ConsisID model only generates {fixed[0]}×{fixed[1]} (its positional embedding is learned for that "
            f"size); {s.width}×{s.height} was asked for.", f"Set width={fixed[0]} and height={fixed[1]}.")
    unit = spatial * model.transformer.config.patch_size
    if s.width % unit or s.height % unit:
        raise InputError(f"width and height must be multiples of {unit} (got {s.width}×{s.height}).",
                         f"Use for example {s.width // unit * unit}×{s.height // unit * unit}.")
    if s.num_frames < 1:
        raise InputError("num_frames must be at least 1.", "Use 49 frames (the reference default).")
    # The CogVideoX VAE decodes an odd number of latent frames to 4k+1 frames (an even number gives 4k), so the
    # frame count that comes out as asked is 8k+1 (49 for ConsisID-preview).
    step = 2 * temporal
    if (s.num_frames - 1) % step:
        snapped = int((s.num_frames - 1) / step + 0.5) * step + 1  # nearest 8k+1
        log.warning("IDVideo: %d frames cannot be made by this model (it makes %dk+1 frames); making %d frames.",
                    s.num_frames, step, snapped)
        s.num_frames = snapped
    return s


def encode_global_identity(model: LoadedModel, face_rgb, width: int, height: int, kps_rgb=None) -> GlobalIdentity:
    """VAE posterior of the colour face on white, stretched to the video size as the reference does.

    The posterior is kept (mean, std) and sampled later in the sampler with the generation's seeded generator, in
    the reference's order, so a seed gives diffusers' exact result.
    """
    import numpy as np
    import PIL.Image
    import torch
    from diffusers.video_processor import VideoProcessor

    spatial, _ = vae_factors(model.vae)
    vp = VideoProcessor(vae_scale_factor=spatial)
    vae = model.vae
    device = next(vae.parameters()).device

    def posterior(rgb):
        img = vp.preprocess(PIL.Image.fromarray(np.asarray(rgb, dtype=np.uint8)), height=height, width=width)
        img = img.to(device, dtype=model.dtype).unsqueeze(2)
        with torch.no_grad():
            dist = vae.encode(img).latent_dist
        return dist.mean, dist.std, img

    mean, std, img = posterior(face_rgb)
    kps_mean = kps_std = None
    if kps_rgb is not None and getattr(model.transformer.config, "is_kps", False):
        kps_mean, kps_std, _ = posterior(kps_rgb)
    preview = ((img[:, :, 0].permute(0, 2, 3, 1).float() + 1) / 2).clamp(0, 1).cpu()
    return GlobalIdentity(mean=mean, std=std, kps_mean=kps_mean, kps_std=kps_std,
                          scaling_factor=float(getattr(vae.config, "scaling_factor", 0.7)), width=width,
                          height=height, face_preview=preview)


def _sample_posterior(mean, std, generator):
    from diffusers.utils.torch_utils import randn_tensor

    eps = randn_tensor(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + std * eps


def image_latents_from(identity: GlobalIdentity, generator, latent_frames: int, dtype):
    """Face latent in frame 0 (kps in frame 1 when present), zeros after: [1, F, C, h, w] for channel concat."""
    import torch

    parts = [_sample_posterior(identity.mean, identity.std, generator)]
    if identity.kps_mean is not None:
        parts.append(_sample_posterior(identity.kps_mean, identity.kps_std, generator))
    lat = [(p.to(dtype).permute(0, 2, 1, 3, 4) * identity.scaling_factor) for p in parts]
    first = lat[0]
    pad = torch.zeros((1, latent_frames - len(lat), *first.shape[2:]), device=first.device, dtype=dtype)
    return torch.cat(lat + [pad], dim=1)


def sample_consisid(model: LoadedModel, text: TextEmbeds, identity: GlobalIdentity, local: Optional[LocalIdentity],
                    settings: ConsisIDSettings, progress: bool = True, preview=None,
                    node_id=None, cache=None):
    """Denoise and return latents [1, F, C, h, w] (the reference's layout).

    ``cache``: an optional :class:`~idvideo_core.sampling.cache.StepCache` (None: every step computed, exact).
    """
    import torch
    from diffusers import CogVideoXDPMScheduler
    from diffusers.utils.torch_utils import randn_tensor

    s = check_settings(model, settings)
    if (identity.width, identity.height) != (s.width, s.height):
        raise InputError(f"The global identity was encoded for {identity.width}×{identity.height} but the sampler "
                         f"makes {s.width}×{s.height}.", "Give the global identity extractor the sampler's size.")
    if text.family != "cogvideox":
        raise InputError("These text embeddings were made for a Wan model.", "Encode the prompt with this model.")
    spatial, temporal = vae_factors(model.vae)
    device = identity.mean.device
    dtype = model.dtype
    generator = torch.Generator(device="cpu").manual_seed(int(s.seed))
    latent_frames = (s.num_frames - 1) // temporal + 1
    image_latents = image_latents_from(identity, generator, latent_frames, dtype)
    channels = model.transformer.config.in_channels // 2
    shape = (1, latent_frames, channels, s.height // spatial, s.width // spatial)
    scheduler = CogVideoXDPMScheduler.from_config(model.scheduler_config)
    scheduler.set_timesteps(s.steps, device=device)
    latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype) * scheduler.init_noise_sigma
    stepper = make_stepper(scheduler, generator, s.eta)
    pos = text.prompt_embeds.to(device=device, dtype=dtype)
    neg = text.negative_embeds.to(device=device, dtype=dtype)
    adapter = ConsisIDAdapter(model.transformer, stepper, pos, neg, image_latents, local, s.cfg, s.use_dynamic_cfg,
                              s.steps, s.face_scale, cache=cache)
    bar = bridge.Progress(s.steps, "sampling", node_id) if progress else None
    try:
        out = denoise(adapter, stepper, latents, progress=bar, preview=preview, latent_dtype=dtype,
                      modules=(model.transformer,))
        if cache is not None:
            log.info("IDVideo: %s", cache.summary())
        return out
    finally:
        if bar is not None:
            bar.close()


def decode_consisid(model: LoadedModel, latents, tiling: bool = False):
    """Latents [1, F, C, h, w] → frames [N, H, W, 3] float 0..1 on the CPU (ComfyUI IMAGE layout)."""
    import torch
    from diffusers.video_processor import VideoProcessor

    from ...memory import vae_memory

    vae = model.vae
    spatial, _ = vae_factors(vae)
    scale = float(getattr(vae.config, "scaling_factor", 0.7))
    # Explicit CogVideoX tiles (240×360 px): diffusers' own default derives them from the VAE's sample size.
    with torch.no_grad(), vae_memory(vae, tiling):
        video = vae.decode((1 / scale) * latents.permute(0, 2, 1, 3, 4)).sample
    frames = VideoProcessor(vae_scale_factor=spatial).postprocess_video(video=video, output_type="pt")
    return frames[0].permute(0, 2, 3, 1).float().cpu()


def generate(model: LoadedModel, text: TextEmbeds, req):
    """The spec's ``generate``: check the identity inputs, sample, decode (frames [N, H, W, 3] on the CPU)."""
    from ...sampling.cache import CONSISID, make_cache
    from ...sampling.stages import decode_progress, using

    if req.global_identity is None:
        raise InputError("ConsisID needs the face: the global_identity input is not connected.",
                         "Connect 'IDVideo Global Identity Extractor' to the sampler.")
    if req.references:
        log.warning("IDVideo: references are ignored by ConsisID (they are for Concat-ID / Phantom models).")
    settings = ConsisIDSettings(width=req.width, height=req.height, num_frames=req.num_frames, steps=req.steps,
                                cfg=req.cfg, seed=req.seed, use_dynamic_cfg=req.use_dynamic_cfg,
                                face_scale=req.face_scale)
    ident = identity_on(req.global_identity, model)
    with using(model, "transformer"):
        latents = sample_consisid(model, text, ident, req.local_identity, settings, progress=req.progress,
                                  node_id=req.node_id, preview=req.preview,
                                  cache=make_cache(CONSISID, req.steps, req.cache_threshold))
    with using(model, "vae"), decode_progress(model.vae, latents, frame_dim=1, node_id=req.node_id,
                                              enabled=req.progress):
        frames = decode_consisid(model, latents, tiling=req.vae_tiling)
    bridge.soft_empty_cache()
    return (frames, latents) if req.return_latents else frames


def identity_on(ident: GlobalIdentity, model: LoadedModel) -> GlobalIdentity:
    """The posterior on the compute device (it may have been parked on the CPU between nodes)."""
    import dataclasses

    dev = model.device
    return dataclasses.replace(
        ident, mean=ident.mean.to(dev), std=ident.std.to(dev),
        kps_mean=None if ident.kps_mean is None else ident.kps_mean.to(dev),
        kps_std=None if ident.kps_std is None else ident.kps_std.to(dev))
