"""``WanAdapter``: what the shared denoising loop needs from the Wan backbone (Concat-ID-Wan, Phantom-Wan).

Loop contract (kept small on purpose)::

    adapter = WanAdapter(model, method="concatid")              # model: LoadedModel with a WanDiT transformer
    state = adapter.prepare(text, references, width, height, frames, generator)
    latents = state.latents
    for t in state.scheduler.timesteps:
        out = adapter.predict(state, latents, t)                  # batched branches + CFG combine, video frames only
        latents = state.scheduler.step(out, t, latents)
    frames = adapter.decode(state, latents)                       # (F, H, W, 3) float 0..1

The method (a :class:`~.method.WanMethod` from its family package; "concatid" / "phantom" by name) supplies the
reference fit, limits, noise, sampler, branches and CFG combination. Today's two (reference notes §1.6, §6 and the
verified-behaviour sections):
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
from .method import WanMethod, get_method
from .references import decode_latents, encode_references
from .rope import CONCATID, PHANTOM  # noqa: F401  (method names, re-exported)
from .text import encode_texts

log = logging.getLogger("idvideo")


@dataclass
class WanBranch:
    """One conditioning set of the batched forward."""

    name: str
    context: torch.Tensor                 # (1, 512, text_dim)
    refs: Optional[torch.Tensor]          # (1, 16, K, h, w) clean reference latents, or None


@dataclass
class WanState:
    method: WanMethod
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
    def __init__(self, model, method: Union[str, WanMethod] = CONCATID, steps: int = 50, shift: float = 5.0,
                 cfg_scale: float = 5.0, image_cfg_scale: float = 5.0, text_cfg_scale: float = 7.5,
                 batch_branches: bool = True, cache=None):
        self.model = model
        self.method = get_method(method)
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
            negative = self.method.default_negative
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
                img = self.method.fit_reference(img, width, height)
            images.append(img)
        return encode_references(self.model.vae, images)

    def _check_count(self, k: int) -> None:
        m = self.method
        if m.max_references is not None and k > m.max_references:
            raise InputError(f"{m.label} takes at most {m.max_references} references; {k} were given.",
                             f"Remove {k - m.max_references} reference(s) from the concatenator.")
        if m.trained_references is not None and k > m.trained_references:
            if m.trained_references == 1:
                log.warning("IDVideo: %s was trained with ONE reference only (its official inference hard-codes one); "
                            "%d given. The extra references are untrained: the model never saw a second person, so "
                            "expect the extra identities to be guessed or lost. For two people use "
                            "Concat-ID-CogVideoX with its two-identities weights ('IDVideo Concat-ID CogVideoX "
                            "Loader').", m.label, k)
            else:
                log.warning("IDVideo: %s was trained with at most %d references; %d given. Each extra one gets its "
                            "own time slot, which the model never saw in training: expect a weaker identity for "
                            "the extra references.", m.label, m.trained_references, k)
        if k == 0:
            log.warning("IDVideo: no reference given; %s runs as plain text-to-video.", m.label)

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
        m = self.method
        drawn = f + k if m.noise_covers_references else f
        noise = torch.randn((1, 16, drawn, h, w), generator=generator, device=gen_dev, dtype=torch.float32)[:, :, :f]
        scheduler = m.make_scheduler(self.steps, self.shift)
        branches = [WanBranch(name, ctx, r) for name, ctx, r in m.branches(pos, neg, refs)]
        if self.guidance_free:
            branches = branches[:1]       # every scale 1: the guided sum is the fully conditioned branch alone
        self.scheduler = scheduler
        return WanState(self.method, branches, noise.to(self.device), scheduler, width, height, frames,
                        cfg_scale=self.cfg_scale, image_cfg_scale=self.image_cfg_scale,
                        text_cfg_scale=self.text_cfg_scale, ref_latents=refs)

    @property
    def guidance_free(self) -> bool:
        """True when every guidance scale is 1: ``uncond + 1·(cond − uncond)`` (and Phantom's
        ``neg + 1·(pos_i − neg) + 1·(pos_it − pos_i)``) is the first, fully conditioned branch, so only it runs:
        one transformer pass per step (what step-distilled models are trained for)."""
        return float(self.cfg_scale) == 1.0 and (self.method.image_cfg is None or float(self.image_cfg_scale) == 1.0)

    def branches(self, state: WanState) -> list[WanBranch]:
        return state.branches

    def _timestep(self, state: WanState, t, batch: int) -> torch.Tensor:
        t = torch.as_tensor(t, device=self.device).flatten()[:1]
        if state.method.timestep_in_compute_dtype:
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
        mode = state.method.name if refs is not None else "stock"
        if self.cache is None:
            return dit(x, self._timestep(state, t, n), ctx, refs, mode).float()
        return dit(x, self._timestep(state, t, n), ctx, refs, mode, cache=self.cache, cache_slot=slot).float()

    def predict(self, state: WanState, latents: torch.Tensor, t) -> torch.Tensor:
        """Combined model output for the video frames (the references are re-attached clean inside)."""
        if self.batch_branches:
            outs = list(self._forward(state, latents, t, state.branches).split(1))
        else:
            outs = [self._forward(state, latents, t, [b], slot=k) for k, b in enumerate(state.branches)]
        if len(state.branches) == 1:
            return outs[0]
        return state.method.combine(outs, state)

    def decode(self, state: WanState, latents: torch.Tensor) -> torch.Tensor:
        return decode_latents(self.model.vae, latents)
