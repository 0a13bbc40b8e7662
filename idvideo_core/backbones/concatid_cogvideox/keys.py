"""Key names of Concat-ID-CogVideoX SAT checkpoints ↔ diffusers ``CogVideoXTransformer3DModel``.

The SAT engine (SwissArmyTransformer, ``dit_video_concat.DiffusionTransformer`` inside ``SATVideoDiffusionEngine``)
saves the DiT under ``model.diffusion_model.``. Learned from the official model code and CogVideo's public SAT→diffusers
converter (``tools/convert_weight_sat2hf.py``), but written as whole-key rules: every key is matched by exactly one
pattern, and a key no rule knows is an error that names it (the converter's substring renames would silently accept
anything). Per block ``i`` (SAT → diffusers)::

    transformer.layers.i.input_layernorm.{p}            → transformer_blocks.i.norm1.norm.{p}
    transformer.layers.i.attention.query_key_value.{p}  → transformer_blocks.i.attn1.to_{q,k,v}.{p}  (split in 3 along dim 0)
    transformer.layers.i.attention.dense.{p}            → transformer_blocks.i.attn1.to_out.0.{p}
    transformer.layers.i.post_attention_layernorm.{p}   → transformer_blocks.i.norm2.norm.{p}
    transformer.layers.i.mlp.dense_h_to_4h.{p}          → transformer_blocks.i.ff.net.0.proj.{p}
    transformer.layers.i.mlp.dense_4h_to_h.{p}          → transformer_blocks.i.ff.net.2.{p}
    mixins.adaln_layer.query_layernorm_list.i.{p}       → transformer_blocks.i.attn1.norm_q.{p}
    mixins.adaln_layer.key_layernorm_list.i.{p}         → transformer_blocks.i.attn1.norm_k.{p}
    mixins.adaln_layer.adaLN_modulations.i.1.{p}        → 12 chunks: norm1.linear = chunks 0–2 + 6–8, norm2.linear = 3–5 + 9–11

(SAT's chunk order is shift/scale/gate of attention, of MLP, then the same six for the text tokens; diffusers'
``CogVideoXLayerNormZero`` wants video shift/scale/gate then text shift/scale/gate per norm.)

Ignored, and only these: SAT's fixed position tables, which the 5B DiT never reads — ``transformer.position_embeddings.weight``
(SwissArmyTransformer's absolute table; the rotary mixin's ``position_embedding_forward`` returns None instead) and the
rotary mixin's ``mixins.pos_embed.freqs_sin`` / ``freqs_cos`` (recomputed from the grid; the official converter drops
all three). A learned ``mixins.pos_embed.pos_embedding`` (I2V variants) is NOT ignored: it is an unknown key here.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

SAT_PREFIX = "model.diffusion_model."

IGNORED_SAT_KEYS = ("transformer.position_embeddings.weight", "mixins.pos_embed.freqs_sin",
                    "mixins.pos_embed.freqs_cos")

_TOP = {
    "time_embed.0.{p}": "time_embedding.linear_1.{p}",
    "time_embed.2.{p}": "time_embedding.linear_2.{p}",
    "mixins.patch_embed.proj.{p}": "patch_embed.proj.{p}",
    "mixins.patch_embed.text_proj.{p}": "patch_embed.text_proj.{p}",
    "transformer.final_layernorm.{p}": "norm_final.{p}",
    "mixins.final_layer.norm_final.{p}": "norm_out.norm.{p}",
    "mixins.final_layer.linear.{p}": "proj_out.{p}",
    "mixins.final_layer.adaLN_modulation.1.{p}": "norm_out.linear.{p}",
}
_BLOCK = {
    "transformer.layers.{i}.input_layernorm.{p}": "transformer_blocks.{i}.norm1.norm.{p}",
    "transformer.layers.{i}.attention.dense.{p}": "transformer_blocks.{i}.attn1.to_out.0.{p}",
    "transformer.layers.{i}.post_attention_layernorm.{p}": "transformer_blocks.{i}.norm2.norm.{p}",
    "transformer.layers.{i}.mlp.dense_h_to_4h.{p}": "transformer_blocks.{i}.ff.net.0.proj.{p}",
    "transformer.layers.{i}.mlp.dense_4h_to_h.{p}": "transformer_blocks.{i}.ff.net.2.{p}",
    "mixins.adaln_layer.query_layernorm_list.{i}.{p}": "transformer_blocks.{i}.attn1.norm_q.{p}",
    "mixins.adaln_layer.key_layernorm_list.{i}.{p}": "transformer_blocks.{i}.attn1.norm_k.{p}",
}
_QKV = "transformer.layers.{i}.attention.query_key_value.{p}"
_ADALN = "mixins.adaln_layer.adaLN_modulations.{i}.1.{p}"


def _rx(template: str) -> re.Pattern:
    t = re.escape(template).replace(r"\{p\}", r"(?P<p>weight|bias)").replace(r"\{i\}", r"(?P<i>\d+)")
    return re.compile(t + "$")


_FWD = [(_rx(s), d) for s, d in {**_TOP, **_BLOCK}.items()]
_BWD = [(_rx(d), s) for s, d in {**_TOP, **_BLOCK}.items()]
_QKV_RX, _ADALN_RX = _rx(_QKV), _rx(_ADALN)
_SPLIT_RX = re.compile(r"transformer_blocks\.(?P<i>\d+)\.(?:attn1\.to_(?P<qkv>[qkv])|(?P<norm>norm[12])\.linear)"
                       r"\.(?P<p>weight|bias)$")


class UnknownKeysError(KeyError):
    """Keys no rule knows (or a split key whose partners are missing); loaders turn it into a user error."""

    def __init__(self, keys: list[str]):
        self.keys = keys
        super().__init__(f"{len(keys)} unknown key(s), e.g. {keys[:5]}")


def strip_sat_prefix(sd: Mapping) -> dict:
    """Drop ``model.diffusion_model.`` (every key of a SAT DiT carries it); refuses a mix of prefixed and bare keys."""
    keys = list(sd)
    if keys and all(k.startswith(SAT_PREFIX) for k in keys):
        return {k[len(SAT_PREFIX):]: v for k, v in sd.items()}
    stray = [k for k in keys if k.startswith(SAT_PREFIX)]
    if stray:
        raise UnknownKeysError([k for k in keys if not k.startswith(SAT_PREFIX)])
    return dict(sd)


def _fill(template: str, m: re.Match) -> str:
    return template.format(**{k: v for k, v in m.groupdict().items() if v is not None})


def sat_to_diffusers(sd: Mapping) -> dict:
    """Whole SAT DiT state dict (prefixed or not) → diffusers names. Raises :class:`UnknownKeysError`."""
    import torch

    out, unknown = {}, []
    for k, v in strip_sat_prefix(sd).items():
        if k in IGNORED_SAT_KEYS:
            continue
        m = _QKV_RX.match(k)
        if m:
            if v.shape[0] % 3:
                unknown.append(k)
                continue
            for name, part in zip("qkv", torch.chunk(v, 3, dim=0)):
                out[f"transformer_blocks.{m['i']}.attn1.to_{name}.{m['p']}"] = part.contiguous()
            continue
        m = _ADALN_RX.match(k)
        if m:
            if v.shape[0] % 12:
                unknown.append(k)
                continue
            c = torch.chunk(v, 12, dim=0)
            out[f"transformer_blocks.{m['i']}.norm1.linear.{m['p']}"] = torch.cat(c[0:3] + c[6:9]).contiguous()
            out[f"transformer_blocks.{m['i']}.norm2.linear.{m['p']}"] = torch.cat(c[3:6] + c[9:12]).contiguous()
            continue
        for rx, template in _FWD:
            m = rx.match(k)
            if m:
                out[_fill(template, m)] = v
                break
        else:
            unknown.append(k)
    if unknown:
        raise UnknownKeysError(unknown)
    return out


def diffusers_to_sat(sd: Mapping, prefix: bool = True) -> dict:
    """diffusers names → SAT names (the inverse; used by the converter's ``--names sat`` and the test fixture)."""
    import torch

    out, unknown, parts = {}, [], {}
    for k, v in sd.items():
        m = _SPLIT_RX.match(k)
        if m:
            parts.setdefault((m["i"], m["p"], "qkv" if m["qkv"] else "adaln"), {})[m["qkv"] or m["norm"]] = v
            continue
        for rx, template in _BWD:
            m = rx.match(k)
            if m:
                out[_fill(template, m)] = v
                break
        else:
            unknown.append(k)
    for (i, p, kind), d in parts.items():
        if kind == "qkv":
            if set(d) != {"q", "k", "v"}:
                unknown += [f"transformer_blocks.{i}.attn1.to_{n}.{p}" for n in d]
                continue
            out[_QKV.format(i=i, p=p)] = torch.cat([d["q"], d["k"], d["v"]])
        else:
            if set(d) != {"norm1", "norm2"}:
                unknown += [f"transformer_blocks.{i}.{n}.linear.{p}" for n in d]
                continue
            a, b = torch.chunk(d["norm1"], 6), torch.chunk(d["norm2"], 6)
            out[_ADALN.format(i=i, p=p)] = torch.cat(a[0:3] + b[0:3] + a[3:6] + b[3:6])
    if unknown:
        raise UnknownKeysError(sorted(unknown))
    return {(SAT_PREFIX + k if prefix else k): v for k, v in out.items()}


def detect_names(keys) -> str:
    """``sat`` or ``diffusers`` (a CogVideoX DiT) from the key names; ``unknown`` otherwise."""
    ks = {k.removeprefix(SAT_PREFIX) for k in keys}
    if "transformer.layers.0.attention.query_key_value.weight" in ks or "mixins.patch_embed.proj.weight" in ks:
        return "sat"
    if "transformer_blocks.0.attn1.to_q.weight" in ks and "patch_embed.proj.weight" in ks:
        return "diffusers"
    return "unknown"
