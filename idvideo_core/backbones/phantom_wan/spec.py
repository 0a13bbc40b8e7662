"""Phantom-Wan's plug-in."""
from __future__ import annotations

from ..registry import register
from ..wan.family import wan_spec
from .defaults import planned_clip
from .method import METHOD

SPEC = register(wan_spec(
    "phantom_wan", "Phantom-Wan", METHOD, published="phantom", default_refs=4, planned_clip=planned_clip,
    description="Phantom-Wan: up to 4 subject references (faces, garments, objects) appended as frames."))
