"""Where the face model files are searched for, in one place (consisid.md §4 layout).

Search order for each file:

1. ComfyUI's shared folders: ``insightface`` → ``models/antelopev2/*.onnx`` (the layout PuLID / InstantID nodes use),
   ``facexlib`` → the ``.pth`` files, ``clip_vision`` then ``idvideo`` → the EVA-CLIP ``.pt``.
2. The ``face_encoder/`` folder of an explicitly given ConsisID-preview folder.
3. The ``face_encoder/`` folder of every ConsisID-preview folder under the ``consisid`` key.

A missing file raises :class:`MissingModelError` listing every path tried. A common mistake is unzipping
``antelopev2.zip`` into ``antelopev2/`` so the files end up in ``antelopev2/antelopev2/``; that case is named.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import paths
from ..errors import MissingModelError

SCRFD_FILE = "scrfd_10g_bnkps.onnx"
ARCFACE_FILE = "glintr100.onnx"
RETINAFACE_FILE = "detection_Resnet50_Final.pth"
BISENET_FILE = "parsing_bisenet.pth"
EVA_FILE = "EVA02_CLIP_L_336_psz14_s6B.pt"
ANTELOPE_SUBDIR = Path("models") / "antelopev2"
# insightface's default pack, used by the FaceSim-Arc benchmarks (OpenS2V-Eval, ConsisID's eval scripts).
BUFFALO_DET_FILE = "det_10g.onnx"
BUFFALO_REC_FILE = "w600k_r50.onnx"
BUFFALO_SUBDIR = Path("models") / "buffalo_l"


@dataclass
class FaceModelFiles:
    scrfd: Path
    arcface: Path
    retinaface: Path
    bisenet: Path
    eva: Path


def face_encoder_dirs(consisid_folder: Path | str | None = None) -> list[Path]:
    """``face_encoder/`` folders: the explicit one first (a ConsisID root or the folder itself), then the key's."""
    out: list[Path] = []
    if consisid_folder:
        p = Path(consisid_folder).expanduser()
        out.append(p if p.name == "face_encoder" else p / "face_encoder")
    for root in paths.consisid_folders():
        fe = Path(root) / "face_encoder"
        if fe not in out:
            out.append(fe)
    return out


def _unique(items: list[Path]) -> list[Path]:
    seen, out = set(), []
    for p in items:
        if str(p) not in seen:
            seen.add(str(p))
            out.append(p)
    return out


def antelope_candidates(name: str, consisid_folder=None) -> list[Path]:
    dirs = [Path(d) / ANTELOPE_SUBDIR for d in paths.search_dirs("insightface")]
    dirs += [fe / ANTELOPE_SUBDIR for fe in face_encoder_dirs(consisid_folder)]
    return _unique([d / name for d in dirs])


def buffalo_candidates(name: str, consisid_folder=None) -> list[Path]:
    """``buffalo_l`` files: ComfyUI's ``insightface`` folders (``models/buffalo_l/`` as insightface lays it out, and
    ``buffalo_l/`` directly), a ConsisID-preview ``face_encoder/models/buffalo_l/``, then insightface's own default
    root ``~/.insightface/models/buffalo_l/`` (where ``FaceAnalysis()`` unpacks it)."""
    dirs: list[Path] = []
    for d in paths.search_dirs("insightface"):
        dirs += [Path(d) / BUFFALO_SUBDIR, Path(d) / "buffalo_l"]
    dirs += [fe / BUFFALO_SUBDIR for fe in face_encoder_dirs(consisid_folder)]
    dirs.append(Path.home() / ".insightface" / BUFFALO_SUBDIR)
    return _unique([d / name for d in dirs])


def facexlib_candidates(name: str, consisid_folder=None) -> list[Path]:
    dirs = [Path(d) for d in paths.search_dirs("facexlib")] + face_encoder_dirs(consisid_folder)
    return _unique([d / name for d in dirs])


def eva_candidates(consisid_folder=None) -> list[Path]:
    dirs = [Path(d) for d in paths.search_dirs("clip_vision")] + [Path(d) for d in paths.search_dirs("idvideo")]
    dirs += face_encoder_dirs(consisid_folder)
    return _unique([d / EVA_FILE for d in dirs])


def _nested_hint(candidates: list[Path]) -> str | None:
    """Name the antelopev2/antelopev2/ mistake when the file sits one folder too deep."""
    for c in candidates:
        nested = c.parent / c.parent.name / c.name
        if nested.is_file():
            return (f"Found {nested}: the antelopev2 files are nested one folder too deep (antelopev2/antelopev2/). "
                    f"Move the .onnx files up into {c.parent}.")
    return None


def find_antelope(name: str, consisid_folder=None) -> Path:
    cands = antelope_candidates(name, consisid_folder)
    for c in cands:
        if c.is_file():
            return c
    raise MissingModelError(f"the antelopev2 model '{name}'", cands, paths.PUBLISHED["antelopev2"],
                            _nested_hint(cands))


def find_face_model_files(consisid_folder=None) -> FaceModelFiles:
    """Every face model file; when some are missing, one MissingModelError names them all with every path tried."""
    pub = paths.PUBLISHED
    specs = {
        "scrfd": (f"antelopev2/{SCRFD_FILE}", antelope_candidates(SCRFD_FILE, consisid_folder), pub["antelopev2"]),
        "arcface": (f"antelopev2/{ARCFACE_FILE}", antelope_candidates(ARCFACE_FILE, consisid_folder),
                    pub["antelopev2"]),
        "retinaface": (RETINAFACE_FILE, facexlib_candidates(RETINAFACE_FILE, consisid_folder), pub["facexlib"]),
        "bisenet": (BISENET_FILE, facexlib_candidates(BISENET_FILE, consisid_folder), pub["facexlib"]),
        "eva": (EVA_FILE, eva_candidates(consisid_folder), pub["eva_clip"]),
    }
    found: dict[str, Path] = {}
    missing, searched, published, hints = [], [], [], []
    for key, (label, cands, pub_at) in specs.items():
        hit = next((c for c in cands if c.is_file()), None)
        if hit is not None:
            found[key] = hit
            continue
        missing.append(label)
        searched += cands
        if pub_at not in published:
            published.append(pub_at)
        if key in ("scrfd", "arcface"):
            hint = _nested_hint(cands)
            if hint and hint not in hints:
                hints.append(hint)
    if missing:
        what = "the face model file" + ("s " if len(missing) > 1 else " ") + ", ".join(missing)
        raise MissingModelError(what, searched, "; ".join(published), " ".join(hints) or None)
    return FaceModelFiles(**found)
