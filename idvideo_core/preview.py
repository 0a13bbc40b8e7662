"""Live latent previews: latent → RGB by a fixed linear map, shown by ComfyUI while the sampler runs.

Why a linear map and not the VAE: a preview comes every step, and decoding even one frame through a video VAE costs
more than the step. ComfyUI's own ``Latent2RGB`` previewer does the same for its video models. The factor matrices
below are *data* (16 × 3 least-squares fits of decoded colour on latent channels), published by their sources:

* Wan2.1 (16 channels, normalised latents ``(z - mean) / std``, which is what our Wan sampler carries): ComfyUI
  ``comfy/latent_formats.py`` class ``Wan21`` (``latent_rgb_factors`` and ``latent_rgb_factors_bias``), ComfyUI
  0.3.64.
* CogVideoX (16 channels, latents scaled by the VAE's ``scaling_factor``, what the ConsisID sampler carries):
  kijai/ComfyUI-CogVideoXWrapper ``latent_preview.py`` (``Latent2RGBPreviewer``; no bias). Rounded to 4 decimals,
  which changes a preview pixel by < 1/255.

The preview is the *middle* latent frame (the first CogVideoX/Wan latent frame is a single video frame, and for
ConsisID it sits next to the face latent, so the middle shows the motion better), at most ``max_size`` pixels on the
long side, in ComfyUI's ``("JPEG", PIL.Image, max_size)`` form for ``ProgressBar.update_absolute``.

Nothing here imports ComfyUI; whether previews are wanted at all is decided by :func:`idvideo_core.bridge.previews_enabled`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# Source: ComfyUI 0.3.64 comfy/latent_formats.py, class Wan21.
WAN21_RGB_FACTORS = (
    (-0.1299, -0.1692, 0.2932), (0.0671, 0.0406, 0.0442), (0.3568, 0.2548, 0.1747), (0.0372, 0.2344, 0.1420),
    (0.0313, 0.0189, -0.0328), (0.0296, -0.0956, -0.0665), (-0.3477, -0.4059, -0.2925), (0.0166, 0.1902, 0.1975),
    (-0.0412, 0.0267, -0.1364), (-0.1293, 0.0740, 0.1636), (0.0680, 0.3019, 0.1128), (0.0032, 0.0581, 0.0639),
    (-0.1251, 0.0927, 0.1699), (0.0060, -0.0633, 0.0005), (0.3477, 0.2275, 0.2950), (0.1984, 0.0913, 0.1861),
)
WAN21_RGB_BIAS = (-0.1835, -0.0868, -0.3360)

# Source: kijai/ComfyUI-CogVideoXWrapper latent_preview.py, Latent2RGBPreviewer (values rounded to 4 decimals).
COGVIDEOX_RGB_FACTORS = (
    (0.1195, 0.0992, -0.0048), (-0.0012, 0.0550, 0.0213), (-0.0141, -0.0087, -0.0210), (0.0306, 0.1219, 0.0140),
    (0.0927, 0.0303, 0.0508), (0.0379, 0.0494, 0.0586), (0.0177, 0.0088, 0.0360), (0.1061, 0.0234, 0.0572),
    (0.1274, -0.0110, 0.0433), (-0.0187, 0.0822, 0.1061), (0.0084, 0.0762, 0.0930), (0.1294, 0.1236, 0.0448),
    (0.0457, 0.0411, -0.0177), (0.0002, -0.0140, 0.0533), (0.0808, 0.1155, -0.0215), (-0.0152, -0.0058, 0.0722),
)
COGVIDEOX_RGB_BIAS = (0.0, 0.0, 0.0)

DEFAULT_MAX_SIZE = 512


@dataclass(frozen=True)
class LatentRGB:
    """One latent space's linear colour map. ``channel_dim`` / ``frame_dim`` say where C and F sit in the latents."""

    factors: tuple[tuple[float, float, float], ...]
    bias: tuple[float, float, float]
    channel_dim: int
    frame_dim: int

    @property
    def channels(self) -> int:
        return len(self.factors)


# ConsisID's sampler keeps latents as [B, F, C, h, w] (the diffusers CogVideoX layout); Wan as [B, C, F, h, w].
COGVIDEOX = LatentRGB(COGVIDEOX_RGB_FACTORS, COGVIDEOX_RGB_BIAS, channel_dim=2, frame_dim=1)
WAN21 = LatentRGB(WAN21_RGB_FACTORS, WAN21_RGB_BIAS, channel_dim=1, frame_dim=2)


