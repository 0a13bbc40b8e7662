"""Load Wan2.1 components from the diffusers folder or ComfyUI single files; the format is read from the keys.

Layouts:
* diffusers folder (``Wan2.1-T2V-1.3B-Diffusers``): ``transformer/``, ``vae/``, ``text_encoder/`` (UMT5),
  ``tokenizer/``, ``scheduler/``.
* ComfyUI single files: a DiT with ORIGINAL Wan keys (optionally ``model.diffusion_model.``-prefixed), the original
  Wan VAE (``wan_2.1_vae.safetensors``), UMT5 in HF T5 names carrying its sentencepiece model as ``spiece_model``.
* DiT overrides: Concat-ID-Wan ``first_stage.pt`` / ``second_stage_adaln.pt`` and ``Phantom-Wan-1.3B.pth``
  (pickles, loaded ``weights_only``), or any of them converted to safetensors (original or diffusers names).
* Phantom-Wan-14B as published: ``Phantom_Wan_14B-0000N-of-00006.safetensors`` + ``Phantom_Wan_14B.safetensors
  .index.json`` (original Wan keys, no prefix; the official ``subject2video.py`` reads the index's ``weight_map``),
  given as the index, the folder or any shard.
* The DiT files creators have: bf16, fp16, ``fp8_e4m3fn`` (block weights stored fp8, no scales) and "fp8 scaled"
  (``<layer>.scale_weight`` float32 per tensor, optional ``<layer>.scale_input``, a ``scaled_fp8`` marker tensor —
  ComfyUI's convention: weight = fp8 · scale_weight).

DiT weights stream: the model is built on the meta device from the config inferred from the tensor shapes (the head
size is 128 in every Wan2.1 model; dim, heads, layers, FFN, channels and text width are read from the tensors, never
from names), then each tensor is read from its file (safetensors ``safe_open``), converted and assigned before the
next is read, so memory never holds a second full copy of the model. fp8 weights stay fp8 where asked
(:class:`~idvideo_core.memory.fp8.Fp8Linear`), else are dequantised one tensor at a time.
"""
from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from ... import paths
from ...errors import CorruptFileError, MissingModelError, WrongModelError
from ...safeload import load_weights, read_json
from . import keys as K
from .transformer import ConcatIdAdaLN, WanDiT

log = logging.getLogger("idvideo")
PUBLISHED_WAN = paths.PUBLISHED["wan"]
WAN_HEAD_DIM = 128
# diffusers keeps these sub-modules in fp32 when loading in half precision (``_keep_in_fp32_modules``).
_FP32_PARTS = ("rope", "time_embedder", "scale_shift_table", "norm1", "norm2", "norm3", "ref_scale_shift_table")


# ------------------------------------------------------------------------------------------------- transformer
def infer_transformer_config(sd: dict) -> dict:
    """``WanTransformer3DModel`` kwargs from a diffusers-named state dict."""
    try:
        pw = sd["patch_embedding.weight"]
        inner = pw.shape[0]
        patch = tuple(int(s) for s in pw.shape[2:])
        layers = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
        cfg = dict(
            patch_size=patch, num_attention_heads=inner // WAN_HEAD_DIM, attention_head_dim=WAN_HEAD_DIM,
            in_channels=int(pw.shape[1]),
            out_channels=int(sd["proj_out.weight"].shape[0]) // math.prod(patch),
            text_dim=int(sd["condition_embedder.text_embedder.linear_1.weight"].shape[1]),
            freq_dim=int(sd["condition_embedder.time_embedder.linear_1.weight"].shape[1]),
            ffn_dim=int(sd["blocks.0.ffn.net.0.proj.weight"].shape[0]), num_layers=layers,
            cross_attn_norm="blocks.0.norm2.weight" in sd, qk_norm="rms_norm_across_heads", eps=1e-6,
            rope_max_seq_len=1024)
    except (KeyError, ValueError) as exc:
        raise WrongModelError(f"The state dict is not a Wan2.1 DiT (missing {exc}).",
                              "Pick a Wan2.1 diffusion model file (original or diffusers key names).") from exc
    if inner % WAN_HEAD_DIM:
        raise WrongModelError(f"Hidden size {inner} is not a multiple of 128; not a Wan2.1 DiT.",
                              "Pick a Wan2.1 diffusion model file.")
    if "condition_embedder.image_embedder.norm1.weight" in sd:
        cfg["image_dim"] = int(sd["condition_embedder.image_embedder.norm1.weight"].shape[0])
        cfg["added_kv_proj_dim"] = inner
    return cfg


