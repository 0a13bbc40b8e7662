"""Loading checkpoint files safely and with clear errors.

Pickled files (``.pt``, ``.pth``, ``.bin``, ``.ckpt``) load only with ``torch.load(weights_only=True)``: a pickle that
would run code is refused, never executed. Truncated or corrupt files raise :class:`CorruptFileError` naming the file
and saying to download it again.
"""
from __future__ import annotations

import json
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import CorruptFileError, UnsafeFileError

PICKLE_EXTS = (".pt", ".pth", ".bin", ".ckpt")


def _unwrap(obj, path: Path) -> dict:
    """Checkpoints sometimes nest the state dict (``state_dict``, ``model``, ``module``, ``params_ema``)."""
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model", "module", "params_ema", "params"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(k, str) for k in inner):
                import torch

                if any(isinstance(v, torch.Tensor) for v in inner.values()):
                    return dict(inner)
        return dict(obj)
    raise CorruptFileError(path, f"it holds a {type(obj).__name__}, not a state dict of tensors")


def load_pickle_weights(path: Path | str, published: str | None = None, mmap: bool = False) -> dict:
    """``mmap=True`` maps the tensors instead of reading them (shapes and dtypes without the data; zip files only,
    the legacy format is read whole)."""
    import torch

    path = Path(path)
    try:
        mmap = bool(mmap) and zipfile.is_zipfile(path)
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        msg = str(exc)
        if "Weights only load failed" in msg or "Unsupported global" in msg or "GLOBAL" in msg:
            raise UnsafeFileError(
                f"{path} is a pickle that would run code or build Python objects when loaded; IDVideo refuses it.",
                "Use the published weights file, or convert it to .safetensors with a tool you trust.") from exc
        raise CorruptFileError(path, msg, published) from exc
    except (EOFError, RuntimeError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CorruptFileError(path, f"{type(exc).__name__}: {exc}", published) from exc
    return _unwrap(obj, path)


def load_pickle_allowing(path: Path | str, inert: Mapping[str, object], published: str | None = None):
    """``torch.load(weights_only=True)`` of a pickle that also holds the listed inert objects (qualified name →
    object, e.g. numpy's array reconstruction for a saved RNG state), and nothing else: the globals the file refers
    to are read first without executing anything, and any global outside torch's own allowlist and ``inert`` is
    refused by name. Returns the unpickled object (not unwrapped)."""
    import torch

    path = Path(path)
    try:
        found = list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except (RuntimeError, zipfile.BadZipFile, OSError, ValueError, pickle.UnpicklingError) as exc:
        raise CorruptFileError(path, f"{type(exc).__name__}: {exc}", published) from exc
    bad = sorted(g for g in found if g not in inert)
    if bad:
        raise UnsafeFileError(
            f"{path} holds Python objects that are not plain data ({', '.join(bad[:6])}); IDVideo refuses to build "
            "them (it would mean running code from the file).",
            "Use the published checkpoint, or convert it to .safetensors on a machine you trust.")
    try:
        # the whole inert list: the scan above does not see every class a numpy array's dtype refers to
        with torch.serialization.safe_globals([(obj, name) for name, obj in inert.items()]):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=False)
    except pickle.UnpicklingError as exc:
        detail = next((ln.strip() for ln in str(exc).splitlines() if "but got" in ln or "Unsupported" in ln),
                      str(exc).splitlines()[0] if str(exc) else "")
        raise UnsafeFileError(f"{path} holds objects IDVideo does not build from a pickle ({detail[:240]}).",
                              "Use the published checkpoint.") from exc
    except (EOFError, RuntimeError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CorruptFileError(path, f"{type(exc).__name__}: {exc}", published) from exc


def load_safetensors(path: Path | str, device: str = "cpu", published: str | None = None) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CorruptFileError(path, f"{type(exc).__name__}: {exc}", published) from exc


def load_weights(path: Path | str, published: str | None = None) -> dict:
    """Load a state dict from ``.safetensors`` or a pickled file, safely."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_safetensors(path, published=published)
    if path.suffix in PICKLE_EXTS:
        return load_pickle_weights(path, published=published)
    raise CorruptFileError(path, f"unknown weights format '{path.suffix}'", published)


def read_safetensors_header(path: Path | str, published: str | None = None) -> tuple[int, dict, int]:
    """(header length, header dict, file size) of a safetensors file: the one place its header is parsed."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if n <= 0 or n > min(size, 100_000_000):
                raise ValueError("bad header length")
            header = json.loads(fh.read(n))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
    except (OSError, ValueError) as exc:
        raise CorruptFileError(path, f"cannot read the safetensors header ({exc})", published) from exc
    return n, header, size


def safetensors_keys(path: Path | str) -> list[str]:
    """The tensor names of a safetensors file without loading it (read from its header)."""
    return [k for k in read_safetensors_header(path)[1] if k != "__metadata__"]


def weight_keys(path: Path | str) -> list[str]:
    """The tensor names of a weights file without reading its tensors: the safetensors header, or a pickle opened
    with ``torch.load(weights_only=True, mmap=True)`` (the tensors are mapped, not read). Used to tell files apart
    for loader lists; unsafe or damaged files raise like :func:`load_weights`."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return safetensors_keys(path)
    if path.suffix not in PICKLE_EXTS:
        return []
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeFileError(f"{path} is a pickle IDVideo will not open (it would build Python objects).",
                              "Use the published weights file.") from exc
    except (EOFError, RuntimeError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CorruptFileError(path, f"{type(exc).__name__}: {exc}") from exc
    return list(_unwrap(obj, path))


def read_json(path: Path | str) -> dict:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CorruptFileError(path, f"not valid JSON ({exc})") from exc


def check_safetensors_file(path: Path | str, published: str | None = None) -> list[str]:
    """Cheap integrity check of a safetensors file: a readable header whose tensors fit the file exactly.

    Catches the classic half-finished download before a multi-GB load fails with an obscure error.
    """
    path = Path(path)
    n, header, size = read_safetensors_header(path, published)
    try:
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptFileError(path, f"cannot read the safetensors header ({exc})", published) from exc
    if 8 + n + end != size:
        raise CorruptFileError(path, f"the file is {size} bytes but its header describes {8 + n + end} bytes "
                                     "(an incomplete download?)", published)
    return [k for k in header if k != "__metadata__"]


def check_model_folder_files(folder: Path | str, published: str | None = None) -> None:
    """Check every safetensors file in a diffusers/transformers component folder, and that an index's shards exist."""
    folder = Path(folder)
    for index in list(folder.glob("*.safetensors.index.json")):
        data = read_json(index)
        for shard in sorted(set(data.get("weight_map", {}).values())):
            if not (folder / shard).is_file():
                raise CorruptFileError(index, f"it lists the shard '{shard}', which is missing from {folder}",
                                       published)
    for f in sorted(folder.glob("*.safetensors")):
        check_safetensors_file(f, published)


# ------------------------------------------------------------------------------------- what a file holds, cheaply
#: safetensors header dtype names → torch dtype names.
SAFETENSORS_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
                      "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2", "I64": "int64", "I32": "int32",
                      "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}


@dataclass
class WeightsInfo:
    """A weights file as read from its header (safetensors) or its mapped pickle: no tensor data is read.

    ``state`` maps names to tensors with the real shapes and dtypes (``meta`` tensors for safetensors, memory-mapped
    ones for zip pickles), so the loaders' own key/shape checks can run on it.
    """

    path: Path
    format: str                  # "safetensors" or "pickle"
    state: dict
    size: int

    @property
    def dtypes(self) -> dict[str, int]:
        """dtype name → number of elements stored in it."""
        out: dict[str, int] = {}
        for t in self.state.values():
            if hasattr(t, "dtype"):
                name = str(t.dtype).replace("torch.", "")
                out[name] = out.get(name, 0) + int(t.numel())
        return out

    @property
    def dtype(self) -> str:
        """The dtype holding most of the weights ("float16", "bfloat16", ...)."""
        d = self.dtypes
        return max(d, key=d.get) if d else "unknown"


def inspect_weights(path: Path | str, published: str | None = None) -> WeightsInfo:
    """Check a weights file the way the loaders do (header fits the file, pickle safe and complete) and describe it.

    Raises the loaders' errors: :class:`CorruptFileError` (truncated, not that format), :class:`UnsafeFileError`.
    """
    import torch

    path = Path(path)
    if path.suffix == ".safetensors":
        check_safetensors_file(path, published)
        _, header, size = read_safetensors_header(path, published)
        state = {}
        for k, v in header.items():
            if k == "__metadata__":
                continue
            dtype = getattr(torch, SAFETENSORS_DTYPES.get(str(v.get("dtype")), "uint8"), torch.uint8)
            state[k] = torch.empty(tuple(v.get("shape", ())), dtype=dtype, device="meta")
        return WeightsInfo(path, "safetensors", state, size)
    if path.suffix in PICKLE_EXTS:
        state = load_pickle_weights(path, published, mmap=True)
        return WeightsInfo(path, "pickle", state, path.stat().st_size)
    raise CorruptFileError(path, f"unknown weights format '{path.suffix}'", published)
