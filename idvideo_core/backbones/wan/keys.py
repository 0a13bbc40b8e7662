"""Key names of Wan2.1 checkpoints: original (Wan / DiffSynth / ComfyUI / Concat-ID / Phantom) ↔ diffusers.

Why exact patterns and not substring renames: Concat-ID's AdaLN checkpoint adds ``time_projection_ref.1.*`` and
``blocks.N.modulation_ref``. Substring rules written for stock Wan silently turn ``modulation_ref`` into
``scale_shift_table_ref`` and miss ``time_projection_ref.1`` (the ``time_projection.1`` rule does not match it), and the
norm names cross over (original ``norm3`` is the affine cross-attention norm = diffusers ``norm2``). Every key here is
matched whole by one rule; a key no rule knows is reported, never guessed.

The Concat-ID extras get IDVideo names on the diffusers side (they are not part of ``WanTransformer3DModel``)::

    time_projection_ref.1.{weight,bias}  <->  ref_time_proj.{weight,bias}
    blocks.N.modulation_ref              <->  blocks.N.ref_scale_shift_table
"""
from __future__ import annotations

import re
from typing import Callable, Iterable, Mapping

COMFY_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "model.")

# (original, diffusers) templates; ``{i}`` is a block index, ``{p}`` is ``weight`` or ``bias``.
_TOP = [
    ("patch_embedding.{p}", "patch_embedding.{p}"),
    ("text_embedding.0.{p}", "condition_embedder.text_embedder.linear_1.{p}"),
    ("text_embedding.2.{p}", "condition_embedder.text_embedder.linear_2.{p}"),
    ("time_embedding.0.{p}", "condition_embedder.time_embedder.linear_1.{p}"),
    ("time_embedding.2.{p}", "condition_embedder.time_embedder.linear_2.{p}"),
    ("time_projection.1.{p}", "condition_embedder.time_proj.{p}"),
    ("head.head.{p}", "proj_out.{p}"),
    ("head.modulation", "scale_shift_table"),
    # Wan2.1 I2V image-embedding MLP (not used by Concat-ID/Phantom, mapped so I2V files are recognised).
    ("img_emb.proj.0.{p}", "condition_embedder.image_embedder.norm1.{p}"),
    ("img_emb.proj.1.{p}", "condition_embedder.image_embedder.ff.net.0.proj.{p}"),
    ("img_emb.proj.3.{p}", "condition_embedder.image_embedder.ff.net.2.{p}"),
    ("img_emb.proj.4.{p}", "condition_embedder.image_embedder.norm2.{p}"),
    # Concat-ID AdaLN extra.
    ("time_projection_ref.1.{p}", "ref_time_proj.{p}"),
]
_BLOCK = [
    ("modulation", "scale_shift_table"),
    ("modulation_ref", "ref_scale_shift_table"),                 # Concat-ID AdaLN extra
    ("norm3.{p}", "norm2.{p}"),                                 # affine cross-attention norm
    ("ffn.0.{p}", "ffn.net.0.proj.{p}"),
    ("ffn.2.{p}", "ffn.net.2.{p}"),
]
for _o, _d in (("self_attn", "attn1"), ("cross_attn", "attn2")):
    _BLOCK += [
        (f"{_o}.q.{{p}}", f"{_d}.to_q.{{p}}"),
        (f"{_o}.k.{{p}}", f"{_d}.to_k.{{p}}"),
        (f"{_o}.v.{{p}}", f"{_d}.to_v.{{p}}"),
        (f"{_o}.o.{{p}}", f"{_d}.to_out.0.{{p}}"),
        (f"{_o}.norm_q.weight", f"{_d}.norm_q.weight"),
        (f"{_o}.norm_k.weight", f"{_d}.norm_k.weight"),
    ]
_BLOCK += [
    ("cross_attn.k_img.{p}", "attn2.add_k_proj.{p}"),
    ("cross_attn.v_img.{p}", "attn2.add_v_proj.{p}"),
    ("cross_attn.norm_k_img.weight", "attn2.norm_added_k.weight"),
]

CONCATID_ORIGINAL_EXTRAS = ("time_projection_ref.1.weight", "time_projection_ref.1.bias")


def _compile(pairs, block: bool):
    """Two regex tables (orig→diff, diff→orig) from the templates."""
    fwd, bwd = [], []
    for orig, diff in pairs:
        def rx(t: str) -> str:
            t = re.escape(t).replace(r"\{p\}", r"(?P<p>weight|bias)")
            return (r"blocks\.(?P<i>\d+)\." + t) if block else t
        fwd.append((re.compile(rx(orig) + "$"), ("blocks.{i}." + diff) if block else diff))
        bwd.append((re.compile(rx(diff) + "$"), ("blocks.{i}." + orig) if block else orig))
    return fwd, bwd


_F_TOP, _B_TOP = _compile(_TOP, block=False)
_F_BLK, _B_BLK = _compile(_BLOCK, block=True)
_FORWARD = _F_TOP + _F_BLK
_BACKWARD = _B_TOP + _B_BLK


class UnknownKeysError(KeyError):
    """Keys no mapping rule knows; carries them so loaders can name the file and the keys in a user error."""

    def __init__(self, keys: list[str]):
        self.keys = keys
        super().__init__(f"{len(keys)} unknown key(s), e.g. {keys[:5]}")


def _map_one(key: str, table) -> str | None:
    for rx, template in table:
        m = rx.match(key)
        if m:
            return template.format(**{k: v for k, v in m.groupdict().items() if v is not None})
    return None