# ------------------------------------------------------------------------------------- streamed tensor sources
FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)
_ST_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
              "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2, "I64": torch.int64, "I32": torch.int32,
              "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}
_SHARD_RE = re.compile(r"^(?P<base>.+)-(?P<i>\d{5})-of-(?P<n>\d{5})\.safetensors$")


class _Shape:
    """Stands in for a tensor where only the shape is read (config inference from headers)."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype):
        self.shape, self.dtype = torch.Size(shape), dtype


class TensorSource:
    """The tensors of one checkpoint, read one at a time: a single safetensors file, the shards of an index
    (``Phantom_Wan_14B.safetensors.index.json`` + ``Phantom_Wan_14B-0000N-of-00006.safetensors``), or an in-memory
    state dict (pickles). Names, shapes and dtypes come from the headers; no tensor is read until :meth:`get`."""

    def __init__(self, headers: dict[str, _Shape], where: dict[str, Path] | None = None,
                 memory: dict | None = None, label: str | Path = "state dict"):
        self.headers, self.where, self.memory, self.label = headers, where or {}, memory, label
        self._handles: dict[Path, object] = {}

    @classmethod
    def from_state_dict(cls, sd: dict, label: str | Path = "state dict") -> "TensorSource":
        heads = {k: _Shape(v.shape, v.dtype) for k, v in sd.items() if isinstance(v, torch.Tensor)}
        return cls(heads, memory=sd, label=label)

    @classmethod
    def from_files(cls, files: list[Path], label: str | Path) -> "TensorSource":
        heads, where = {}, {}
        for f in files:
            for k, (shape, dtype) in _safetensors_header(f).items():
                heads[k], where[k] = _Shape(shape, dtype), f
        return cls(heads, where, label=label)

    def keys(self):
        return self.headers.keys()

    def get(self, key: str) -> torch.Tensor:
        if self.memory is not None:
            return self.memory[key]
        f = self.where[key]
        h = self._handles.get(f)
        if h is None:
            from safetensors import safe_open

            try:
                h = self._handles[f] = safe_open(str(f), framework="pt", device="cpu")
            except (OSError, ValueError, RuntimeError) as exc:
                raise CorruptFileError(f, f"{type(exc).__name__}: {exc}", PUBLISHED_WAN) from exc
        try:
            return h.get_tensor(key)
        except (OSError, ValueError, RuntimeError) as exc:
            raise CorruptFileError(f, f"reading '{key}' failed ({exc})", PUBLISHED_WAN) from exc

    def close(self) -> None:
        self._handles.clear()


def _safetensors_header(path: Path) -> dict[str, tuple[tuple, torch.dtype]]:
    from ...safeload import check_safetensors_file

    check_safetensors_file(path, PUBLISHED_WAN)            # a truncated shard fails here, naming the file
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(n))
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        dt = _ST_DTYPES.get(v.get("dtype"))
        if dt is None:
            raise CorruptFileError(path, f"tensor '{k}' has the unsupported dtype {v.get('dtype')}", PUBLISHED_WAN)
        out[k] = (tuple(v["shape"]), dt)
    return out


def shard_files(path: Path) -> Optional[list[Path]]:
    """The shard list when ``path`` is an index, a folder holding one index, or one shard of a sharded checkpoint
    (the index beside it is used, else the sibling shards ``<base>-0000N-of-0000M``); None for a plain file."""
    index = None
    if path.is_dir():
        found = sorted(path.glob("*.safetensors.index.json"))
        if len(found) > 1:
            raise WrongModelError(f"{path} holds several checkpoint indexes: {', '.join(f.name for f in found)}.",
                                  "Pick the index file (or one shard) of the checkpoint you mean.")
        index = found[0] if found else None
        if index is None:
            return None
    elif path.name.endswith(".safetensors.index.json"):
        index = path
    else:
        m = _SHARD_RE.match(path.name)
        if not m:
            return None
        beside = path.with_name(m["base"] + ".safetensors.index.json")
        if beside.is_file():
            index = beside
        else:
            n = int(m["n"])
            shards = [path.with_name(f"{m['base']}-{i:05d}-of-{n:05d}.safetensors") for i in range(1, n + 1)]
            missing = [s for s in shards if not s.is_file()]
            if missing:
                raise MissingModelError(f"{len(missing)} shard(s) of {m['base']}", missing, paths.PUBLISHED["phantom"])
            return shards
    data = read_json(index)
    names = sorted(set((data.get("weight_map") or {}).values()))
    if not names:
        raise CorruptFileError(index, "its weight_map lists no shards", paths.PUBLISHED["phantom"])
    shards = [index.parent / n for n in names]
    missing = [s for s in shards if not s.is_file()]
    if missing:
        raise MissingModelError(f"{len(missing)} shard(s) listed in {index.name}", missing,
                                paths.PUBLISHED["phantom"])
    return shards


def open_dit_source(path: str | Path) -> TensorSource:
    """A :class:`TensorSource` for a DiT checkpoint file, shard, index, or folder with an index.

    Every Wan DiT load passes here, so this is where another family's checkpoint is refused by name (from the
    folder's ``config.json`` class, else from the keys) before any shape is read."""
    path = Path(path)
    _refuse_other_family_folder(path)
    shards = shard_files(path)
    if shards is not None:
        src = TensorSource.from_files(shards, path)
    elif not path.is_file():
        raise MissingModelError(f"the Wan DiT file {path.name}", [path], PUBLISHED_WAN)
    elif path.suffix == ".safetensors":
        src = TensorSource.from_files([path], path)
    else:
        src = TensorSource.from_state_dict(load_weights(path, published=PUBLISHED_WAN), path)
    _refuse_other_family_keys(src, path)
    return src


