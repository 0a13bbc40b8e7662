"""The Concat-ID-Wan method (reference notes §1.4–1.6 and "Verified behaviour of the official Concat-ID-Wan code")."""
from __future__ import annotations

from ..wan.method import WanMethod, register_method
from ..wan.references import letterbox_black
from ..wan.rope import CONCATID
from ..wan.schedulers import FlowMatchEuler
from ..wan.text import CONCATID_DEFAULT_NEGATIVE


def _branches(pos, neg, refs):
    return [("cond", pos, refs), ("uncond", neg, refs)]


def _combine(outs, state):
    cond, uncond = outs
    return uncond + state.cfg_scale * (cond - uncond)


METHOD = register_method(WanMethod(
    name=CONCATID, label="Concat-ID-Wan", default_negative=CONCATID_DEFAULT_NEGATIVE,
    fit_reference=letterbox_black, make_scheduler=FlowMatchEuler, branches=_branches, combine=_combine,
    noise_covers_references=False, timestep_in_compute_dtype=True, max_references=None, trained_references=1,
))