def original_to_diffusers_key(key: str) -> str | None:
    """Diffusers name of one original Wan key (prefix already stripped), or None if no rule matches."""
    return _map_one(key, _FORWARD)


def diffusers_to_original_key(key: str) -> str | None:
    return _map_one(key, _BACKWARD)


def strip_prefix(keys: Iterable[str]) -> tuple[str, dict[str, str]]:
    """ComfyUI files may carry ``model.diffusion_model.``; returns (prefix, {stripped: original})."""
    keys = list(keys)
    for pre in COMFY_PREFIXES:
        if keys and all(k.startswith(pre) for k in keys):
            return pre, {k[len(pre):]: k for k in keys}
    return "", {k: k for k in keys}


def _convert(sd: Mapping, fn: Callable[[str], str | None]) -> dict:
    out, unknown = {}, []
    for k, v in sd.items():
        nk = fn(k)
        if nk is None:
            unknown.append(k)
        else:
            out[nk] = v
    if unknown:
        raise UnknownKeysError(unknown)
    return out


def original_to_diffusers(sd: Mapping) -> dict:
    """Whole state dict, original → diffusers (+ IDVideo names for the Concat-ID extras). Strips ComfyUI prefixes."""
    _, strip = strip_prefix(sd.keys())
    return _convert({s: sd[o] for s, o in strip.items()}, original_to_diffusers_key)


def diffusers_to_original(sd: Mapping) -> dict:
    return _convert(sd, diffusers_to_original_key)


def detect_transformer_format(keys: Iterable[str]) -> str:
    """``original`` or ``diffusers`` from the key names (ComfyUI prefixes ignored); ``unknown`` otherwise."""
    _, strip = strip_prefix(keys)
    ks = set(strip)
    if "blocks.0.self_attn.q.weight" in ks or "head.head.weight" in ks:
        return "original"
    if "blocks.0.attn1.to_q.weight" in ks or "proj_out.weight" in ks:
        return "diffusers"
    return "unknown"


def is_concatid_adaln(keys: Iterable[str]) -> bool:
    """True when the checkpoint carries Concat-ID's AdaLN extras (either naming)."""
    ks = set(strip_prefix(keys)[1])
    return bool(ks & {"time_projection_ref.1.weight", "ref_time_proj.weight"})


def split_concatid_extras(diffusers_sd: Mapping) -> tuple[dict, dict]:
    """(stock ``WanTransformer3DModel`` keys, Concat-ID extras) from a diffusers-named state dict."""
    base, extra = {}, {}
    for k, v in diffusers_sd.items():
        (extra if (k.startswith("ref_time_proj.") or k.endswith(".ref_scale_shift_table")) else base)[k] = v
    return base, extra


# ---------------------------------------------------------------------------------------------------------------
# VAE: diffusers AutoencoderKLWan → original Wan VAE names (``wan_2.1_vae.safetensors``). The opposite direction is
# read with diffusers' own ``convert_wan_vae_to_diffusers`` (see loading.py); tests check the two agree.
_RES = {"norm1.gamma": "residual.0.gamma", "conv1.weight": "residual.2.weight", "conv1.bias": "residual.2.bias",
        "norm2.gamma": "residual.3.gamma", "conv2.weight": "residual.6.weight", "conv2.bias": "residual.6.bias",
        "conv_shortcut.weight": "shortcut.weight", "conv_shortcut.bias": "shortcut.bias"}


def vae_diffusers_to_original_key(key: str, num_res_blocks: int = 2) -> str:
    simple = {"quant_conv.weight": "conv1.weight", "quant_conv.bias": "conv1.bias",
              "post_quant_conv.weight": "conv2.weight", "post_quant_conv.bias": "conv2.bias"}
    if key in simple:
        return simple[key]
    side, rest = key.split(".", 1)
    for a, b in (("conv_in.", "conv1."), ("norm_out.", "head.0."), ("conv_out.", "head.2.")):
        if rest.startswith(a):
            return f"{side}.{b}{rest[len(a):]}"
    m = re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.+)$", rest)
    if m:
        kind, j, tail = m.groups()
        idx = 1 if kind == "attentions" else (0 if j == "0" else 2)
        return f"{side}.middle.{idx}.{_RES.get(tail, tail) if kind == 'resnets' else tail}"
    m = re.match(r"down_blocks\.(\d+)\.(.+)$", rest)
    if m:
        i, tail = m.groups()
        return f"{side}.downsamples.{i}.{_RES.get(tail, tail)}"
    m = re.match(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$", rest)
    stride = num_res_blocks + 2
    if m:
        i, j, tail = m.groups()
        return f"{side}.upsamples.{int(i) * stride + int(j)}.{_RES[tail]}"
    m = re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.(.+)$", rest)
    if m:
        i, tail = m.groups()
        return f"{side}.upsamples.{int(i) * stride + stride - 1}.{tail}"
    raise UnknownKeysError([key])


def vae_diffusers_to_original(sd: Mapping, num_res_blocks: int = 2) -> dict:
    return {vae_diffusers_to_original_key(k, num_res_blocks): v for k, v in sd.items()}


def detect_vae_format(keys: Iterable[str]) -> str:
    ks = set(strip_prefix(keys)[1])
    if "encoder.conv1.weight" in ks and "conv1.weight" in ks:
        return "original"
    if "encoder.conv_in.weight" in ks:
        return "diffusers"
    return "unknown"
