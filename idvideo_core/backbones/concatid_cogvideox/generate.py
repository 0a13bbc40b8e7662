"""Concat-ID-CogVideoX generation through the pack's one denoising loop.

Per step (official ``DiffusionTransformer.forward`` + ``VPSDEDPMPP2MSampler_cfg`` + ``VanillaCFG``):
batch [uncond; cond] → the clean reference latents appended after the video latents along frames (the same in both
halves, every step) → one diffusers ``CogVideoXTransformer3DModel`` forward at the integer timestep with RoPE for
T + K frames (references are ordinary vision tokens: same AdaLN chunks at the current t, full joint attention with the
text) → output trimmed to the T video frames → v→x0 with the nearest-entry a_q → x0_u + s·(x0_c − x0_u) → the SAT
DPM++(2M) SDE step. Unconditional text = the T5 output zeroed (not an empty prompt).

Seeded draws, all from one CPU generator in the official order: each reference's VAE posterior sample (the SAT VAE's
regulariser samples; ``DiagonalGaussianRegularizer(sample=True)``), the initial noise [1, T, C, h, w], then the
sampler's draws.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from ... import bridge
from ...errors import InputError
from ...sampling import denoise
from ...sampling.stages import sampling_progress
from ..cogvideox import vae_factors
from .loading import SAT_SCALE_FACTOR
from .rope import MAX_REFERENCES, rotary_embedding
from .schedule import SATDPMStepper, v_to_x0

log = logging.getLogger("idvideo")

TRAINED_SIZE = (720, 480)


@dataclass
class Settings:
    width: int = 720
    height: int = 480
    num_frames: int = 49
    steps: int = 50
    cfg: float = 6.0
    seed: int = 42



def check_settings(model, s: Settings, n_refs: int) -> Settings:
    spatial, temporal = vae_factors(model.vae)
    unit = spatial * model.transformer.config.patch_size
    if s.steps < 1 or s.steps > 1000:
        raise InputError(f"steps must be 1…1000 (got {s.steps}).", "Use 50 steps (the official default).")
    if not (1.0 <= float(s.cfg) <= 30.0):
        raise InputError(f"cfg {s.cfg} is out of range.", "Use a guidance scale between 1 and 30 (official 6).")
    if s.width % unit or s.height % unit:
        raise InputError(f"width and height must be multiples of {unit} (got {s.width}×{s.height}).",
                         "Use 720×480 (the size Concat-ID-CogVideoX was trained at).")
    if n_refs < 1:
        raise InputError("Concat-ID-CogVideoX needs at least one reference (the official model cannot run without).",
                         "Connect 'IDVideo Multi-Identity Concatenator' to the sampler's references input.")
    if n_refs > MAX_REFERENCES:
        raise InputError(f"Concat-ID-CogVideoX takes at most {MAX_REFERENCES} references (got {n_refs}).",
                         "Give one face (single-identity) or two (two-identities weights).")
    if s.num_frames < 1:
        raise InputError("num_frames must be at least 1.", "Use 49 frames (the official default).")
    step = 2 * temporal
    if (s.num_frames - 1) % step:
        snapped = int((s.num_frames - 1) / step + 0.5) * step + 1
        log.warning("IDVideo: %d frames cannot be made by this model (it makes %dk+1 frames); making %d frames.",
                    s.num_frames, step, snapped)
        s.num_frames = snapped
    if (s.width, s.height) != TRAINED_SIZE and model.transformer.config.sample_width * spatial == 720:
        log.warning("IDVideo: Concat-ID-CogVideoX was trained at 720×480 only; %d×%d is untested.", s.width, s.height)
    return s


def _reference_pixels(image: torch.Tensor) -> torch.Tensor:
    """(1, H, W, 3) 0..1 → (1, 3, 1, H, W) in [-1, 1] (``(x·2 − 1).clip(−1, 1)`` as sample_video.py)."""
    if image.ndim == 3:
        image = image[None]
    return (image.float() * 2 - 1).clamp(-1, 1).permute(0, 3, 1, 2)[:, :, None]


@torch.no_grad()
def encode_references(vae, images, generator: torch.Generator, scale: float = SAT_SCALE_FACTOR) -> torch.Tensor:
    """Each reference alone as a one-frame video → posterior sample × 0.7 → [1, K, C, h, w] (input order)."""
    dev, dtype = next(vae.parameters()).device, next(vae.parameters()).dtype
    out = []
    for im in images:
        dist = vae.encode(_reference_pixels(im).to(dev, dtype)).latent_dist
        mean, std = dist.mean.float(), dist.std.float()
        eps = torch.randn(mean.shape, generator=generator, dtype=torch.float32).to(mean.device)
        out.append(((mean + std * eps) * scale).permute(0, 2, 1, 3, 4))
    return torch.cat(out, dim=1)


class ConcatIdCogAdapter:
    """``model_output(latents, t, i)`` → the guided x0 of the video latents [1, T, C, h, w] (float32)."""

    def __init__(self, transformer, stepper: SATDPMStepper, prompt_embeds, references, cfg: float = 6.0):
        self.tf = transformer
        self.stepper = stepper
        self.cfg = float(cfg)
        self.do_cfg = self.cfg != 1.0
        dtype = next(transformer.parameters()).dtype
        self.dtype = dtype
        cond = prompt_embeds.to(dtype)
        uncond = torch.zeros_like(cond)                  # force_uc_zero_embeddings=["txt"]
        self.text = torch.cat([uncond, cond]) if self.do_cfg else cond
        self.refs = references
        self.rope = None

    def _rope(self, frames: int, h: int, w: int, device):
        if self.rope is None:
            cfg = self.tf.config
            p = cfg.patch_size
            self.rope = rotary_embedding(cfg.attention_head_dim, h // p, w // p, frames, self.refs.shape[1], device)
        return self.rope

    def velocity(self, latents: torch.Tensor, t) -> torch.Tensor:
        """The DiT's v for the video frames of ``latents`` (batch as given), references appended and trimmed."""
        b, f, _, h, w = latents.shape
        refs = self.refs.to(latents.device, self.dtype).expand(b, -1, -1, -1, -1)
        x = torch.cat([latents.to(self.dtype), refs], dim=1)
        ts = torch.as_tensor(t, device=latents.device).reshape(-1).expand(b)
        out = self.tf(hidden_states=x, encoder_hidden_states=self.text.to(latents.device), timestep=ts,
                      image_rotary_emb=self._rope(f, h, w, latents.device), return_dict=False)[0]
        return out[:, :f]

    def model_output(self, latents, t, i: int):
        x = torch.cat([latents] * 2) if self.do_cfg else latents
        v = self.velocity(x, t)
        x0 = v_to_x0(self.stepper.schedule, i, x, v)
        if not self.do_cfg:
            return x0
        x0_u, x0_c = x0.chunk(2)
        return x0_u + self.cfg * (x0_c - x0_u)