def _refuse_other_family_folder(path: Path) -> None:
    folder = path if path.is_dir() else path.parent
    cfg = folder / "config.json"
    if not cfg.is_file():
        return
    cls = read_json(cfg).get("_class_name", "")
    if cls and not cls.startswith("Wan"):
        raise WrongModelError(f"{folder} holds a {cls} transformer, not Wan2.1.",
                              "Pick a Wan2.1-T2V-1.3B-Diffusers folder or a Wan2.1 / Concat-ID / Phantom DiT file.")


def _refuse_other_family_keys(src: TensorSource, source) -> None:
    from ..detect import family_from_keys

    other = family_from_keys(src.keys())
    if other in ("consisid", "cogvideox"):
        src.close()
        raise WrongModelError(f"{source} is a {'ConsisID' if other == 'consisid' else 'CogVideoX'} checkpoint "
                              "(detected from its keys), not a Wan2.1 DiT.",
                              "Load ConsisID models with 'IDVideo ConsisID Model Loader' (the whole diffusers "
                              "folder under models/consisid); pick a Wan2.1 / Concat-ID / Phantom DiT here.")


# ------------------------------------------------------------------------------------- fp8 files and storage
WEIGHT_STORAGES = ("default", "fp8_e4m3", "auto")
_MARKERS = ("scaled_fp8",)                      # ComfyUI: a marker tensor in "fp8 scaled" files


@dataclass
class DitLoadReport:
    """What the streamed loader found and did (printed with the memory plan)."""

    source: str
    file_format: str = "bf16"                  # bf16 | fp16 | fp32 | fp8_e4m3fn | fp8_e4m3fn_scaled | mixed
    storage: str = "default"
    config: dict = field(default_factory=dict)
    fp8_layers: int = 0                        # Linear layers kept in fp8
    upcast: int = 0                            # fp8 tensors upcast once at load (norms, embeddings, head…)
    quantised: int = 0                         # float Linear weights quantised to fp8 at load
    input_scales: int = 0
    bytes_loaded: int = 0
    peak_tensor_bytes: int = 0                 # the largest single tensor read (the transient cost of streaming)
    plan: str = ""

    def describe(self) -> str:
        c = self.config
        head = (f"IDVideo Wan DiT: {self.source} — file {self.file_format}, {c.get('num_layers')} layers × "
                f"{c.get('num_attention_heads', 0) * c.get('attention_head_dim', 0)} dim, FFN {c.get('ffn_dim')}, "
                f"in {c.get('in_channels')} / out {c.get('out_channels')} channels, text {c.get('text_dim')}")
        lines = [head, f"  stored as {self.storage}: {self.fp8_layers} Linear layers in fp8 "
                       f"({self.quantised} quantised at load), {self.upcast} fp8 tensors upcast, "
                       f"{self.bytes_loaded / 2**30:.2f} GiB in memory; largest single tensor read "
                       f"{self.peak_tensor_bytes / 2**20:.1f} MiB"]
        if self.plan:
            lines.append(self.plan)
        return "\n".join(lines)


