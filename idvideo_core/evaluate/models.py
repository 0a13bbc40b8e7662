"""The scoring models, found in the usual folders and loaded once.

- **FaceSim-Arc**: insightface's ``buffalo_l`` (``det_10g.onnx`` + ``w600k_r50.onnx``), the benchmarks' recogniser,
  run by the pack's own SCRFD decode and ArcFace crop (:mod:`idvideo_core.faces`) at the protocols' 320×320.
  Searched in ComfyUI's ``insightface`` folders (``models/buffalo_l/``), a ConsisID-preview
  ``face_encoder/models/buffalo_l/`` and ``~/.insightface/models/buffalo_l/``. When it is absent the antelopev2 pack
  the generation already uses is taken instead, **labelled as a fallback** everywhere (its numbers are not comparable
  with published FaceSim-Arc values).
- **FaceSim-Cur**: CurricularFace IR-101 (``glint360k_curricular_face_r101_backbone.bin``), optional: skipped with a
  note when absent. Searched in a ConsisID-preview ``face_encoder/``, ``models/idvideo/`` (also its
  ``OpenS2V-Weight/`` sub-folder) and ``models/insightface/``.
- **CLIPScore**: a transformers ``CLIPModel`` folder (``openai/clip-vit-base-patch32``), optional. Searched as
  ``clip-vit-base-patch32/`` under ``models/idvideo``, ``models/clip`` and ``models/clip_vision``, and in a
  ConsisID-preview ``data_process/`` (where ConsisID's eval script puts it).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import paths
from ..faces import locate
from .curricularface import FILE_NAME as CUR_FILE

log = logging.getLogger("idvideo")

CLIP_FOLDER = "clip-vit-base-patch32"
ARC_BUFFALO = "buffalo_l (det_10g + w600k_r50, the benchmarks' pack)"
ARC_FALLBACK = "antelopev2 FALLBACK (buffalo_l not found; not comparable with published FaceSim-Arc)"


@dataclass
class ScoreModels:
    detector: Any                      # ScrfdDetector at the protocols' 320×320
    recognizer: Any                    # ArcFaceRecognizer (raw embeddings)
    arc_pack: str                      # ARC_BUFFALO or ARC_FALLBACK
    arc_files: tuple
    cur: Any | None = None          # CurricularFaceIR101 or None
    cur_path: Path | None = None
    clip: tuple | None = None       # (CLIPModel, CLIPProcessor) or None
    clip_path: Path | None = None
    notes: list = field(default_factory=list)
    provider: str = "auto"

    @property
    def arc_is_fallback(self) -> bool:
        return self.arc_pack == ARC_FALLBACK


def curricularface_candidates(consisid_folder=None) -> list[Path]:
    dirs = list(locate.face_encoder_dirs(consisid_folder))
    for d in paths.search_dirs("idvideo"):
        dirs += [Path(d), Path(d) / "OpenS2V-Weight"]
    dirs += [Path(d) for d in paths.search_dirs("insightface")]
    return locate._unique([d / CUR_FILE for d in dirs])


def clip_candidates(consisid_folder=None) -> list[Path]:
    dirs = []
    for key in ("idvideo", "clip", "clip_vision"):
        dirs += [Path(d) / CLIP_FOLDER for d in paths.search_dirs(key)]
    roots = [Path(consisid_folder).expanduser()] if consisid_folder else []
    roots += paths.consisid_folders()
    dirs += [r / "data_process" / CLIP_FOLDER for r in roots]
    return locate._unique(dirs)


def _first_file(cands: list[Path]) -> Path | None:
    return next((c for c in cands if c.is_file()), None)


def find_arc_files(consisid_folder=None, allow_fallback: bool = True) -> tuple[Path, Path, str]:
    """(detector, recogniser, label): buffalo_l when present, else antelopev2 (labelled fallback)."""
    det = _first_file(locate.buffalo_candidates(locate.BUFFALO_DET_FILE, consisid_folder))
    rec = _first_file(locate.buffalo_candidates(locate.BUFFALO_REC_FILE, consisid_folder))
    if det is not None and rec is not None:
        return det, rec, ARC_BUFFALO
    searched = (locate.buffalo_candidates(locate.BUFFALO_DET_FILE, consisid_folder)
                + locate.buffalo_candidates(locate.BUFFALO_REC_FILE, consisid_folder))
    if allow_fallback:
        det = _first_file(locate.antelope_candidates(locate.SCRFD_FILE, consisid_folder))
        rec = _first_file(locate.antelope_candidates(locate.ARCFACE_FILE, consisid_folder))
        if det is not None and rec is not None:
            log.warning("IDVideo: buffalo_l (det_10g.onnx + w600k_r50.onnx) not found; FaceSim-Arc uses antelopev2 "
                        "instead, which is NOT the benchmarks' recogniser. Put buffalo_l in "
                        "models/insightface/models/buffalo_l/ for comparable numbers.")
            return det, rec, ARC_FALLBACK
        searched += locate.antelope_candidates(locate.SCRFD_FILE, consisid_folder)
    from ..errors import MissingModelError

    raise MissingModelError("insightface's buffalo_l pack (det_10g.onnx + w600k_r50.onnx) for FaceSim-Arc",
                            searched, paths.PUBLISHED["buffalo_l"])


_CACHE: dict = {}


def _stamp(p: Path | None):
    return None if p is None else (str(p), p.stat().st_mtime_ns, p.stat().st_size)


def load_score_models(provider: str = "auto", consisid_folder=None, device="cpu", curricularface: bool = True,
                      clip: bool = True, allow_fallback: bool = True) -> ScoreModels:
    """Find and load the scoring models (cached by file identity, so a graph re-run does not reload IR-101)."""
    from ..faces.arcface import ArcFaceRecognizer
    from ..faces.onnx_session import onnx_node_names, open_session
    from ..faces.scrfd import ScrfdDetector
    from .protocols import OPENS2V

    det_path, rec_path, label = find_arc_files(consisid_folder, allow_fallback)
    cur_path = _first_file(curricularface_candidates(consisid_folder)) if curricularface else None
    clip_path = None
    if clip:
        clip_path = next((c for c in clip_candidates(consisid_folder) if (c / "config.json").is_file()), None)
    key = (provider, str(device), _stamp(det_path), _stamp(rec_path), _stamp(cur_path),
           _stamp(clip_path / "config.json") if clip_path else None)
    if key in _CACHE:
        return _CACHE[key]
    notes = []
    published = paths.PUBLISHED["buffalo_l" if label == ARC_BUFFALO else "antelopev2"]
    det_sess = open_session(det_path, provider, published)
    rec_sess = open_session(rec_path, provider, published)
    detector = ScrfdDetector(det_sess, det_size=OPENS2V.det_size)
    recognizer = ArcFaceRecognizer.from_session(rec_sess, onnx_node_names(rec_path))
    if label == ARC_FALLBACK:
        notes.append("FaceSim-Arc uses antelopev2 (glintr100) because buffalo_l was not found: the values are not "
                     "comparable with published FaceSim-Arc numbers.")
    cur = None
    if cur_path is not None:
        from .curricularface import load_curricularface

        cur = load_curricularface(cur_path, device)
    elif curricularface:
        notes.append(f"FaceSim-Cur skipped: {CUR_FILE} not found (from {paths.PUBLISHED['curricularface']}; put it "
                     "in models/idvideo/ or a ConsisID-preview face_encoder/).")
    clip_pair = None
    if clip_path is not None:
        from transformers import CLIPModel, CLIPProcessor

        clip_pair = (CLIPModel.from_pretrained(str(clip_path)).to(device).eval(),
                     CLIPProcessor.from_pretrained(str(clip_path)))
    elif clip:
        notes.append(f"CLIPScore skipped: no {CLIP_FOLDER} folder found ({paths.PUBLISHED['clip_score']}; put it "
                     "in models/idvideo/).")
    used = det_sess.get_providers()[0].replace("ExecutionProvider", "")
    models = ScoreModels(detector, recognizer, label, (det_path, rec_path), cur, cur_path, clip_pair, clip_path,
                         notes, used)
    _CACHE.clear()   # one set of scoring models at a time (IR-101 is 261 MB)
    _CACHE[key] = models
    return models
