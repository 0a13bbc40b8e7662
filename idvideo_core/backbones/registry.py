"""The backbone registry: every model family is a plug-in package that registers one :class:`BackboneSpec`.

Nothing outside ``idvideo_core/backbones/`` asks which family a model is; it asks the family's spec. A family package
``idvideo_core/backbones/<name>/`` has a module ``spec.py`` that calls :func:`register` at import; the registry
imports every such module the first time a spec is looked up (:func:`discover`), so adding a model is adding a
package (``backbones/README.md``).

Spec modules stay light: heavy imports (diffusers, the family's model code) happen inside the spec's callables.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

from ..errors import InputError


@dataclass(frozen=True)
class ClipDefaults:
    """The clip a family was trained for and its reference sampling settings (the nodes' model-dependent defaults)."""

    width: int
    height: int
    num_frames: int
    fps: int
    steps: int
    cfg: float
    seed: int = 42


@dataclass
class GenerateRequest:
    """Everything one generation needs besides the model and the text (what the sampler node / CLI collected)."""

    width: int
    height: int
    num_frames: int
    steps: int
    cfg: float
    seed: int
    use_dynamic_cfg: bool = False
    face_scale: Optional[float] = None
    vae_tiling: bool = True
    global_identity: Any = None
    local_identity: Any = None
    references: Any = None
    node_id: Any = None
    progress: bool = True
    return_latents: bool = False
    cache_threshold: float = 0.0
    preview: Optional[Callable] = None      # latents -> preview tuple, or None (set by the runtime from the spec)
    sampler_preset: str = "default"         # "default" or one of the spec's ``sampler_presets``
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class BackboneSpec:
    """One model family, as the rest of the pack sees it.

    Callables (``model`` is a :class:`~idvideo_core.backbones.base.LoadedModel`):

    * ``generate(model, text, request) -> frames | (frames, latents)``: sample through the shared loop
      (:func:`idvideo_core.sampling.denoise`) and decode; frames [N, H, W, 3] float 0..1 on the CPU.
    * ``encode_prompt(text_encoder, tokenizer, prompt, negative, device=, dtype=) -> TextEmbeds``.
    * ``workload(transformer, dtype_bytes, width, height, num_frames, references) -> Workload | None``: the batched
      forward of one denoising step (the memory planner's activation estimate, ``memory/estimate.py``).
    * ``set_attention(transformer, choice, kernel)``: switch the attention kernel (``attention.py`` helpers).
    * ``cache_rule(num_blocks) -> CacheRule``: the step-cache polynomial (``sampling/cache.py``).
    * ``encode_global_identity(model, face_rgb, width, height, kps_rgb)``: only for families with a channel-
      concatenated face latent (ConsisID); None elsewhere.
    * ``trained_size(model) -> (w, h) | None``: a size the weights are pinned to (learned positional embeddings).
    """

    family: str                          # registry key, stored in LoadedModel.family
    label: str                           # what creators read (loader lists, messages)
    text_family: str                     # which TextEmbeds fit ("cogvideox" T5-226, "wan" UMT5-512)
    defaults: ClipDefaults
    frame_unit: int                      # frame counts are frame_unit·k + 1
    block_path: str                      # dotted path from the transformer to its list of blocks
    identity: str                        # "face" (global/local identity inputs) or "references"
    generate: Callable
    encode_prompt: Callable
    workload: Callable
    set_attention: Callable
    cache_rule: Callable
    published: str                       # key of paths.PUBLISHED: where the weights are published
    latent_rgb: Any = None               # preview.LatentRGB, or None (no live preview)
    max_references: Optional[int] = None  # hard limit (error above), None = no references / no hard limit
    trained_references: Optional[int] = None  # how many references the weights were trained with (warn above)
    encode_global_identity: Optional[Callable] = None
    trained_size: Optional[Callable] = None
    planned_clip: Optional[Callable] = None  # transformer -> (w, h, frames) to plan memory for; None = defaults
    block_list: Optional[Callable] = None    # transformer -> blocks, where block_path alone does not reach them
    preflight: Optional[Callable] = None     # (loader widgets, width, height, frames, steps, cfg) -> frames to make:
    #                                          the sampler's own checks from config files only, before any weight
    sampler_presets: tuple = ()              # presets besides "default" the family's generate understands
    lora: Any = None                         # lora.LoraSupport: how the family's LoRA files are read (None: none)
    description: str = ""

    # ------------------------------------------------------------------ derived, the same for every family
    def snap_frames(self, num_frames: int) -> int:
        """The nearest frame count this family can make (frame_unit·k + 1, at least 1)."""
        u = self.frame_unit
        return max(1, int((int(num_frames) - 1) / u + 0.5) * u + 1)

    def blocks(self, transformer):
        """The transformer's block list (memory modes, compile, step cache)."""
        if self.block_list is not None:
            return self.block_list(transformer)
        obj = transformer
        for part in self.block_path.split("."):
            obj = getattr(obj, part)
        return obj

    def planning_clip(self, transformer) -> tuple[int, int, int]:
        """(width, height, frames) the loader plans memory for: the clip the weights were trained at."""
        if self.planned_clip is not None:
            clip = self.planned_clip(transformer)
            if clip is not None:
                return clip
        d = self.defaults
        return d.width, d.height, d.num_frames


_SPECS: dict[str, BackboneSpec] = {}
_DISCOVERED = False


def register(spec: BackboneSpec) -> BackboneSpec:
    """Add a family (called by ``backbones/<name>/spec.py`` at import). Registering a key twice is a bug."""
    old = _SPECS.get(spec.family)
    if old is not None and old is not spec:
        raise ValueError(f"backbone family '{spec.family}' registered twice")
    _SPECS[spec.family] = spec
    return spec


def discover() -> None:
    """Import ``spec`` of every package under ``idvideo_core/backbones/`` (once)."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    from .. import backbones

    for info in sorted(pkgutil.iter_modules(backbones.__path__), key=lambda i: i.name):
        if info.ispkg:
            try:
                importlib.import_module(f"{backbones.__name__}.{info.name}.spec")
            except ModuleNotFoundError as exc:
                if exc.name != f"{backbones.__name__}.{info.name}.spec":
                    raise


def families() -> list[str]:
    discover()
    return list(_SPECS)


def specs() -> list[BackboneSpec]:
    discover()
    return list(_SPECS.values())


def get(family: str) -> BackboneSpec:
    discover()
    spec = _SPECS.get(family)
    if spec is None:
        raise InputError(f"Unknown model family '{family}'.", f"Choose one of: {', '.join(_SPECS)}.")
    return spec


def spec_of(model) -> BackboneSpec:
    """The spec of a loaded model (``LoadedModel.family``)."""
    return get(model.family)
