"""What the "IDVideo Identity Score" node computes, in one call (the node itself stays a thin schema).

The reference identities come from the face loader (``IDV_FACES``): each face's photo (``source_rgb``) is analysed
again with the benchmark detector and the face overlapping the loader's box is taken, so a group photo with
'all (left to right)' gives one identity per person. The scoring models are found next to the face models the
loader used (``face_models.files``: a ConsisID-preview ``face_encoder/`` is searched for ``models/buffalo_l`` and the
CurricularFace file) and in the usual folders, and are cached between runs.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from .protocols import get_protocol
from .score import Reference, report_json, score_videos

log = logging.getLogger("idvideo")


def _face_encoder_hint(face_models) -> Path | None:
    files = getattr(face_models, "files", None)
    scrfd = getattr(files, "scrfd", None)
    if scrfd is None:
        return None
    p = Path(scrfd).parent                  # .../face_encoder/models/antelopev2
    if p.parent.name == "models":
        return p.parent.parent              # .../face_encoder
    return p


def references_from_faces(faces) -> list[Reference]:
    if not faces:
        raise InputError("No reference face was given.", "Connect the faces output of 'IDVideo Face Loader'.")
    return [Reference(f"face {k + 1}", np.asarray(f.source_rgb), None if f.whole_image_fallback else f.bbox)
            for k, f in enumerate(faces)]


def score_for_node(face_models, videos: Sequence, faces, protocol: str = "OpenS2V-Eval", prompt: str = "",
                   num_frames: int = -1, labels: Sequence[str] = ()) -> dict:
    """Score one or several videos (IMAGE batches); returns the node's outputs by name."""
    from .models import load_score_models
    from .plot import plot_report

    videos = [v for v in videos if v is not None and len(v)]
    if not videos:
        raise InputError("No video frames came in.", "Connect the frames output of the sampler.")
    provider = getattr(face_models, "provider", "CPU") if face_models is not None else "CPU"
    from ..bridge import torch_device

    models = load_score_models(provider, consisid_folder=_face_encoder_hint(face_models), device=torch_device())
    prot = get_protocol(protocol)
    reports, best = score_videos(models, videos, references_from_faces(faces), prot,
                                 None if num_frames is None or num_frames < 0 else num_frames,
                                 prompt.strip() or None)
    labels = list(labels) or [f"video {k + 1}" for k in range(len(videos))]
    plots = torch.from_numpy(np.stack([plot_report(r) for r in reports]).astype(np.float32) / 255.0)
    rep = reports[best]
    lines = [f"{lab}: Arc {_f(r.facesim_arc)}  Cur {_f(r.facesim_cur)}"
             + (f"  CLIP {r.clip_score:.2f}" if r.clip_score is not None else "")
             + ("  ← best" if k == best and len(reports) > 1 else "") for k, (lab, r) in enumerate(zip(labels, reports))]
    lines += [f"note: {n}" for n in rep.notes]
    title = f"Arc {_f(rep.facesim_arc, 3)} · Cur {_f(rep.facesim_cur, 3)}"
    if len(reports) > 1:
        title += f" · best {best + 1} of {len(reports)}"
    return {"title": title, "facesim_arc": float(rep.facesim_arc or 0.0), "facesim_cur": float(rep.facesim_cur or 0.0),
            "clip_score": float(rep.clip_score or 0.0), "plot": plots, "report": report_json(reports, best, labels),
            "best_frames": videos[best], "best_index": int(best), "summary": "\n".join(lines)}


def _f(v, digits: int = 4) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"