def prompt_embeds_of(text) -> torch.Tensor:
    if getattr(text, "family", "cogvideox") != "cogvideox":
        raise InputError("These text embeddings were made for a Wan model.",
                         "Encode the prompt with 'IDVideo Text Encode' connected to this Concat-ID-CogVideoX model.")
    if (getattr(text, "negative_prompt", "") or "").strip():
        log.warning("IDVideo: Concat-ID-CogVideoX ignores the negative prompt: its unconditional branch is the zeroed "
                    "T5 embedding, as in the official sampler.")
    return text.prompt_embeds


def prepare(model, reference_images, settings: Settings):
    """Checks, then the seeded draws that need the VAE: (settings, reference latents [1, K, C, h, w], initial noise
    [1, T, C, h, w], generator). ``reference_images``: list of (1, H, W, 3) at the video size, in order."""
    s = check_settings(model, settings, len(reference_images))
    for k, im in enumerate(reference_images):
        if tuple(im.shape[-3:-1]) != (s.height, s.width):
            raise InputError(f"Reference {k + 1} is {im.shape[-2]}×{im.shape[-3]} but the video is "
                             f"{s.width}×{s.height}.", "Give the concatenator the sampler's width and height.")
    spatial, temporal = vae_factors(model.vae)
    generator = torch.Generator("cpu").manual_seed(int(s.seed))
    refs = encode_references(model.vae, reference_images, generator)
    frames = (s.num_frames - 1) // temporal + 1
    shape = (1, frames, model.transformer.config.out_channels, s.height // spatial, s.width // spatial)
    latents = torch.randn(shape, generator=generator, dtype=torch.float32)
    return s, refs, latents, generator


def run_sampler(model, text, refs, latents, generator, s: Settings, *, progress: bool = True, preview=None,
                node_id=None, on_step=None):
    """The denoising loop (needs the transformer) → latents [1, T, C, h, w] float32."""
    device = model.device if model.device is not None else torch.device("cpu")
    stepper = SATDPMStepper(s.steps, generator)
    adapter = ConcatIdCogAdapter(model.transformer, stepper, prompt_embeds_of(text).to(device), refs.to(device),
                                 s.cfg)
    with sampling_progress(s.steps, node_id, progress) as bar:
        return denoise(adapter, stepper, latents.to(device), progress=bar, preview=preview,
                       latent_dtype=torch.float32, on_step=on_step, modules=(model.transformer,))


def sample(model, text, reference_images, settings: Settings, *, progress: bool = False, preview=None,
           node_id=None, on_step=None, return_references: bool = False):
    """Core API without a memory manager: references → latents [1, T, C, h, w] (float32)."""
    s, refs, latents, generator = prepare(model, reference_images, settings)
    out = run_sampler(model, text, refs, latents, generator, s, progress=progress, preview=preview,
                      node_id=node_id, on_step=on_step)
    return (out, refs) if return_references else out


@torch.no_grad()
def decode(model, latents: torch.Tensor, scale: float = SAT_SCALE_FACTOR) -> torch.Tensor:
    """Latents [1, T, C, h, w] → frames [N, H, W, 3] float 0..1 on the CPU (``clamp((x + 1)/2, 0, 1)``)."""
    vae = model.vae
    dev, dtype = next(vae.parameters()).device, next(vae.parameters()).dtype
    video = vae.decode((latents / scale).permute(0, 2, 1, 3, 4).to(dev, dtype)).sample.float()
    return ((video[0].permute(1, 2, 3, 0) + 1) / 2).clamp(0, 1).cpu()


# ------------------------------------------------------------------------------------------------ the spec's entry
TRAINED_REFERENCES = {"single": 1, "two": 2, "pre-training": 1}


def trained_references(model) -> int | None:
    """How many references the loaded weights were trained with, from the published folder name (the weights
    themselves do not say): ``single-identity`` 1, ``two-identities`` 2, ``Concat-ID-pre-training`` 1."""
    name = str(model.options.get("variant", "")).lower()
    for key, n in TRAINED_REFERENCES.items():
        if key in name:
            return n
    return None


def reference_images(references, width: int, height: int) -> list:
    """References (``Reference`` objects or IMAGE tensors) at the video size, in the given order."""
    from ..wan.references import letterbox_black

    images = []
    for r in references or []:
        img = getattr(r, "image", r)
        if img.ndim == 3:
            img = img[None]
        if tuple(img.shape[-3:-1]) != (height, width):
            img = letterbox_black(img, width, height)
        images.append(img)
    return images


def generate(model, text, req):
    """The spec's ``generate``: references → sample (SAT sampler) → decode; frames [N, H, W, 3] on the CPU."""
    from ...memory import vae_memory
    from ...sampling.stages import decode_progress, using

    if req.global_identity is not None or req.local_identity is not None:
        log.warning("IDVideo: Concat-ID-CogVideoX takes references, not ConsisID identities; they are ignored.")
    if req.cache_threshold and req.cache_threshold > 0:
        log.warning("IDVideo: step caching is not available for Concat-ID-CogVideoX; every step is computed.")
    images = reference_images(req.references, req.width, req.height)
    trained = trained_references(model)
    if trained is not None and len(images) > trained:
        log.warning("IDVideo: these Concat-ID-CogVideoX weights (%s) were trained with %s; %d given. Use the "
                    "two-identities weights for two people.", model.options.get("variant"),
                    "one reference" if trained == 1 else f"{trained} references", len(images))
    labels = [getattr(r, "label", f"reference {n + 1}") for n, r in enumerate(req.references or [])]
    if labels:
        log.info("IDVideo: Concat-ID-CogVideoX references in order (t = T, T+1, …): %s", ", ".join(labels))
    settings = Settings(width=req.width, height=req.height, num_frames=req.num_frames, steps=req.steps, cfg=req.cfg,
                        seed=req.seed)
    with using(model, "vae"):
        s, refs, latents, generator = prepare(model, images, settings)
    with using(model, "transformer"):
        latents = run_sampler(model, text, refs, latents, generator, s, progress=req.progress, preview=req.preview,
                              node_id=req.node_id)
    with using(model, "vae") as vae, vae_memory(vae, req.vae_tiling), \
            decode_progress(vae, latents, frame_dim=1, node_id=req.node_id, enabled=req.progress):
        frames = decode(model, latents)
    bridge.soft_empty_cache()
    return (frames, latents) if req.return_latents else frames
