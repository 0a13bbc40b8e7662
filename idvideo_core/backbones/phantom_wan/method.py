"""The Phantom-Wan method (reference notes "Verified behaviour of the official Phantom-Wan code")."""
from __future__ import annotations

from ..wan.method import WanMethod, register_method
from ..wan.references import pad_white
from ..wan.rope import PHANTOM
from ..wan.schedulers import PhantomUniPC
from ..wan.text import WAN_DEFAULT_NEGATIVE

IMAGE_CFG = 5.0


def _branches(pos, neg, refs):
    import torch

    zero = None if refs is None else torch.zeros_like(refs)
    return [("text_image", pos, refs), ("image", neg, refs), ("negative", neg, zero)]


def _combine(outs, state):
    pos_it, pos_i, neg = outs
    return neg + state.image_cfg_scale * (pos_i - neg) + state.text_cfg_scale * (pos_it - pos_i)


METHOD = register_method(WanMethod(
    name=PHANTOM, label="Phantom-Wan", default_negative=WAN_DEFAULT_NEGATIVE,
    fit_reference=pad_white, make_scheduler=PhantomUniPC, branches=_branches, combine=_combine,
    noise_covers_references=True, timestep_in_compute_dtype=False, max_references=4, trained_references=4,
    image_cfg=IMAGE_CFG,
))
