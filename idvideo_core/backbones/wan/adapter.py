"""``WanAdapter``: what the shared denoising loop needs from the Wan backbone (Concat-ID-Wan, Phantom-Wan).

Loop contract (kept small on purpose)::

    adapter = WanAdapter(model, method="concatid")              # model: LoadedModel with a WanDiT transformer
    state = adapter.prepare(text, references, width, height, frames, generator)
    latents = state.latents
    for t in state.scheduler.timesteps:
        out = adapter.predict(state, latents, t)                  # batched branches + CFG combine, video frames only
        latents = state.scheduler.step(out, t, latents)
    frames = adapter.decode(state, latents)                       # (F, H, W, 3) float 0..1

Per method (reference notes §1.6, §6 and the verified-behaviour sections):
* ``concatid`` — branches [prompt+refs, negative+refs]; ``uncond + cfg·(cond − uncond)``, cfg 5.0 (always two
  passes, as the official loop); flow-match Euler shift 5; noise drawn for the video frames only; the timestep is
  cast to the compute dtype as DiffSynth does; default negative prompt ``"..."``.
* ``phantom`` — branches [prompt+refs, null+refs, null+zero refs];
  ``neg + 5.0·(pos_i − neg) + 7.5·(pos_it − pos_i)``; UniPC with Phantom's exact sigmas; noise drawn for F+K frames
  and the video part kept; null text = Wan's default negative prompt; at most 4 references.
References are re-attached clean every step and trimmed from the output (the DiT returns video frames only).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Union

import torch

from ...errors import InputError
from ...types import Reference, TextEmbeds
from .references import decode_latents, encode_references, letterbox_black, pad_white
from .rope import CONCATID, PHANTOM
from .schedulers import FlowMatchEuler, PhantomUniPC
from .text import CONCATID_DEFAULT_NEGATIVE, WAN_DEFAULT_NEGATIVE, encode_texts

log = logging.getLogger("idvideo")

LIMITS = {CONCATID: 1, PHANTOM: 4}      # Concat-ID-Wan: trained with 1 (warn above); Phantom: at most 4 (enforced)


@dataclass
class WanBranch:
    """One conditioning set of the batched forward."""

    name: str
    context: torch.Tensor                 # (1, 512, text_dim)
    refs: Optional[torch.Tensor]          # (1, 16, K, h, w) clean reference latents, or None


@dataclass
class WanState:
    method: str
    branches: list[WanBranch]
    latents: torch.Tensor                 # (1, 16, f, h, w) initial noise (float32)
    scheduler: Any                        # FlowMatchEuler | PhantomUniPC: .timesteps, .step(out, t, latents)
    width: int
    height: int
    frames: int
    fps: int = 16
    cfg_scale: float = 5.0
    image_cfg_scale: float = 5.0
    text_cfg_scale: float = 7.5
    ref_latents: Optional[torch.Tensor] = None
    meta: dict = field(default_factory=dict)


class WanAdapter:
    def __init__(self, model, method: str = CONCATID, steps: int = 50, shift: float = 5.0, cfg_scale: float = 5.0,
                 image_cfg_scale: float = 5.0, text_cfg_scale: float = 7.5, batch_branches: bool = True,
                 cache=None):
        if method not in LIMITS:
            raise InputError(f"Unknown Wan method '{method}'.", f"Choose one of: {', '.join(LIMITS)}.")
        self.model = model
        self.method = method
        self.steps, self.shift = int(steps), float(shift)
        self.cfg_scale, self.image_cfg_scale, self.text_cfg_scale = cfg_scale, image_cfg_scale, text_cfg_scale
        self.batch_branches = batch_branches
        self.cache = cache          # optional sampling.cache.StepCache (None: every step computed, exact)
        self.scheduler = None

    # ------------------------------------------------------------------ helpers
    @property
    def dit(self):
        return self.model.transformer

    @property
    def device(self):
        return self.model.device or self.dit.device

    @property
    def dtype(self):
        return self.model.dtype or self.dit.dtype

    def _text(self, text: Union[str, TextEmbeds], negative: Optional[str]) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(text, TextEmbeds):
            if text.family != "wan":
                raise InputError("These text embeddings were made for CogVideoX (T5, 226 tokens), not Wan.",
                                 "Encode the prompt with the Wan model's text encoder (UMT5).")
            neg = text.negative_embeds
            if neg is None:
                raise InputError("The Wan text embeddings have no negative prompt.",
                                 "Encode a negative prompt too (Wan's CFG always runs a negative branch).")
            return text.prompt_embeds, neg
        if self.model.text_encoder is None:
            raise InputError("This Wan model was loaded without a text encoder.",
                             "Load UMT5 with the model, or pass encoded text embeddings.")
        if negative is None:
            negative = CONCATID_DEFAULT_NEGATIVE if self.method == CONCATID else WAN_DEFAULT_NEGATIVE
        emb = encode_texts(self.model.text_encoder, self.model.tokenizer, [text, negative], self.device, self.dtype)
        return emb[:1], emb[1:]

    def _ref_latents(self, references, width: int, height: int) -> Optional[torch.Tensor]:
        if references is None or (isinstance(references, Sequence) and len(references) == 0):
            return None
        if isinstance(references, torch.Tensor):          # already-encoded latents (1, 16, K, h, w)
            return references.float()
        images = []
        for r in references:
            img = r.image if isinstance(r, Reference) else r
            if tuple(img.shape[-3:-1]) != (height, width):
                img = letterbox_black(img, width, height) if self.method == CONCATID else pad_white(img, width, height)
            images.append(img)
        return encode_references(self.model.vae, images)

    def _check_count(self, k: int) -> None:
        limit = LIMITS[self.method]
        if self.method == PHANTOM and k > limit:
            raise InputError(f"Phantom-Wan takes at most {limit} references; {k} were given.",
                             f"Remove {k - limit} reference(s) from the concatenator.")
        if self.method == CONCATID and k > limit:
            log.warning("IDVideo: Concat-ID-Wan was trained with one reference; %d given. Each gets its own time "
                        "slot (untrained), expect weaker identity.", k)
        if k == 0:
            log.warning("IDVideo: no reference given; %s runs as plain text-to-video.", self.method)

    # ------------------------------------------------------------------ contract
    def prepare(self, text, references, width: int = 832, height: int = 480, frames: int = 81,
                generator: Optional[torch.Generator] = None, negative_text: Optional[str] = None) -> WanState:
        if width % 16 or height % 16:
            raise InputError(f"Wan needs width and height divisible by 16 (got {width}×{height}).",
                             "Use e.g. 832×480 or 480×832.")
        if (frames - 1) % 4:
            raise InputError(f"Wan needs 4k+1 frames (got {frames}).", f"Use {((frames - 1) // 4) * 4 + 1} frames.")
        pos, neg = self._text(text, negative_text)
        refs = self._ref_latents(references, width, height)
        k = 0 if refs is None else refs.shape[2]
        self._check_count(k)
        f, h, w = (frames - 1) // 4 + 1, height // 8, width // 8
        gen_dev = generator.device if generator is not None else torch.device("cpu")
        if self.method == CONCATID:
            noise = torch.randn((1, 16, f, h, w), generator=generator, device=gen_dev, dtype=torch.float32)
            scheduler = FlowMatchEuler(self.steps, self.shift)
            branches = [WanBranch("cond", pos, refs), WanBranch("uncond", neg, refs)]
        else:
            noise = torch.randn((1, 16, f + k, h, w), generator=generator, device=gen_dev,
                                dtype=torch.float32)[:, :, :f]
            scheduler = PhantomUniPC(self.steps, self.shift)
            zero = None if refs is None else torch.zeros_like(refs)
            branches = [WanBranch("text_image", pos, refs), WanBranch("image", neg, refs),
                        WanBranch("negative", neg, zero)]
        self.scheduler = scheduler
        return WanState(self.method, branches, noise.to(self.device), scheduler, width, height, frames,
                        cfg_scale=self.cfg_scale, image_cfg_scale=self.image_cfg_scale,
                        text_cfg_scale=self.text_cfg_scale, ref_latents=refs)

    def branches(self, state: WanState) -> list[WanBranch]:
        return state.branches

    def _timestep(self, state: WanState, t, batch: int) -> torch.Tensor:
        t = torch.as_tensor(t, device=self.device).flatten()[:1]
        if state.method == CONCATID:
            t = t.to(self.dtype)           # DiffSynth casts the timestep to the compute dtype
        return t.float().expand(batch)

    @torch.no_grad()
    def _conditioning(self, state: WanState, branches: list[WanBranch]):
        """Text contexts and reference latents of ``branches``, batched on the device once per generation."""
        key = tuple(b.name for b in branches)
        memo = state.meta.setdefault("batched", {})
        if key not in memo:
            ctx = torch.cat([b.context for b in branches]).to(self.device, self.dtype)
            refs = None
            if branches[0].refs is not None:
                refs = torch.cat([b.refs for b in branches]).to(self.device, self.dtype)
            memo[key] = (ctx, refs)
        return memo[key]

    def _forward(self, state: WanState, latents: torch.Tensor, t, branches: list[WanBranch],
                 slot=0) -> torch.Tensor:
        dit = self.dit
        n = len(branches)
        x = latents.to(self.device, self.dtype).expand(n, -1, -1, -1, -1)
        ctx, refs = self._conditioning(state, branches)
        mode = state.method if refs is not None else "stock"
        if self.cache is None:
            return dit(x, self._timestep(state, t, n), ctx, refs, mode).float()
        return dit(x, self._timestep(state, t, n), ctx, refs, mode, cache=self.cache, cache_slot=slot).float()

    def predict(self, state: WanState, latents: torch.Tensor, t) -> torch.Tensor:
        """Combined model output for the video frames (the references are re-attached clean inside)."""
        if self.batch_branches:
            outs = list(self._forward(state, latents, t, state.branches).split(1))
        else:
            outs = [self._forward(state, latents, t, [b], slot=k) for k, b in enumerate(state.branches)]
        if state.method == CONCATID:
            cond, uncond = outs
            return uncond + state.cfg_scale * (cond - uncond)
        pos_it, pos_i, neg = outs
        return neg + state.image_cfg_scale * (pos_i - neg) + state.text_cfg_scale * (pos_it - pos_i)

    def decode(self, state: WanState, latents: torch.Tensor) -> torch.Tensor:
        return decode_latents(self.model.vae, latents)
