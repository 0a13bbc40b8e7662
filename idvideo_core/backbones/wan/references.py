"""Reference frames for the Wan concatenation methods: letterboxing to the video size and VAE (de)coding.

* Concat-ID (``resize_pad_crop``): keep the aspect ratio, fit *inside* the video size (bicubic), pad **black**.
  A 448² face becomes a 480² face centred on a black 480×832 canvas.
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


def _to_chw(image) -> torch.Tensor:
    """(1, 3, H, W) float 0..1: PIL / uint8 arrays as ``ToTensor`` (÷255), float tensors (ComfyUI IMAGE) as they are."""
    if isinstance(image, torch.Tensor) and image.is_floating_point():
        t = image.detach().float().cpu()
        if t.ndim == 3:
            t = t[None]
        if t.ndim == 4 and t.shape[-1] == 3:
            return t.permute(0, 3, 1, 2).contiguous()
    arr = np.asarray(_to_pil(image), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1)[None].contiguous()


def resize_pad_crop(chw: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """The official ``resize_pad_crop`` steps on a (1, 3, h, w) float tensor, unclamped: fit INSIDE the frame
    (resize to the height when h/w ≥ H/W, else to the width; the other side ``int(...)``-truncated), bicubic with
    antialiasing (torchvision's tensor ``resize`` default, = ``interpolate(..., antialias=True)``), pad black (0)
    centred (the extra pixel bottom/right), centre-crop to exactly H×W. (A side truncated to 0 — only for a sliver
    of an image, where the official resize fails — is kept at 1 pixel.)"""
    import torch.nn.functional as F

    h, w = chw.shape[-2:]
    if h / w >= height / width:
        size = (height, max(1, int(w * height / h)))
    else:
        size = (max(1, int(h * width / w)), width)
    x = F.interpolate(chw.float(), size=size, mode="bicubic", align_corners=False, antialias=True)
    dh, dw = max(height - size[0], 0), max(width - size[1], 0)
    x = F.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2), mode="constant", value=0.0)
    top, left = max(0, x.shape[-2] - height) // 2, max(0, x.shape[-1] - width) // 2
    return x[..., top:top + height, left:left + width]


def letterbox_black(image, width: int, height: int, uint8: bool = False) -> torch.Tensor:
    """Concat-ID's ``resize_pad_crop`` (``sample_video.py`` / ``inference_wan.py``) → (1, H, W, 3) float 0..1.

    Fits the image inside ``width × height`` keeping its aspect ratio (bicubic, integer sizes) and pads black; a 448²
    face becomes a 480² face centred on a black 480×720 / 480×832 canvas, a wide photo gets black bars top and bottom.

    Equal to the official code except for one deliberate difference: bicubic overshoot (values slightly below 0 or
    above 1 next to sharp edges) is **clamped** to 0..1. CogVideoX's ``sample_video.py`` clips the same way
    (``(x·2 − 1).clip(−1, 1)``), so there it is exact; ``inference_wan.py`` ends with ``ToPILImage``, whose
    ``mul(255).byte()`` cast *wraps* those values around in uint8 (a bright 1.01 becomes a dark 2/255), which we do
    not copy. ``uint8=True`` also reproduces that cast's truncation to the uint8 grid (``floor(x·255)/255``), so the
    result equals the Wan function's output everywhere it does not wrap (tests/test_letterbox_official.py).
    """
    x = resize_pad_crop(_to_chw(image), width, height).clamp(0, 1)
    if uint8:
        x = torch.floor(x * 255) / 255
    return x.permute(0, 2, 3, 1).contiguous()


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