def _classify(src: TensorSource, source) -> tuple[dict[str, str], dict[str, str], dict[str, str], str, bool]:
    """(diffusers name → file key, weight name → scale_weight key, weight name → scale_input key, format, scaled)."""
    keys = [k for k in src.keys() if k.rsplit(".", 1)[-1] not in _MARKERS]
    scaled = len(keys) != len(src.keys())
    plain = [k for k in keys if not (k.endswith(".scale_weight") or k.endswith(".scale_input"))]
    fmt = K.detect_transformer_format(plain)
    if fmt == "unknown":
        raise WrongModelError(f"{source} is not a Wan2.1 diffusion model (no Wan block keys found).",
                              "Pick a Wan2.1 / Concat-ID-Wan / Phantom-Wan DiT file.")
    pre, _ = K.strip_prefix(plain)
    conv = K.original_to_diffusers_key if fmt == "original" else (lambda k: k)
    names, unknown = {}, []
    for k in plain:
        d = conv(k[len(pre):]) if k.startswith(pre) else None
        if d is None:
            unknown.append(k)
        else:
            names[d] = k
    if unknown:
        raise WrongModelError(f"{source} has keys IDVideo does not know for a Wan2.1 DiT: {unknown[:5]}",
                              "Pick a Wan2.1 T2V / Concat-ID-Wan / Phantom-Wan checkpoint.")
    by_file = {v: k for k, v in names.items()}
    scales, inputs = {}, {}
    for k in keys:
        for suffix, table in ((".scale_weight", scales), (".scale_input", inputs)):
            if k.endswith(suffix):
                w = by_file.get(k[: -len(suffix)] + ".weight")
                if w is None:
                    raise WrongModelError(f"{source} has a scale '{k}' for a weight it does not hold.",
                                          "The fp8 file is incomplete or not a Wan2.1 DiT; download it again.")
                table[w] = k
    by_dtype: dict = {}
    for k in names.values():
        h = src.headers[k]
        if h.dtype.is_floating_point:
            by_dtype[h.dtype] = by_dtype.get(h.dtype, 0) + math.prod(h.shape)
    if set(by_dtype) & set(FP8_DTYPES):
        fmt_name = "fp8_e4m3fn_scaled" if (scales or scaled) else "fp8_e4m3fn"
    else:                                   # the dtype holding most values (norms are often kept in fp32)
        main = max(by_dtype, key=by_dtype.get) if by_dtype else torch.float32
        fmt_name = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}.get(main, "mixed")
    return names, scales, inputs, fmt_name, scaled


def _linear_owners(model) -> dict[str, str]:
    """Weight/bias parameter name → qualified name of its ``nn.Linear``."""
    out = {}
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear):
            out[f"{name}.weight"] = name
            out[f"{name}.bias"] = name
    return out


def _set(model, name: str, value: torch.Tensor) -> None:
    mod_name, _, attr = name.rpartition(".")
    mod = model.get_submodule(mod_name) if mod_name else model
    if attr in mod._parameters:
        mod._parameters[attr] = torch.nn.Parameter(value, requires_grad=False)
    else:
        mod._buffers[attr] = value


