"""LoRA files → one patch per layer of the diffusers transformer, in whichever key format the file uses.

Formats in use for the pack's backbones, and who converts them:

* **ComfyUI / original Wan names** (``diffusion_model.blocks.0.self_attn.q.lora_down.weight`` + ``.alpha``; the
  lightx2v step-distill and CausVid releases add ``.diff_b`` bias deltas, ``.diff`` full weight deltas on norms and
  the head, and ``blocks.N.diff_m`` modulation deltas). The LoRA pairs of the layers diffusers knows (attention
  q/k/v/o, I2V k_img/v_img, FFN, time projection, head, text/time embedders, image embedder), their alphas and their
  ``diff_b`` go through diffusers' own ``WanLoraLoaderMixin.lora_state_dict`` (which calls
  ``_convert_non_diffusers_wan_lora_to_diffusers`` and folds ``alpha / rank`` into the matrices). **Written here**,
  because that converter drops them (norm ``.diff``/``.diff_b`` "unsupported", other ``.diff`` keys logged and
  ignored, ``diff_m`` refused, ``time_projection`` deltas without a weight pair dropped): every ``.diff``,
  ``.diff_m`` and stand-alone ``.diff_b``, mapped to diffusers names with the pack's checkpoint key map
  (:mod:`idvideo_core.backbones.wan.keys`).
* **kohya / musubi-tuner** (``lora_unet_blocks_0_self_attn_q.lora_down.weight``): diffusers'
  ``_convert_musubi_wan_lora_to_diffusers`` (through the same ``lora_state_dict``) when the file has every block's
  q/k/v/o/FFN pair with alphas, which is all it accepts; otherwise (partial LoRAs, other layers) the underscored
  names are matched here against the model's own layer names, as ComfyUI does, and converted as above.
* **diffusers / PEFT** (``transformer.blocks.0.attn1.to_q.lora_A.weight``, ``lora_B.bias``; CogVideoX / ConsisID
  LoRAs are published this way): used as is; older diffusers names (``.lora.down.weight``,
  ``lora_linear_layer.down``) through diffusers' ``convert_unet_state_dict_to_peft``. The scale is PEFT's
  ``lora_alpha / r`` (``alpha_pattern`` / ``rank_pattern`` / ``use_rslora`` from the file's
  ``lora_adapter_metadata``, as diffusers' ``load_lora_adapter`` builds its ``LoraConfig``); no metadata means
  alpha = rank (scale 1), diffusers' convention.
* **kohya names of diffusers layers** (``lora_unet_transformer_blocks_0_attn1_to_q.lora_down.weight`` + ``.alpha``,
  what CogVideoX trainers in the kohya family write): matched here against the model's layer names.

Not supported (reported by name, never dropped silently): DoRA magnitudes (``dora_scale``,
``lora_magnitude_vector``), LoCon/LoHa/LoKr tensors, keys naming layers the model does not have.
"""
from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

log = logging.getLogger("idvideo")

# Outer prefixes that say nothing about the naming scheme.
_OUTER = ("base_model.model.", "model.diffusion_model.")
# Suffix → (kind, param). ``param`` is the original-side parameter a delta applies to.
_SUFFIXES = (
    (".lora_down.weight", "down"), (".lora_A.weight", "down"), (".lora_A.default.weight", "down"),
    (".lora_up.weight", "up"), (".lora_B.weight", "up"), (".lora_B.default.weight", "up"),
    (".lora_B.bias", "bias"), (".alpha", "alpha"),
    (".diff_b", "diff_b"), (".diff_m", "diff_m"), (".diff", "diff"),
)
_UNSUPPORTED = ("dora_scale", "lora_magnitude_vector", "lora_mid", "hada_", "lokr_")
_OLD_DIFFUSERS = (".lora.down.weight", ".lora.up.weight", ".lora_linear_layer.down.weight",
                  ".lora_linear_layer.up.weight")

# Original Wan layers whose LoRA pairs diffusers' Wan converter handles (everything else is converted here).
_DIFFUSERS_WAN_PAIRS = re.compile(
    r"^(blocks\.\d+\.(self_attn|cross_attn)\.(q|k|v|o|k_img|v_img)|blocks\.\d+\.ffn\.(0|2)|time_projection\.1"
    r"|head\.head|(text|time)_embedding\.(0|2)|img_emb\.proj\.(1|3))$")


@dataclass
class LayerPatch:
    """What one LoRA file does to one layer (diffusers name, relative to the transformer's diffusers root).

    ``weight delta = scale · up @ down`` (reshaped to the weight) ``+ deltas['weight']``; other entries of ``deltas``
    are added to the layer's other parameters (``bias``, ``scale_shift_table``).
    """

    module: str
    down: torch.Tensor | None = None
    up: torch.Tensor | None = None
    scale: float = 1.0
    deltas: dict = field(default_factory=dict)


