"""ONNX Runtime sessions for the antelopev2 models, with a user-chosen provider and a *logged* CPU fallback.

The reference hard-codes ``CUDAExecutionProvider``; ONNX Runtime then silently runs on CPU when the CUDA build is
missing. We let the user pick (CPU, CUDA, ROCm, CoreML) and say clearly in the log when the choice is not available,
so a slow face encode is never a mystery.
"""
from __future__ import annotations

import logging
from pathlib import Path

from ..errors import CorruptFileError, require

log = logging.getLogger("idvideo")

PROVIDERS = {
    "CPU": "CPUExecutionProvider",
    "CUDA": "CUDAExecutionProvider",
    "ROCM": "ROCMExecutionProvider",
    "COREML": "CoreMLExecutionProvider",
}
PROVIDER_CHOICES = ("auto", "CPU", "CUDA", "ROCm", "CoreML")
BEST_FIRST = ("CUDAExecutionProvider", "ROCMExecutionProvider", "CoreMLExecutionProvider")
_AUTO_SAID: set = set()


def _ort():
    return require("onnxruntime", "Face analysis (antelopev2)", "onnxruntime  (or onnxruntime-gpu for CUDA)")


def best_provider(available=None) -> str:
    """The fastest provider this ONNX Runtime offers: CUDA, ROCm or CoreML when present, else CPU."""
    available = list(_ort().get_available_providers()) if available is None else list(available)
    return next((p for p in BEST_FIRST if p in available), "CPUExecutionProvider")


def resolve_providers(provider: str) -> list[str]:
    """Map a user choice to an ONNX Runtime provider list, falling back to CPU with a warning when unavailable.

    ``auto`` (the loader's default) takes the best provider ONNX Runtime offers and says which in the log."""
    key = str(provider).split(" ")[0].upper()
    if key == "AUTO":
        available = list(_ort().get_available_providers())
        best = best_provider(available)
        said = (best, tuple(available))
        if said not in _AUTO_SAID:            # once per choice, not once per ONNX file
            _AUTO_SAID.add(said)
            log.info("IDVideo: face models run on ONNX Runtime's %s (provider auto; available: %s).",
                     best.replace("ExecutionProvider", ""), ", ".join(available))
        return [best] if best == "CPUExecutionProvider" else [best, "CPUExecutionProvider"]
    if key not in PROVIDERS:
        log.warning("IDVideo: unknown ONNX provider '%s' (choices: %s); using CPU.", provider,
                    ", ".join(PROVIDER_CHOICES))
        return ["CPUExecutionProvider"]
    wanted = PROVIDERS[key]
    if wanted == "CPUExecutionProvider":
        return [wanted]
    available = list(_ort().get_available_providers())
    if wanted not in available:
        hint = "install onnxruntime-gpu" if key == "CUDA" else "install the ONNX Runtime build for it"
        log.warning("IDVideo: ONNX Runtime provider %s is not available in this install (available: %s); "
                    "falling back to CPU. To use it, %s.", wanted, ", ".join(available), hint)
        return ["CPUExecutionProvider"]
    return [wanted, "CPUExecutionProvider"]


def open_session(path: Path | str, provider: str = "auto", published: str | None = None):
    """Create an ``InferenceSession``; a truncated or non-ONNX file becomes a :class:`CorruptFileError`."""
    ort = _ort()
    path = Path(path)
    providers = resolve_providers(provider)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        sess = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as exc:
        raise CorruptFileError(path, f"ONNX Runtime cannot read it ({type(exc).__name__}: {exc})",
                               published) from exc
    used = sess.get_providers()
    if used and used[0] != providers[0]:
        log.warning("IDVideo: ONNX Runtime could not start %s for %s (it uses %s); running on CPU.",
                    providers[0], path.name, used[0])
    return sess


def onnx_node_names(path: Path | str, limit: int = 8) -> list[str]:
    """Names of the first graph nodes, read without the weights (used to tell mxnet-exported ArcFace models)."""
    try:
        import onnx
    except ImportError:
        return []
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - ORT already validated the file; a parse quirk just means "no hint"
        return []
    return [n.name for n in model.graph.node[:limit]]