def dit_sizes(shapes: dict, storage: str, dtype=torch.bfloat16):
    """:class:`~idvideo_core.memory.modes.ModelSizes` of a DiT from its tensor shapes (diffusers names), stored in
    ``dtype`` or with the fp8-eligible Linear weights at 1 byte (+ a per-row float32 scale): what the planner needs
    before a single weight is read."""
    from ...memory.fp8 import keeps_fp8
    from ...memory.modes import ModelSizes

    el = torch.empty((), dtype=dtype).element_size()
    total, blocks = 0, {}
    for name, t in shapes.items():
        n = math.prod(t.shape)
        parts = name.split(".")
        fp32 = any(p in parts for p in _FP32_PARTS)
        if storage == "fp8_e4m3" and name.endswith(".weight") and len(t.shape) == 2 and keeps_fp8(name[:-7]) \
                and not fp32:
            b = n + 4 * int(t.shape[0])
        else:
            b = n * (4 if fp32 else el)
        total += b
        if parts[0] == "blocks":
            blocks[parts[1]] = blocks.get(parts[1], 0) + b
    return ModelSizes(transformer=total, num_blocks=len(blocks), block_bytes=max(blocks.values(), default=0))


def check_dit_header(src: TensorSource, source: str | Path = "state dict") -> tuple[dict, dict, dict]:
    """The DiT checks that read no weight (also what ``python -m idvideo_core models`` runs): not another family,
    only known Wan keys, a consistent config. Returns (diffusers name → shape, Concat-ID extras, config)."""
    _refuse_other_family_keys(src, source)
    names, _, _, _, _ = _classify(src, source)
    shapes = {d: src.headers[k] for d, k in names.items()}
    base, extras = K.split_concatid_extras(shapes)
    return shapes, extras, infer_transformer_config(base)


def read_dit_header(path: str | Path) -> tuple[TensorSource, dict, dict]:
    """(source, diffusers name → shape stand-in, inferred config) without reading a weight."""
    src = open_dit_source(path)
    names, _, _, _, _ = _classify(src, path)
    shapes = {d: src.headers[k] for d, k in names.items()}
    base, _ = K.split_concatid_extras(shapes)
    return src, shapes, infer_transformer_config(base)