@dataclass
class ConvertedLora:
    name: str
    format: str
    patches: dict                                     # module name → LayerPatch
    unknown: list = field(default_factory=list)       # source keys not applied, by name (with the reason)
    via_diffusers: int = 0                            # source keys converted by diffusers' own converter

    def summary(self) -> str:
        s = (f"LoRA '{self.name}' ({self.format}): {len(self.patches)} layers patched"
             f" ({self.via_diffusers} keys converted by diffusers)")
        if self.unknown:
            s += f"; {len(self.unknown)} keys NOT applied: " + ", ".join(self.unknown)
        return s


# --------------------------------------------------------------------------------------------- name tables
def _is_wan(root: nn.Module) -> bool:
    return type(root).__name__ == "WanTransformer3DModel"


def _diffusers_mixin(root: nn.Module):
    """diffusers' LoRA loader mixin for the root's class (its ``lora_state_dict`` holds the format converters)."""
    from diffusers.loaders import lora_pipeline as lp

    name = type(root).__name__
    if name == "WanTransformer3DModel":
        return lp.WanLoraLoaderMixin
    if name in ("CogVideoXTransformer3DModel", "ConsisIDTransformer3DModel"):
        return lp.CogVideoXLoraLoaderMixin
    return None


class _Names:
    """Every name a LoRA file may use for a layer of ``root``, resolved to (diffusers module, {param: diffusers
    param}). Diffusers names and their kohya-underscored forms always; for Wan also the original checkpoint names."""

    def __init__(self, root: nn.Module):
        self.params = dict(root.named_parameters())
        self.params.update(dict(root.named_buffers()))
        self.modules = dict(root.named_modules())
        self.alias: dict[str, str] = {}          # alias → canonical (diffusers module name)
        self.orig_param: dict[str, str] = {}     # original param key → diffusers param key (Wan)
        for name in self.modules:
            if name:
                self.alias.setdefault(name, name)
                self.alias.setdefault(name.replace(".", "_"), name)
        self.original: dict[str, str] = {}       # original module path → diffusers module path (Wan)
        if _is_wan(root):
            from ..backbones.wan.keys import diffusers_to_original_key

            for key in self.params:
                orig = diffusers_to_original_key(key)
                if orig is None:
                    continue
                self.orig_param[orig] = key
                o_mod, _, o_par = orig.rpartition(".")
                d_mod, _, _ = key.rpartition(".")
                if o_par in ("weight", "bias") and o_mod:
                    self.original[o_mod] = d_mod
                elif o_par == "modulation":     # blocks.N.modulation / head.modulation: the owner is the block
                    self.original.setdefault(o_mod, d_mod or "")
        self.original_kohya = {o.replace(".", "_"): o for o in self.original}

    def resolve(self, scheme: str, layer: str) -> tuple[str | None, str | None]:
        """(diffusers module, original module or None) for a layer name as written in a file of ``scheme``.
        Original-named files (``diffusion_model.``, ``lora_unet_``) look up original names first: ``blocks.N.norm3``
        is the cross-attention norm there (diffusers ``norm2``), while diffusers' own ``norm3`` has no weights."""
        original = layer if layer in self.original else self.original_kohya.get(layer)
        own = self.alias.get(layer)
        if scheme in ("original", "kohya") or own is None:
            if original is not None:
                return self.original[original], original
            return own, None
        return own, None

    def delta_param(self, canonical: str, original_module: str | None, kind: str) -> str | None:
        """Diffusers parameter key a ``diff`` / ``diff_b`` / ``diff_m`` delta goes to."""
        if kind == "diff_m":
            if original_module is not None and f"{original_module}.modulation" in self.orig_param:
                return self.orig_param[f"{original_module}.modulation"]
            key = f"{canonical}.scale_shift_table" if canonical else "scale_shift_table"
            return key if key in self.params else None
        par = "weight" if kind == "diff" else "bias"
        if original_module is not None and f"{original_module}.{par}" in self.orig_param:
            return self.orig_param[f"{original_module}.{par}"]
        key = f"{canonical}.{par}"
        return key if key in self.params else None


def _split(key: str) -> tuple[str, str | None]:
    for suffix, kind in _SUFFIXES:
        if key.endswith(suffix):
            return key[: -len(suffix)], kind
    return key, None


def _strip(key: str) -> tuple[str, str]:
    """(scheme, bare layer key): scheme is ``original`` (diffusion_model.), ``kohya`` (lora_unet_),
    ``diffusers`` (transformer.) or ``bare``."""
    for pre in _OUTER:
        if key.startswith(pre):
            key = "diffusion_model." + key[len(pre):] if pre == "model.diffusion_model." else key[len(pre):]
    for pre, scheme in (("diffusion_model.", "original"), ("lora_unet_", "kohya"), ("lora_transformer_", "kohya"),
                        ("transformer.", "diffusers")):
        if key.startswith(pre):
            return scheme, key[len(pre):]
    return "bare", key


