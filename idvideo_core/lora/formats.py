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

Which of these apply to a model is declared by its family's spec (``BackboneSpec.lora``, a :class:`LoraSupport`):
the diffusers mixin, where the diffusers model sits in the pack's transformer, the original checkpoint names.

Not supported (reported by name, never dropped silently): DoRA magnitudes (``dora_scale``,
``lora_magnitude_vector``), LoCon/LoHa/LoKr tensors, keys naming layers the model does not have.
"""
from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping
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
    root_path: str = ""                               # where the patched model sits in the pack's transformer

    def summary(self) -> str:
        s = (f"LoRA '{self.name}' ({self.format}): {len(self.patches)} layers patched"
             f" ({self.via_diffusers} keys converted by diffusers)")
        if self.unknown:
            s += f"; {len(self.unknown)} keys NOT applied: " + ", ".join(self.unknown)
        return s


# --------------------------------------------------------------------------------------------- name tables
@dataclass(frozen=True)
class LoraSupport:
    """How a backbone family's LoRA files are read; each family's spec declares one (``BackboneSpec.lora``).

    ``diffusers_mixin``: the class in ``diffusers.loaders.lora_pipeline`` whose ``lora_state_dict`` converts this
    model's LoRA formats. ``root_path``: attribute path from the pack's transformer to the diffusers model the LoRA
    names refer to (Wan: ``base``, inside ``WanDiT``). ``original_key``: diffusers parameter key → the original
    checkpoint's key (files written with the original names, e.g. ComfyUI's Wan LoRAs), or None.
    ``diffusers_pairs``: regex of the original layer names whose LoRA pairs diffusers' converter handles (the rest is
    converted here), or None when only diffusers names exist.
    """

    diffusers_mixin: str
    root_path: str = ""
    original_key: Callable | None = None
    diffusers_pairs: str | None = None

    def root(self, transformer: nn.Module) -> nn.Module:
        return transformer.get_submodule(self.root_path) if self.root_path else transformer

    def mixin(self):
        from diffusers.loaders import lora_pipeline

        return getattr(lora_pipeline, self.diffusers_mixin)


class _Names:
    """Every name a LoRA file may use for a layer of ``root``, resolved to (diffusers module, {param: diffusers
    param}). Diffusers names and their kohya-underscored forms always; with ``original_key`` (Wan: keys.py) also the
    original checkpoint names."""

    def __init__(self, root: nn.Module, original_key: Callable | None = None):
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
        if original_key is not None:
            for key in self.params:
                orig = original_key(key)
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
                 metadata: dict | None = None, support: LoraSupport | None = None) -> ConvertedLora:
    """Turn a LoRA state dict into per-layer patches for ``root`` (a diffusers transformer) as the family's
    ``support`` says (None: diffusers / kohya names of ``root``'s own layers only). Never raises for unknown keys:
    they are listed in ``ConvertedLora.unknown``."""
    names = _Names(root, support.original_key if support is not None else None)
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
    # 1) Original / kohya names (Wan): the pairs diffusers converts go through diffusers.
    if support is not None and support.diffusers_pairs and support.original_key is not None:
        via += _pairs_through_diffusers(groups, names, support, patches)

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
    return ConvertedLora(name, label, patches, unknown, via,
                         support.root_path if support is not None else "")


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


def _pairs_through_diffusers(groups: dict, names: _Names, support: LoraSupport, patches: dict) -> int:
    """Send the LoRA pairs diffusers' converter handles (original names, e.g. Wan's) through the family's
    ``mixin.lora_state_dict``; remove them from ``groups``. Returns the number of source keys converted there."""
    mixin = support.mixin()
    handled = re.compile(support.diffusers_pairs)
    chosen: dict[tuple[str, str], dict] = {}
    for (scheme, layer), parts in groups.items():
        if scheme not in ("original", "kohya", "bare") or "down" not in parts or "up" not in parts:
            continue
        _, orig = names.resolve(scheme, layer)
        if orig is None or not handled.fullmatch(orig) or orig not in names.original:
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