def dit_from_source(src: TensorSource, dtype=torch.float32, storage: str = "default",
                    source: str | Path = "state dict", report: Optional[DitLoadReport] = None) -> WanDiT:
    """Build the DiT on the meta device and fill it tensor by tensor from ``src``.

    Each tensor is read, converted and placed before the next is read: memory holds the finished model plus one
    tensor, never a second full copy. ``storage="fp8_e4m3"`` keeps the block Linear weights in fp8 (fp8 files: as
    stored, with their ``scale_weight``; float files: quantised per row as they stream); other fp8 tensors (norms,
    embeddings, head, which ComfyUI files usually keep in float anyway) are upcast. ``storage="default"``
    dequantises fp8 weights (``w·scale_weight``) one tensor at a time into ``dtype``."""
    from diffusers import WanTransformer3DModel
    from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed

    from ...memory.fp8 import Fp8Linear, keeps_fp8

    if storage not in ("default", "fp8_e4m3"):
        raise WrongModelError(f"Unknown weight storage '{storage}'.", "Use 'default' or 'fp8_e4m3'.")
    _refuse_other_family_keys(src, source)
    names, scales, inputs, fmt, _ = _classify(src, source)
    shapes = {d: src.headers[k] for d, k in names.items()}
    base_shapes, extra_shapes = K.split_concatid_extras(shapes)
    cfg = infer_transformer_config(base_shapes)
    rep = report if report is not None else DitLoadReport(str(source))
    rep.file_format, rep.storage, rep.config, rep.input_scales = fmt, storage, dict(cfg), len(inputs)
    with torch.device("meta"):
        model = WanTransformer3DModel(**cfg)
        adaln = None
        if extra_shapes:
            adaln = ConcatIdAdaLN(cfg["num_attention_heads"] * cfg["attention_head_dim"], cfg["num_layers"])
    owners = _linear_owners(model)
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    want.update({k: tuple(v.shape) for k, v in (adaln.state_dict().items() if adaln else ())})
    bad = [f"{n} {tuple(shapes[n].shape)} (expected {want[n]})" for n in names
           if n in want and tuple(shapes[n].shape) != want[n]]
    extra = [names[n] for n in names if n not in want]
    if bad or extra:
        raise CorruptFileError(source, "the weights do not fit a Wan2.1 DiT: "
                               + (f"shape mismatch {bad[:3]}" if bad else f"unexpected keys {extra[:5]}"),
                               PUBLISHED_WAN)
    expected = set(model.state_dict()) | ({f"__adaln__.{k}" for k in adaln.state_dict()} if adaln else set())
    pending_bias: dict[str, torch.Tensor] = {}
    fp8_layers: dict[str, Fp8Linear] = {}
    seen = set()

    def target_dtype(name: str):
        return torch.float32 if any(p in name.split(".") for p in _FP32_PARTS) else dtype

    def scale_of(name: str):
        k = scales.get(name)
        return None if k is None else src.get(k).float()

    # weights before biases, so that a quantised layer exists when its bias arrives
    order = sorted(names, key=lambda n: (n.endswith(".bias"), n))
    for name in order:
        t = src.get(names[name])
        rep.peak_tensor_bytes = max(rep.peak_tensor_bytes, t.numel() * t.element_size())
        is_extra = name in extra_shapes
        owner = None if is_extra else owners.get(name)
        fp8_here = (storage == "fp8_e4m3" and owner is not None and keeps_fp8(owner)
                    and target_dtype(name) is dtype)
        if fp8_here and name.endswith(".weight"):
            s = scale_of(name)
            if t.dtype not in FP8_DTYPES:
                rep.quantised += 1
            elif t.dtype != torch.float8_e4m3fn:        # e5m2: re-store as e4m3 through float32, one tensor
                t, s = t.float() * (1.0 if s is None else s), None
                rep.quantised += 1
            bias = pending_bias.pop(owner, None)
            in_scale = src.get(inputs[name]) if name in inputs else None
            layer = Fp8Linear.from_fp8(t, s, None, in_scale)
            fp8_layers[owner] = layer
            parent, _, attr = owner.rpartition(".")
            (model.get_submodule(parent) if parent else model)._modules[attr] = layer
            if bias is not None:
                layer.bias = torch.nn.Parameter(bias, requires_grad=False)
        else:
            if t.dtype in FP8_DTYPES:
                s = scale_of(name)
                t = t.float() * s if s is not None else t.float()
                rep.upcast += 1
            t = t.to(target_dtype(name)) if t.is_floating_point() else t
            if fp8_here:                                   # a bias of an fp8 layer
                if owner in fp8_layers:
                    fp8_layers[owner].bias = torch.nn.Parameter(t.to(dtype), requires_grad=False)
                else:
                    pending_bias[owner] = t.to(dtype)
            elif is_extra:
                _set(adaln, name, t)
                name = f"__adaln__.{name}"
            else:
                _set(model, name, t)
        seen.add(name)
    src.close()
    missing = sorted(expected - seen)
    if missing:
        raise CorruptFileError(source, f"the weights do not fit a Wan2.1 DiT: missing {missing[:5]}"
                                       f"{' …' if len(missing) > 5 else ''}", PUBLISHED_WAN)
    model.rope = WanRotaryPosEmbed(cfg["attention_head_dim"], cfg["patch_size"], cfg["rope_max_seq_len"])
    left = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if left:
        raise CorruptFileError(source, f"the weights do not fit a Wan2.1 DiT: {left[:5]} were not filled",
                               PUBLISHED_WAN)
    rep.fp8_layers = len(fp8_layers)
    dit = WanDiT(model.eval(), adaln.eval() if adaln is not None else None).eval().requires_grad_(False)
    rep.bytes_loaded = sum(t.numel() * t.element_size() for t in list(dit.parameters()) + list(dit.buffers()))
    return dit


def dit_from_state_dict(sd: dict, dtype=torch.float32, source: str | Path = "state dict",
                        storage: str = "default") -> WanDiT:
    """A :class:`WanDiT` from a state dict in original or diffusers names, with or without Concat-ID extras."""
    return dit_from_source(TensorSource.from_state_dict(sd, source), dtype, storage, source)