# ------------------------------------------------------------------------------------------------ convert
def read_metadata(path) -> dict | None:
    """diffusers' ``lora_adapter_metadata`` (a LoraConfig as JSON) from a safetensors header, if present."""
    import json

    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception:  # noqa: BLE001 - not a safetensors file: no metadata
        return None
    raw = meta.get("lora_adapter_metadata")
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return {k.removeprefix("transformer."): v for k, v in data.items()}


def _peft_scale(module: str, rank: int, metadata: dict | None) -> float:
    """PEFT's scaling for one layer: lora_alpha / r (alpha / sqrt(r) with rsLoRA), patterns matched on the name's
    tail as PEFT does. No metadata: alpha = rank (diffusers' convention), i.e. 1."""
    if not metadata:
        return 1.0

    def pick(pattern: dict, default):
        for key, val in (pattern or {}).items():
            if re.fullmatch(rf"(.*\.)?{key}", module):
                return val
        return default

    alpha = float(pick(metadata.get("alpha_pattern"), metadata.get("lora_alpha", rank)))
    return alpha / math.sqrt(rank) if metadata.get("use_rslora") else alpha / rank


def convert_lora(state_dict: Mapping[str, torch.Tensor], root: nn.Module, name: str = "lora",
                 metadata: dict | None = None) -> ConvertedLora:
    """Turn a LoRA state dict into per-layer patches for ``root`` (a diffusers transformer). Never raises for
    unknown keys: they are listed in ``ConvertedLora.unknown``."""
    names = _Names(root)
    unknown: list[str] = []
    sd: dict[str, torch.Tensor] = {}
    for k, v in state_dict.items():
        if any(tag in k for tag in _UNSUPPORTED):
            unknown.append(f"{k} (DoRA/LoCon/LoHa/LoKr tensors are not supported)")
        else:
            sd[k] = v
    if any(k.endswith(_OLD_DIFFUSERS) for k in sd):
        from diffusers.utils import convert_unet_state_dict_to_peft

        sd = convert_unet_state_dict_to_peft(sd)

    # Group by (scheme, layer alias).
    groups: dict[tuple[str, str], dict[str, tuple[str, torch.Tensor]]] = {}
    schemes = set()
    for k, v in sd.items():
        scheme, bare = _strip(k)
        layer, kind = _split(bare)
        if kind is None:
            unknown.append(f"{k} (not a LoRA tensor name)")
            continue
        schemes.add(scheme)
        groups.setdefault((scheme, layer), {})[kind] = (k, v)

    patches: dict[str, LayerPatch] = {}
    via = 0
    # 1) Wan original / kohya names: the pairs diffusers converts go through diffusers.
    mixin = _diffusers_mixin(root)
    if _is_wan(root) and mixin is not None:
        via += _wan_through_diffusers(groups, names, mixin, patches, unknown)

    # 2) Everything left: resolved here against the model's own names.
    for (scheme, layer), parts in groups.items():
        canonical, original = names.resolve(scheme, layer)
        if canonical is None:
            for kind, (k, _) in parts.items():
                unknown.append(f"{k} (no layer '{layer}' in this model)")
            continue
        _add_parts(patches, canonical, original, parts, names, metadata, unknown)

    fmt = {"original": "ComfyUI / original Wan names", "kohya": "kohya (lora_unet_)",
           "diffusers": "diffusers / PEFT", "bare": "PEFT / bare layer names"}
    label = " + ".join(sorted(fmt[s] for s in schemes)) or "empty"
    return ConvertedLora(name, label, patches, unknown, via)


def _patch(patches: dict, module: str) -> LayerPatch:
    return patches.setdefault(module, LayerPatch(module))


