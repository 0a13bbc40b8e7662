"""How a concatenation method runs on the shared Wan2.1 machinery: a :class:`WanMethod` is the method's data and
small hooks (reference fit, limits, noise, sampler, CFG branches and their combination). The methods themselves
live in their family packages (``backbones/concatid_wan``, ``backbones/phantom_wan``); :class:`~.adapter.WanAdapter`
only calls these hooks, so a new Wan-based method is a new package with a new ``WanMethod``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

from ...errors import InputError


@dataclass(frozen=True)
class WanMethod:
    name: str                          # also the DiT's routing mode (rope.py / transformer.py): RoPE slots etc.
    label: str
    default_negative: str              # negative prompt when none is given
    fit_reference: Callable            # (image [1,H,W,3], width, height) -> image at the video size
    make_scheduler: Callable           # (steps, shift) -> scheduler with .timesteps and .step(out, t, latents)
    branches: Callable                 # (pos, neg, refs) -> list[(name, context, refs)]; the first is the fully
    #                                    conditioned one, the only one run when every guidance scale is 1
    combine: Callable                  # (outs, state) -> guided prediction for the video frames
    noise_covers_references: bool = False   # draw noise for F+K frames and keep the video part (Phantom)
    timestep_in_compute_dtype: bool = False  # DiffSynth casts t to the compute dtype (Concat-ID)
    max_references: Optional[int] = None     # hard limit: an error above
    trained_references: Optional[int] = None  # the weights' training: a warning above
    image_cfg: Optional[float] = None        # second guidance scale, where the method has one


_METHODS: dict[str, WanMethod] = {}


def register_method(method: WanMethod) -> WanMethod:
    _METHODS[method.name] = method
    return method


def get_method(name_or_method) -> WanMethod:
    if isinstance(name_or_method, WanMethod):
        return name_or_method
    if name_or_method not in _METHODS:
        from .. import registry

        registry.discover()                 # the family packages register their methods on import
    method = _METHODS.get(name_or_method)
    if method is None:
        raise InputError(f"Unknown Wan method '{name_or_method}'.", f"Choose one of: {', '.join(_METHODS)}.")
    return method