def load_dit(path: str | Path, dtype=torch.float32, storage: str = "default",
             report: Optional[DitLoadReport] = None) -> WanDiT:
    """A Wan DiT from a single file (.safetensors/.pt/.pth, any key naming, bf16/fp16/fp32/fp8/fp8-scaled), a
    sharded checkpoint (index, folder or one shard) or a diffusers ``transformer/`` folder."""
    path = Path(path)
    src = streamable(path)
    if src is None and path.is_dir():
        sub = path / "transformer" if (path / "transformer" / "config.json").is_file() else path
        return _dit_from_folder(sub, dtype)
    if not path.exists():
        raise MissingModelError(f"the Wan DiT file {path.name}", [path], PUBLISHED_WAN)
    return dit_from_source(open_dit_source(src), dtype, storage, path, report)


def streamable(path: str | Path) -> Optional[Path]:
    """What :func:`open_dit_source` can stream for ``path``: the path itself (a file, a shard, an index, a folder
    with an index) or, for a diffusers folder, its ``transformer/`` index or single ``*.safetensors``; None when only
    ``from_pretrained`` can read it (e.g. ``.bin`` weights) or nothing is there."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        return None
    if shard_files(path) is not None:
        return path
    sub = path / "transformer" if (path / "transformer").is_dir() else path
    if sub != path and shard_files(sub) is not None:
        return sub
    single = sorted(sub.glob("*.safetensors"))
    return single[0] if len(single) == 1 else None


def _dit_from_folder(folder: Path, dtype) -> WanDiT:
    from diffusers import WanTransformer3DModel

    cls = read_json(folder / "config.json").get("_class_name", "")
    if not cls.startswith("Wan"):
        raise WrongModelError(f"{folder} holds a {cls or 'unknown'} transformer, not Wan2.1.",
                              "Pick a Wan2.1-T2V-1.3B-Diffusers folder.")
    try:
        model = WanTransformer3DModel.from_pretrained(str(folder), torch_dtype=dtype)
    except (OSError, ValueError, RuntimeError) as exc:
        raise CorruptFileError(folder, f"loading the Wan transformer failed: {exc}", PUBLISHED_WAN) from exc
    return WanDiT(model.eval(), None).eval().requires_grad_(False)


# ------------------------------------------------------------------------------------------------- VAE
def check_vae_keys(keys, source: str | Path = "state dict") -> str:
    """``original`` or ``diffusers`` for a Wan2.1 VAE's keys (ComfyUI prefixes ignored), else WrongModelError."""
    fmt = K.detect_vae_format(keys)
    if fmt not in ("original", "diffusers"):
        raise WrongModelError(f"{source} is not a Wan2.1 VAE (detected from its keys).",
                              "Pick wan_2.1_vae.safetensors (ComfyUI) or the vae/ folder of the diffusers repo.")
    return fmt


def vae_from_state_dict(sd: dict, dtype=torch.float32, source: str | Path = "state dict"):
    from diffusers import AutoencoderKLWan
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    _, strip = K.strip_prefix(sd.keys())
    sd = {s: sd[o] for s, o in strip.items()}
    if check_vae_keys(sd.keys(), source) == "original":
        sd = convert_wan_vae_to_diffusers(dict(sd))
    base_dim = int(sd["encoder.conv_in.weight"].shape[0])
    z_dim = int(sd["post_quant_conv.weight"].shape[0])
    with torch.device("meta"):
        vae = AutoencoderKLWan(base_dim=base_dim, z_dim=z_dim)
    try:
        vae.load_state_dict({k: v.to(dtype) for k, v in sd.items()}, strict=True, assign=True)
    except RuntimeError as exc:
        raise CorruptFileError(source, f"the weights do not fit a Wan2.1 VAE: {str(exc)[:400]}") from exc
    return vae.eval().requires_grad_(False)


def load_vae(path: str | Path, dtype=torch.float32):
    from diffusers import AutoencoderKLWan

    path = Path(path)
    if path.is_dir():
        sub = path / "vae" if (path / "vae" / "config.json").is_file() else path
        try:
            return AutoencoderKLWan.from_pretrained(str(sub), torch_dtype=dtype).eval().requires_grad_(False)
        except (OSError, ValueError, RuntimeError) as exc:
            raise CorruptFileError(sub, f"loading the Wan VAE failed: {exc}", PUBLISHED_WAN) from exc
    if not path.is_file():
        raise MissingModelError(f"the Wan VAE {path.name}", [path], PUBLISHED_WAN)
    return vae_from_state_dict(load_weights(path, published=PUBLISHED_WAN), dtype, path)