def _add_parts(patches, canonical: str, original: str | None, parts: dict, names: _Names, metadata, unknown):
    down, up = parts.get("down"), parts.get("up")
    if (down is None) != (up is None):
        k = (down or up)[0]
        unknown.append(f"{k} (its {'up' if up is None else 'down'} matrix is missing)")
    elif down is not None:
        d, u = down[1], up[1]
        rank = d.shape[0]
        if "alpha" in parts:
            scale = float(parts["alpha"][1]) / rank
        else:
            scale = _peft_scale(canonical, rank, metadata)
        p = _patch(patches, canonical)
        if p.down is not None:
            unknown.append(f"{down[0]} (a second LoRA pair for layer '{canonical}' in the same file)")
        else:
            p.down, p.up, p.scale = d, u, scale
    elif "alpha" in parts:
        unknown.append(f"{parts['alpha'][0]} (an alpha without its LoRA pair)")
    for kind in ("bias", "diff", "diff_b", "diff_m"):
        if kind not in parts:
            continue
        k, v = parts[kind]
        target = (f"{canonical}.bias" if kind == "bias" and f"{canonical}.bias" in names.params
                  else names.delta_param(canonical, original, "diff_b" if kind == "bias" else kind))
        if target is None:
            unknown.append(f"{k} (layer '{canonical}' has no parameter for it)")
            continue
        # up-bias of a PEFT pair is scaled like the pair (PEFT multiplies lora_B's output, bias included)
        scale = 1.0
        if kind == "bias" and up is not None:
            scale = _patch(patches, canonical).scale
        p = _patch(patches, canonical)
        par = target[len(canonical) + 1:] if canonical else target
        prev = p.deltas.get(par)
        val = v.float() * scale
        p.deltas[par] = val if prev is None else prev + val


def _cloned(sd: dict) -> dict:
    """diffusers' Wan converter scales some input tensors in place (``converted[k] *= scale_down`` on the tensor it
    was given): it gets copies, so the caller's state dict (and a second conversion of it) stays intact."""
    return {k: v.clone() for k, v in sd.items()}


def _wan_through_diffusers(groups: dict, names: _Names, mixin, patches: dict, unknown: list) -> int:
    """Send the LoRA pairs diffusers' Wan converter handles through ``mixin.lora_state_dict``; remove them from
    ``groups``. Returns the number of source keys converted there."""
    chosen: dict[tuple[str, str], dict] = {}
    for (scheme, layer), parts in groups.items():
        if scheme not in ("original", "kohya", "bare") or "down" not in parts or "up" not in parts:
            continue
        _, orig = names.resolve(scheme, layer)
        if orig is None or not _DIFFUSERS_WAN_PAIRS.match(orig) or orig not in names.original:
            continue
        chosen[(scheme, layer)] = {"orig": orig, "parts": parts}
    if not chosen:
        return 0
    # Kohya files: diffusers' musubi converter only accepts complete files; try it, else rename to dotted names.
    sub: dict[str, torch.Tensor] = {}
    kohya_whole = all(s == "kohya" for s, _ in chosen) and all(s == "kohya" for s, _ in groups)
    for (scheme, layer), item in chosen.items():
        for kind, (k, v) in item["parts"].items():
            if kind not in ("down", "up", "alpha", "diff_b"):
                continue
            if kind == "diff_b" and scheme == "kohya":
                continue       # musubi's converter takes no bias deltas; applied here
            suffix = {"down": "lora_down.weight", "up": "lora_up.weight", "alpha": "alpha", "diff_b": "diff_b"}[kind]
            if kohya_whole:
                sub[f"lora_unet_{layer}.{suffix}"] = v
            else:
                sub[f"diffusion_model.{item['orig']}.{suffix}"] = v
    converted = None
    if kohya_whole:
        try:
            converted = mixin.lora_state_dict(_cloned(sub))
        except (KeyError, ValueError, IndexError):
            converted = None
            sub = {}
            for (scheme, layer), item in chosen.items():
                for kind, (k, v) in item["parts"].items():
                    if kind in ("down", "up", "alpha"):
                        suffix = {"down": "lora_down.weight", "up": "lora_up.weight", "alpha": "alpha"}[kind]
                        sub[f"diffusion_model.{item['orig']}.{suffix}"] = v
    if converted is None:
        try:
            converted = mixin.lora_state_dict(_cloned(sub))
        except (KeyError, ValueError, IndexError) as exc:      # e.g. a file with no block layers
            log.debug("IDVideo: diffusers' Wan LoRA converter refused this subset (%s); converting here.", exc)
            return 0
    used = 0
    for (scheme, layer), item in chosen.items():
        target = names.original[item["orig"]]
        a = converted.get(f"transformer.{target}.lora_A.weight")
        b = converted.get(f"transformer.{target}.lora_B.weight")
        if a is None or b is None or target not in names.modules:
            continue       # left in ``groups``: resolved (or reported) by the generic path
        p = _patch(patches, target)
        p.down, p.up, p.scale = a, b, 1.0           # diffusers folded alpha / rank into the matrices
        bias = converted.get(f"transformer.{target}.lora_B.bias")
        if bias is not None:
            p.deltas["bias"] = bias.float()
        parts = item["parts"]
        for kind in ("down", "up", "alpha") + (("diff_b",) if bias is not None else ()):
            if kind in parts:
                used += 1
                del parts[kind]
    for key in [k for k, parts in groups.items() if not parts]:
        del groups[key]
    return used
