"""Concat-ID-Wan's plug-in (and plain Wan2.1 T2V, which runs the same pipeline without a reference)."""
from __future__ import annotations

from ..registry import register
from ..wan.family import wan_spec
from .method import METHOD

SPEC = register(wan_spec(
    "concatid_wan", "Concat-ID-Wan", METHOD, published="concatid_wan", default_refs=1,
    description="Concat-ID on Wan2.1-T2V-1.3B (stage 1 or AdaLN): one face reference appended as a frame."))

PLAIN_WAN = register(wan_spec(
    "wan", "Wan2.1 (plain T2V)", METHOD, published="wan", default_refs=0,
    description="Wan2.1-T2V without references (Concat-ID's sampler and guidance)."))
