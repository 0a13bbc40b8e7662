"""One source of truth for the video's size and length (issue 14).

The sampler's width, height and frame count are 0 (= auto) by default and then follow what is connected: the size
the global identity was encoded at or the references were fitted to, else the size the weights are pinned to
(``spec.trained_size``), else the family's trained clip (``spec.defaults``); the frame count follows the family's
default (the backbone then applies its frame rule, with a warning).
A value the creator sets overrides auto, but never silently
contradicts a connected identity: that is an :class:`~idvideo_core.errors.InputError` naming both values.

Everything model-dependent comes from the backbone spec; nothing here asks which family a model is. The same rules
run at queue time on the prompt's constants (``nodes/checks.py``) so a conflict is refused before models load.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

from .errors import InputError

log = logging.getLogger("idvideo")

AUTO = 0
GLOBAL_ID_NODE = "IDVideo Global Identity Extractor"
CONCAT_NODE = "IDVideo Multi-Identity Concatenator"
SAMPLER_NODE = "IDVideo DiT Sampler"


@dataclass(frozen=True)
class Clip:
    width: int
    height: int
    num_frames: int
    size_from: str          # where the size came from, in words (for the log)


def identity_size(global_identity=None, references=None) -> Optional[tuple[int, int, str]]:
    """(width, height, which node) of the connected identity, or None. Different sizes are a conflict."""
    found: list[tuple[int, int, str]] = []
    if global_identity is not None and getattr(global_identity, "width", None):
        found.append((int(global_identity.width), int(global_identity.height), f"'{GLOBAL_ID_NODE}'"))
    for ref in references or ():
        image = getattr(ref, "image", None)
        shape = getattr(image, "shape", None)
        if shape is not None and len(shape) == 4:
            found.append((int(shape[2]), int(shape[1]), f"'{CONCAT_NODE}'"))
    sizes = {(w, h) for w, h, _ in found}
    if len(sizes) > 1:
        listed = ", ".join(f"{w}×{h} from {who}" for w, h, who in dict.fromkeys(found))
        raise InputError(f"The connected identities have different sizes: {listed}.",
                         "Give the global identity extractor and the concatenator the same width and height (or 0 "
                         "for the model's size).")
    return found[0] if found else None


def model_size(spec, model=None) -> tuple[int, int, str]:
    """The size the weights are pinned to, else the family's trained size."""
    pinned = spec.trained_size(model) if (model is not None and spec.trained_size is not None) else None
    if pinned:
        return int(pinned[0]), int(pinned[1]), f"the {spec.label} weights' trained size"
    return spec.defaults.width, spec.defaults.height, f"{spec.label}'s trained size"


def conflict(width: int, height: int, src: tuple[int, int, str]) -> Optional[str]:
    """A sentence when set width/height contradict the identity's size (0 = auto never does)."""
    w, h, who = src
    if (width and width != w) or (height and height != h):
        return (f"The sampler is set to {width or 'auto'}×{height or 'auto'} but the identity from {who} was made "
                f"at {w}×{h}; the video must have the identity's size.")
    return None


CONFLICT_FIX = ("Set the sampler's width and height to 0 (auto: they follow the connected identity), or set the "
                "same size on the identity node.")


def resolve_clip(spec, model, width: int, height: int, num_frames: int, global_identity=None,
                 references=None) -> Clip:
    """The sampler's (width, height, frames) after auto and the family's frame rule."""
    for name, value in (("width", width), ("height", height), ("num_frames", num_frames)):
        if value is None or int(value) < 0:
            raise InputError(f"The sampler's {name} is {value}.", f"Use 0 (auto) or a positive {name}.")
    src = identity_size(global_identity, references)
    pinned = spec.trained_size(model) if (model is not None and spec.trained_size is not None) else None
    if pinned and width and height and (int(width), int(height)) != tuple(pinned):
        # a size these weights cannot make at all: the backbone's own check says so, naming the trained size
        return Clip(int(width), int(height), int(num_frames) or spec.defaults.num_frames, "set on the sampler")
    if src is not None:
        problem = conflict(int(width), int(height), src)
        if problem:
            raise InputError(problem, CONFLICT_FIX)
    base = src or model_size(spec, model)
    w, h = int(width) or base[0], int(height) or base[1]
    frames = int(num_frames) or spec.defaults.num_frames   # the backbone snaps it to its frame rule, with a warning
    size_from = "set on the sampler" if (width and height) else base[2]
    if not (width and height) or not num_frames:
        log.info("IDVideo: video %dx%d, %d frames (size: %s).", w, h, frames, size_from)
    return Clip(w, h, frames, size_from)


def identity_encode_size(spec, model, width: int, height: int) -> tuple[int, int]:
    """The global identity extractor's size: 0 = the model's (pinned or trained) size."""
    base = model_size(spec, model)
    return int(width) or base[0], int(height) or base[1]