def middle_frame_rgb(latents, space: LatentRGB, frames: int | None = None):
    """Latents of batch item 0 → float RGB [h, w, 3] in about -1..1 for the middle latent frame.

    ``frames`` limits the frames considered (Wan appends reference latent frames after the video ones; they are not
    part of the video and must not be picked as the "middle").
    """
    import torch

    x = latents[0].detach()
    c_dim, f_dim = space.channel_dim - 1, space.frame_dim - 1
    if x.shape[c_dim] != space.channels:
        raise ValueError(f"expected {space.channels} latent channels, got {x.shape[c_dim]}")
    n = x.shape[f_dim] if frames is None else max(1, min(int(frames), x.shape[f_dim]))
    frame = x.select(f_dim, n // 2)                                   # [C, h, w] whichever layout
    c_dim_after = c_dim if c_dim < f_dim else c_dim - 1
    frame = frame.movedim(c_dim_after, -1).float().cpu()              # [h, w, C]
    weight = torch.tensor(space.factors, dtype=torch.float32)         # [C, 3]
    bias = torch.tensor(space.bias, dtype=torch.float32)
    return frame @ weight + bias


def rgb_to_pil(rgb, max_size: int = DEFAULT_MAX_SIZE):
    """[-1..1] float RGB → small PIL image at latent resolution (ComfyUI's server scales it to ``max_size``)."""
    import numpy as np
    import torch
    from PIL import Image

    arr = ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    img = Image.fromarray(np.ascontiguousarray(arr), "RGB")
    if max_size and max(img.size) > max_size:
        img.thumbnail((max_size, max_size), Image.Resampling.BILINEAR)
    return img


def latent_preview_image(latents, space: LatentRGB, frames: int | None = None,
                         max_size: int = DEFAULT_MAX_SIZE):
    """The PIL preview of the middle latent frame."""
    return rgb_to_pil(middle_frame_rgb(latents, space, frames), max_size)


def make_previewer(space: LatentRGB, frames: int | None = None,
                   max_size: int | None = None) -> Callable:
    """``latents -> ("JPEG", PIL image, max_size)``: the callback the denoising loop passes to ``Progress.update``."""
    size = int(max_size or DEFAULT_MAX_SIZE)

    def preview(latents):
        shape = tuple(latents.shape)
        if len(shape) != 5 or shape[space.channel_dim] != space.channels:
            return None  # a latent space without factors (e.g. a tiny test model): no preview, never an error
        return ("JPEG", latent_preview_image(latents, space, frames, size), size)

    return preview


def sampler_previewer(family: str) -> Callable | None:
    """The previewer for a model family (its spec's latent colour map) when ComfyUI wants previews
    (``--preview-method`` not ``none``), else None."""
    from . import bridge
    from .backbones import registry

    space = registry.get(family).latent_rgb
    if space is None or not bridge.previews_enabled():
        return None
    return make_previewer(space, max_size=bridge.preview_max_size())


def save_temp_previews(images, prefix: str = "idvideo_faces", max_images: int = 16,
                       folder=None) -> list[dict]:
    """Save an IMAGE batch as PNGs in ComfyUI's temp folder and return the ``ui`` entries that show them.

    The same contract as core ``PreviewImage``: ``{"filename", "subfolder", "type": "temp"}`` each, served by
    ``/view``; ComfyUI empties the temp folder at start-up. Names carry a random part so two runs never clash and a
    browser never shows a cached old crop.
    """
    import uuid
    from pathlib import Path

    import numpy as np
    from PIL import Image

    from . import bridge

    root = Path(folder) if folder is not None else bridge.temp_dir()
    root.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:10]
    entries = []
    for i in range(min(len(images), max_images)):
        arr = np.clip(np.asarray(images[i].detach().cpu().float().numpy()) * 255.0, 0, 255).round().astype(np.uint8)
        name = f"{prefix}_{tag}_{i:02d}.png"
        Image.fromarray(arr).save(root / name, compress_level=1)
        entries.append({"filename": name, "subfolder": "", "type": "temp"})
    return entries


def temp_previews_for_ui(images, prefix: str = "idvideo_faces") -> list[dict]:
    """:func:`save_temp_previews` inside ComfyUI; nothing outside it (the CLI and tests have no browser to show to)."""
    from . import bridge

    return save_temp_previews(images, prefix) if bridge.in_comfyui() else []
