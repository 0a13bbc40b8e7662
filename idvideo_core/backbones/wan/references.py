"""Reference frames for the Wan concatenation methods: letterboxing to the video size and VAE (de)coding.

* Concat-ID (``resize_pad_crop``): keep the aspect ratio, resize to the video *height*, pad **black** / centre-crop
  the width to the video width. A 448² face becomes a 480² face centred on a black 480×832 canvas.
* Phantom (``load_ref_images``): LANCZOS-resize to fit *inside* the video size, centre-pad **white**.

Each reference is VAE-encoded alone as a one-frame video → one latent frame, normalised with the VAE's
``latents_mean/std`` exactly like the video latents (posterior mean, no sampling: DiffSynth and Wan use ``mu``).
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

BLACK, WHITE = 0, 255


def _to_pil(image) -> Image.Image:
    """Accepts PIL, uint8 HxWx3 numpy, or a float 0..1 torch (H,W,3)/(1,H,W,3) image."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, torch.Tensor):
        t = image.detach().float().cpu()
        if t.ndim == 4:
            t = t[0]
        image = (t.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    arr = np.asarray(image, dtype=np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]   # gray (mask-like IMAGE): PIL cannot build an image from (H, W, 1)
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)) or min(arr.shape[:2]) < 1:
        from ...errors import InputError

        raise InputError(f"A reference image has shape {tuple(arr.shape)}; expected (height, width, 3).",
                         "Connect a regular IMAGE (RGB) to the concatenator.")
    return Image.fromarray(arr).convert("RGB")


def _to_tensor(img: Image.Image) -> torch.Tensor:
    """(1, H, W, 3) float 0..1 (ComfyUI IMAGE layout)."""
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)[None]


def letterbox_black(image, width: int, height: int) -> torch.Tensor:
    """Concat-ID: resize to ``height`` keeping aspect, then pad black or centre-crop to ``width``.

    Resampling filter: bilinear (the reference's filter is not documented; *inferred*)."""
    img = _to_pil(image)
    w, h = img.size
    new_w = max(1, round(w * height / h))
    img = img.resize((new_w, height), Image.BILINEAR)
    canvas = Image.new("RGB", (max(new_w, width), height), (BLACK,) * 3)
    canvas.paste(img, ((canvas.width - new_w) // 2, 0))
    left = (canvas.width - width) // 2
    return _to_tensor(canvas.crop((left, 0, left + width, height)))


def pad_white(image, width: int, height: int) -> torch.Tensor:
    """Phantom: LANCZOS-resize to fit inside ``width×height`` keeping aspect, centre-pad white."""
    img = _to_pil(image)
    w, h = img.size
    if w / h > width / height:
        new_w, new_h = width, max(1, int(width / (w / h)))
    else:
        new_w, new_h = max(1, int(height * (w / h))), height
    img = img.resize((new_w, new_h), Image.LANCZOS)
    canvas = Image.new("RGB", (width, height), (WHITE,) * 3)
    canvas.paste(img, ((width - new_w) // 2, (height - new_h) // 2))
    return _to_tensor(canvas)


def _stats(vae, like: torch.Tensor):
    c = vae.config.z_dim
    mean = torch.tensor(vae.config.latents_mean, dtype=torch.float32).view(1, c, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std, dtype=torch.float32).view(1, c, 1, 1, 1)
    return mean.to(like.device), std.to(like.device)


@torch.no_grad()
def encode_frames(vae, pixels: torch.Tensor) -> torch.Tensor:
    """(B, 3, F, H, W) in [-1, 1] → normalised latents (B, 16, (F−1)/4+1, H/8, W/8), float32."""
    dev = next(vae.parameters()).device
    dtype = next(vae.parameters()).dtype
    mu = vae.encode(pixels.to(dev, dtype)).latent_dist.mode().float()
    mean, std = _stats(vae, mu)
    return (mu - mean) / std


def encode_reference(vae, image: torch.Tensor) -> torch.Tensor:
    """One reference image (1, H, W, 3) float 0..1, already at the video size → (1, 16, 1, H/8, W/8)."""
    if image.ndim == 3:
        image = image[None]
    pixels = (image.float() * 2 - 1).permute(0, 3, 1, 2)[:, :, None]
    return encode_frames(vae, pixels)


def encode_references(vae, images: list) -> torch.Tensor:
    """Each reference encoded alone, concatenated along frames in input order → (1, 16, K, h, w)."""
    return torch.cat([encode_reference(vae, im) for im in images], dim=2)


@torch.no_grad()
def decode_latents(vae, latents: torch.Tensor) -> torch.Tensor:
    """Normalised latents (1, 16, f, h, w) → frames (F, H, W, 3) float 0..1."""
    dev = next(vae.parameters()).device
    dtype = next(vae.parameters()).dtype
    mean, std = _stats(vae, latents)
    z = latents.float() * std + mean
    video = vae.decode(z.to(dev, dtype)).sample.float()
    return ((video[0].permute(1, 2, 3, 0) + 1) / 2).clamp(0, 1).cpu()