# ------------------------------------------------------------------------------------------------- UMT5
def _umt5_config_from_keys(sd: dict):
    from transformers import UMT5Config

    emb = sd.get("shared.weight", sd.get("encoder.embed_tokens.weight"))
    if emb is None or "encoder.block.0.layer.0.SelfAttention.q.weight" not in sd:
        raise WrongModelError("The text encoder file is not UMT5/T5 (no encoder.block.* keys).",
                              "Pick umt5_xxl_fp16.safetensors / umt5_xxl_fp8_e4m3fn_scaled.safetensors.")
    rel = sd["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
    if "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight" not in sd:
        raise WrongModelError("This is a T5 encoder (relative bias only in block 0), not Wan's UMT5.",
                              "Pick the umt5_xxl text encoder file.")
    heads = int(rel.shape[1])
    layers = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("encoder.block."))
    return UMT5Config(vocab_size=int(emb.shape[0]), d_model=int(emb.shape[1]),
                      d_kv=int(sd["encoder.block.0.layer.0.SelfAttention.q.weight"].shape[0]) // heads,
                      d_ff=int(sd["encoder.block.0.layer.1.DenseReluDense.wi_0.weight"].shape[0]),
                      num_layers=layers, num_heads=heads, relative_attention_num_buckets=int(rel.shape[0]),
                      relative_attention_max_distance=128, feed_forward_proj="gated-gelu",
                      is_encoder_decoder=False, dropout_rate=0.0)


def text_encoder_from_state_dict(sd: dict, dtype=torch.float32, source: str | Path = "state dict"):
    """(UMT5EncoderModel, SentencePieceWanTokenizer or None) from a ComfyUI umt5 file."""
    from transformers import UMT5EncoderModel

    from .text import SentencePieceWanTokenizer

    from ..text_encoders import encoder_from_state_dict

    cfg = _umt5_config_from_keys(sd)
    tok = SentencePieceWanTokenizer(bytes(sd["spiece_model"].numpy().tobytes())) if "spiece_model" in sd else None
    return encoder_from_state_dict(UMT5EncoderModel, cfg, sd, dtype, source, "UMT5"), tok


def load_text_encoder(path: str | Path, dtype=torch.float32, tokenizer_dir: Optional[str | Path] = None):
    """(encoder, tokenizer) from a diffusers folder (``text_encoder/`` + ``tokenizer/``) or a ComfyUI umt5 file."""
    from transformers import AutoTokenizer, UMT5EncoderModel

    from .text import HFWanTokenizer

    path = Path(path)
    if path.is_dir():
        enc_dir = path / "text_encoder" if (path / "text_encoder").is_dir() else path
        tok_dir = Path(tokenizer_dir) if tokenizer_dir else (path / "tokenizer")
        if not tok_dir.is_dir():
            raise MissingModelError("the UMT5 tokenizer folder", [tok_dir], PUBLISHED_WAN)
        try:
            enc = UMT5EncoderModel.from_pretrained(str(enc_dir), torch_dtype=dtype)
            tok = AutoTokenizer.from_pretrained(str(tok_dir))
        except (OSError, ValueError, RuntimeError) as exc:
            raise CorruptFileError(enc_dir, f"loading UMT5 failed: {exc}", PUBLISHED_WAN) from exc
        return enc.eval().requires_grad_(False), HFWanTokenizer(tok)
    if not path.is_file():
        raise MissingModelError(f"the UMT5 text encoder {path.name}", [path], PUBLISHED_WAN)
    enc, tok = text_encoder_from_state_dict(load_weights(path, published=PUBLISHED_WAN), dtype, path)
    if tok is None:
        if tokenizer_dir is None:
            raise MissingModelError(
                "the UMT5 tokenizer (this text encoder file carries no 'spiece_model')", [path], PUBLISHED_WAN,
                "Use ComfyUI's umt5_xxl file (it embeds the tokenizer) or give the tokenizer/ folder of "
                "Wan2.1-T2V-1.3B-Diffusers.")
        tok = HFWanTokenizer(AutoTokenizer.from_pretrained(str(tokenizer_dir)))
    return enc, tok
