"""Reading Concat-ID-CogVideoX SAT checkpoint folders safely.

Layout as published (ModelScope ``yongzhong/Concat-ID`` → ``single-identity/``, ``two-identities/``;
``yongzhong/Concat-ID-pre-training``)::

    <folder>/latest                               text file: the iteration, e.g. "2000"
    <folder>/<iteration>/mp_rank_00_model_states.pt

The ``.pt`` file is a DeepSpeed/SwissArmyTransformer pickle: ``{'module': state_dict, 'iteration': …, …}`` where the
rest is bookkeeping (DeepSpeed's ``param_shapes`` / ``ds_config`` / ``ds_version``, and SAT's client state with the
RNG states ``random_rng_state`` (tuple) and ``np_rng_state`` (a numpy array)). It is read with
``torch.load(weights_only=True)``; torch's restricted unpickler already refuses anything that could run code. The only
non-torch objects allowed on top are the ones :func:`_inert_globals` lists (numpy array reconstruction, for the
saved RNG state: it builds an empty array and fills it with bytes, nothing else). Any other global is refused
without being executed, and the error names it.
"""
from __future__ import annotations

from pathlib import Path

from ...errors import CorruptFileError, MissingModelError
from ...safeload import _unwrap, load_pickle_allowing, load_weights

STATES_FILE = "mp_rank_00_model_states.pt"

# Fully qualified names as they appear in the pickle → the (inert) object to allow for them.
def _inert_globals() -> dict:
    out = {}
    try:
        import numpy as np

        core = getattr(np, "_core", None) or np.core
        rebuild = core.multiarray._reconstruct
        out.update({
            "numpy.core.multiarray._reconstruct": rebuild,     # written by numpy 1.x
            "numpy._core.multiarray._reconstruct": rebuild,    # written by numpy 2.x
            "numpy.ndarray": np.ndarray,
            "numpy.dtype": np.dtype,
        })
        dtypes = getattr(np, "dtypes", None)
        if dtypes is not None and hasattr(dtypes, "UInt32DType"):
            out["numpy.dtypes.UInt32DType"] = dtypes.UInt32DType
    except ImportError:  # pragma: no cover - numpy ships with torch
        pass
    return out


def sat_states_path(folder: Path | str, published: str | None = None) -> Path:
    """``<folder>/<latest>/mp_rank_00_model_states.pt``; also accepts the iteration folder itself."""
    folder = Path(folder)
    if (folder / STATES_FILE).is_file():
        return folder / STATES_FILE
    latest = folder / "latest"
    if not latest.is_file():
        raise MissingModelError(f"the SAT checkpoint's 'latest' file in {folder.name}/", [latest], published,
                                "A SAT checkpoint folder holds 'latest' and '<iteration>/mp_rank_00_model_states.pt'.")
    tag = latest.read_text(encoding="utf-8", errors="replace").strip()
    if not tag or "/" in tag or "\\" in tag or tag in (".", ".."):
        raise CorruptFileError(latest, f"it should hold the iteration folder name, not {tag!r}", published)
    states = folder / tag / STATES_FILE
    if not states.is_file():
        raise MissingModelError(f"the SAT weights of iteration {tag}", [states], published)
    return states


def load_sat_states(path: Path | str, published: str | None = None) -> dict:
    """The DiT state dict of a SAT ``mp_rank_00_model_states.pt`` (``module`` entry), read ``weights_only``."""
    path = Path(path)
    obj = load_pickle_allowing(path, _inert_globals(), published)
    if isinstance(obj, dict) and isinstance(obj.get("module"), dict):
        return dict(obj["module"])
    return _unwrap(obj, path)


def load_dit_weights(path: Path | str, published: str | None = None) -> tuple[dict, Path]:
    """(state dict, file) from a SAT folder, an iteration folder, a ``.pt`` states file or a ``.safetensors``."""
    path = Path(path)
    if path.is_dir():
        path = sat_states_path(path, published)
    if not path.is_file():
        raise MissingModelError(f"the Concat-ID-CogVideoX weights {path.name}", [path], published)
    if path.suffix == ".safetensors":
        return load_weights(path, published=published), path
    return load_sat_states(path, published), path
