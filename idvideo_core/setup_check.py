"""``python -m idvideo_core models``: what every template and model family needs, where IDVideo looks for it, and
what is there.

For each file or folder a template's loader nodes will open, the report lists every folder searched, in order (the
ComfyUI models folder, ``extra_model_paths.yaml`` entries, ``IDVIDEO_MODELS_DIR``, ConsisID's ``face_encoder/``),
what was found with its format and dtype (read from the header, never the weights), and for each file that is
missing, half-downloaded, damaged or of the wrong kind: why, where it is published and the exact path to put it.

Nothing here judges a file on its own: every verdict comes from the loaders' own checks (``safeload``'s header and
pickle checks, ``backbones.detect`` / the Wan key checks, the ConsisID folder check, the face models' ONNX checks,
``faces.locate``'s search lists), run on header-only tensors where the loader would read the weights.
"""
from __future__ import annotations

import importlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

from . import paths
from .errors import (IDVideoError, MissingModelError, UnsafeFileError, WrongModelError)

OK, MISSING, PARTIAL, DAMAGED, WRONG, UNSAFE = "ok", "missing", "half-downloaded", "damaged", "wrong kind", "unsafe"
#: Names download tools give a file that is still arriving (browsers, huggingface_hub, wget/curl scripts).
PARTIAL_SUFFIXES = (".part", ".crdownload", ".incomplete", ".download", ".tmp", ".aria2")
TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "workflows"


@dataclass
class Searched:
    path: str
    origin: str
    exists: bool


@dataclass
class FileReport:
    """One file or folder a loader needs, and what the search found."""

    what: str
    kind: str
    status: str = MISSING
    path: Optional[str] = None           # what was found (first hit in search order)
    format: Optional[str] = None
    dtype: Optional[str] = None
    size_bytes: Optional[int] = None
    searched: list[Searched] = field(default_factory=list)
    published: str = ""
    put_at: Optional[str] = None         # where to put it (first folder searched) when not usable
    problem: Optional[str] = None
    fix: Optional[str] = None
    optional: bool = False

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def blocking(self) -> bool:
        """Stops the template: required and not usable, or optional but present and broken."""
        return not self.ok and not (self.optional and self.status == MISSING)


@dataclass
class Requirement:
    what: str
    kind: str
    candidates: list[Path]
    published: str
    check: Callable[[Path], tuple[str, Optional[str]]]     # path -> (format, dtype); raises the loader's errors
    folder: bool = False
    hint: Callable[[list[Path]], Optional[str]] = lambda cands: None
    quick: Optional[Callable[[Path], tuple[str, Optional[str]]]] = None   # header-only variant (no weights read)
    optional: bool = False       # the node runs without it (with a fallback or a skipped score), said in the report


# --------------------------------------------------------------------------------------------------- origins
def origin_of(path: Path) -> str:
    """Which configured location a candidate path comes from (for the "searched, in order" list)."""
    path = Path(path)
    if "face_encoder" in path.parts:
        return "ConsisID face_encoder/"
    for key in paths.FOLDER_KEYS:
        for loc, origin in paths.search_locations(key):
            if loc == path or loc in path.parents:
                return origin
    return "given on the command line"


# --------------------------------------------------------------------------------------------------- checkers
def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _check_onnx(ctor: Callable) -> Callable[[Path], tuple[str, Optional[str]]]:
    def check(path: Path):
        from .faces.onnx_session import open_session

        sess = open_session(path, "CPU", paths.PUBLISHED["antelopev2"])
        ctor(sess, path)
        kind = sess.get_inputs()[0].type                  # "tensor(float)"
        return "onnx", kind.removeprefix("tensor(").removesuffix(")").replace("float", "float32", 1) \
            if kind == "tensor(float)" else kind
    return check


def _scrfd(sess, path):
    from .faces.scrfd import ScrfdDetector

    ScrfdDetector(sess)


def _arcface(sess, path):
    from .faces.arcface import ArcFaceRecognizer
    from .faces.onnx_session import onnx_node_names

    ArcFaceRecognizer.from_session(sess, onnx_node_names(path))


def _check_facexlib(loader_name: str):
    def check(path: Path):
        from .faces import facexlib_nets
        from .safeload import inspect_weights

        info = inspect_weights(path, paths.PUBLISHED["facexlib"])
        getattr(facexlib_nets, loader_name)(path, "cpu")       # the loader's strict key check
        return info.format, info.dtype
    return check


def _check_eva(path: Path):
    from .faces.eva_clip import infer_eva_config, visual_state_dict
    from .safeload import inspect_weights

    info = inspect_weights(path, paths.PUBLISHED["eva_clip"])
    infer_eva_config(visual_state_dict(info.state, str(path)), str(path))
    return info.format, info.dtype


def _folder_dtype(folder: Path) -> Optional[str]:
    from .safeload import SAFETENSORS_DTYPES, read_safetensors_header

    for f in sorted(folder.glob("*.safetensors")):
        counts: dict[str, int] = {}
        for k, v in read_safetensors_header(f)[1].items():
            if k != "__metadata__":
                n = 1
                for s in v.get("shape", ()):
                    n *= int(s)
                name = SAFETENSORS_DTYPES.get(v.get("dtype"), str(v.get("dtype")))
                counts[name] = counts.get(name, 0) + n
        if counts:
            return max(counts, key=counts.get)
    return None


def _check_tokenizer(folder: Path, published: str) -> None:
    if not (folder / "tokenizer").is_dir():
        raise MissingModelError("the tokenizer/ folder", [folder / "tokenizer"], published)


def _check_consisid_folder(path: Path):
    from .backbones.consisid.loading import COMPONENTS, PUBLISHED, resolve_consisid_folder
    from .safeload import check_model_folder_files

    folder = resolve_consisid_folder(path)
    for comp in COMPONENTS + ("text_encoder",):
        if not (folder / comp).is_dir():
            raise MissingModelError(f"the {comp}/ folder", [folder / comp], PUBLISHED)
        check_model_folder_files(folder / comp, PUBLISHED)
    _check_tokenizer(folder, PUBLISHED)
    return "diffusers folder", _folder_dtype(folder / "transformer")


def _check_wan_folder(path: Path):
    from .backbones.detect import family_of_path
    from .safeload import check_model_folder_files

    pub = paths.PUBLISHED["wan"]
    fam = family_of_path(path)
    if fam != "wan":
        raise WrongModelError(f"{path} holds a {fam} model, not Wan2.1 (read from transformer/config.json).",
                              "Pick the Wan2.1-T2V-1.3B-Diffusers folder.")
    for comp in ("transformer", "vae", "text_encoder"):
        if not (path / comp).is_dir():
            raise MissingModelError(f"the {comp}/ folder", [path / comp], pub)
        check_model_folder_files(path / comp, pub)
    _check_tokenizer(path, pub)
    return "diffusers folder", _folder_dtype(path / "transformer")


def _check_wan_dit(family: str, published: str):
    def check(path: Path):
        from .backbones.wan.loading import TensorSource, check_dit_header, open_dit_source, shard_files
        from .backbones.wan.model import check_dit_fits_family
        from .safeload import check_safetensors_file, inspect_weights

        shards = shard_files(path)
        if shards is not None:                       # a sharded safetensors DiT (index + shards)
            for f in shards:
                check_safetensors_file(f, published)
            src, fmt = open_dit_source(path), "safetensors shards"
        else:
            info = inspect_weights(path, published)
            src, fmt = TensorSource.from_state_dict(info.state, path), info.format
        shapes, extras, _ = check_dit_header(src, path)
        check_dit_fits_family(family, bool(extras))
        counts: dict[str, int] = {}
        for h in shapes.values():
            name = str(h.dtype).replace("torch.", "")
            counts[name] = counts.get(name, 0) + int(h.shape.numel())
        return fmt, max(counts, key=counts.get) if counts else None
    return check


def _check_wan_vae(path: Path):
    from .backbones.wan import keys as K
    from .backbones.wan.loading import check_vae_keys
    from .safeload import inspect_weights

    info = inspect_weights(path, paths.PUBLISHED["wan"])
    check_vae_keys(K.strip_prefix(info.state.keys())[1].keys(), path)
    return info.format, info.dtype


def _check_umt5(path: Path):
    from .backbones.wan.loading import _umt5_config_from_keys
    from .safeload import inspect_weights

    info = inspect_weights(path, paths.PUBLISHED["wan"])
    _umt5_config_from_keys(info.state)
    return info.format, info.dtype


def _check_face_parsing(path: Path):
    from .backbones.wan.refprep import FaceParser, PARSING_PUBLISHED
    from .safeload import check_model_folder_files

    check_model_folder_files(path, PARSING_PUBLISHED)
    FaceParser(path, "cpu")                                   # the loader's file and label checks
    return "transformers folder", _folder_dtype(path)


def _exists(path: Path):
    return ("onnx" if path.suffix == ".onnx" else path.suffix.lstrip(".") or "folder"), None


def _header_only(published_key: str):
    def check(path: Path):
        from .safeload import inspect_weights

        info = inspect_weights(path, paths.PUBLISHED[published_key])
        return info.format, info.dtype
    return check


def _check_face_parsing_files(path: Path):
    from .backbones.wan.refprep import PARSING_PUBLISHED
    from .safeload import check_model_folder_files

    if not (path / "config.json").is_file():
        raise MissingModelError("the face-parsing config.json", [path / "config.json"], PARSING_PUBLISHED)
    check_model_folder_files(path, PARSING_PUBLISHED)
    return "transformers folder", _folder_dtype(path)


# ------------------------------------------------------------------------------------- requirements of loaders
def face_stack(consisid_folder: Optional[Path] = None) -> list[Requirement]:
    """What 'IDVideo Face Models Loader' opens (faces/locate.py's search lists, in its order)."""
    from .faces import locate as L

    pub = paths.PUBLISHED
    return [
        Requirement(f"antelopev2/{L.SCRFD_FILE} (face detector)", "onnx detector",
                    L.antelope_candidates(L.SCRFD_FILE, consisid_folder), pub["antelopev2"], _check_onnx(_scrfd),
                    hint=L._nested_hint),
        Requirement(f"antelopev2/{L.ARCFACE_FILE} (face recogniser)", "onnx recogniser",
                    L.antelope_candidates(L.ARCFACE_FILE, consisid_folder), pub["antelopev2"],
                    _check_onnx(_arcface), hint=L._nested_hint),
        Requirement(f"{L.RETINAFACE_FILE} (face aligner)", "facexlib RetinaFace",
                    L.facexlib_candidates(L.RETINAFACE_FILE, consisid_folder), pub["facexlib"],
                    _check_facexlib("load_retinaface"), quick=_header_only("facexlib")),
        Requirement(f"{L.BISENET_FILE} (face parser)", "facexlib BiSeNet",
                    L.facexlib_candidates(L.BISENET_FILE, consisid_folder), pub["facexlib"],
                    _check_facexlib("load_bisenet"), quick=_header_only("facexlib")),
        Requirement(f"{L.EVA_FILE} (EVA-CLIP face encoder)", "EVA02-CLIP", L.eva_candidates(consisid_folder),
                    pub["eva_clip"], _check_eva, quick=_check_eva),
    ]


def consisid_model(name: str) -> list[Requirement]:
    return [Requirement(f"ConsisID model folder '{name}'", "ConsisID diffusers folder",
                        paths.model_folder_candidates("consisid", name), paths.PUBLISHED["consisid"],
                        _check_consisid_folder, folder=True, quick=_check_consisid_folder)]


def wan_model(family: str, base: Optional[str], dit: Optional[str], vae: Optional[str],
              text_encoder: Optional[str]) -> list[Requirement]:
    """What 'IDVideo Wan Model Loader' opens: the same folder keys as :func:`idvideo_core.runtime.load_wan`."""
    from .runtime import WAN_FILE_KEYS, wan_published

    pub = paths.PUBLISHED
    out = []
    if base:
        out.append(Requirement(f"Wan2.1 base folder '{base}'", "Wan diffusers folder",
                               paths.model_folder_candidates("wan", base), pub["wan"], _check_wan_folder,
                               folder=True, quick=_check_wan_folder))
    files = {"dit": (dit, "DiT weights", _check_wan_dit(family, wan_published(family)), wan_published(family)),
             "vae": (vae, "Wan VAE", _check_wan_vae, pub["wan"]),
             "text_encoder": (text_encoder, "UMT5 text encoder", _check_umt5, pub["wan"])}
    for part, (name, label, check, where) in files.items():
        if name:
            out.append(Requirement(f"{label} '{name}'", label, paths.file_candidates(WAN_FILE_KEYS[part], name),
                                   where, check, quick=check))
    return out


def scoring_models() -> list[Requirement]:
    """What 'IDVideo Identity Score' opens (evaluate/models.py's search lists). All optional: without buffalo_l the
    score uses antelopev2 (labelled FALLBACK), without CurricularFace / CLIP those scores are skipped with a note."""
    from .evaluate.models import CLIP_FOLDER, CUR_FILE, clip_candidates, curricularface_candidates
    from .faces import locate as L

    pub = paths.PUBLISHED
    return [
        Requirement(f"buffalo_l/{L.BUFFALO_DET_FILE} (scoring detector; else antelopev2, labelled FALLBACK)",
                    "onnx detector", L.buffalo_candidates(L.BUFFALO_DET_FILE), pub["buffalo_l"], _check_onnx(_scrfd),
                    optional=True),
        Requirement(f"buffalo_l/{L.BUFFALO_REC_FILE} (scoring recogniser; else antelopev2)", "onnx recogniser",
                    L.buffalo_candidates(L.BUFFALO_REC_FILE), pub["buffalo_l"], _check_onnx(_arcface),
                    optional=True),
        Requirement(f"{CUR_FILE} (FaceSim-Cur; skipped without it)", "CurricularFace IR-101",
                    curricularface_candidates(), pub["curricularface"], _check_curricularface,
                    quick=_header_only("curricularface"), optional=True),
        Requirement(f"{CLIP_FOLDER}/ (CLIPScore; skipped without it)", "CLIP folder", clip_candidates(),
                    pub["clip_score"], _check_clip_folder, folder=True, optional=True),
    ]


def _check_curricularface(path: Path):
    from .evaluate.curricularface import load_curricularface
    from .safeload import inspect_weights

    info = inspect_weights(path, paths.PUBLISHED["curricularface"])
    load_curricularface(path, "cpu")                 # the loader's key and shape checks
    return info.format, info.dtype


def _check_clip_folder(path: Path):
    from .safeload import check_model_folder_files

    if not (path / "config.json").is_file():
        raise MissingModelError("the CLIP config.json", [path / "config.json"], paths.PUBLISHED["clip_score"])
    check_model_folder_files(path, paths.PUBLISHED["clip_score"])
    return "transformers folder", _folder_dtype(path)


def concatid_cogvideox_model(weights: Optional[str], base: Optional[str], vae: Optional[str],
                             text_encoder: Optional[str]) -> list[Requirement]:
    """What 'IDVideo Concat-ID CogVideoX Loader' opens (its loader's search lists and checks)."""
    from .backbones.concatid_cogvideox import loading as CL

    out = []
    if weights:
        out.append(Requirement(f"Concat-ID-CogVideoX weights '{weights}'", "SAT folder or safetensors",
                               [Path(d) / weights for k in CL.DIT_KEYS for d in paths.search_dirs(k)],
                               CL.PUBLISHED_DIT, _check_concatid_cog_dit, folder=not weights.endswith(".safetensors"),
                               quick=_check_concatid_cog_dit))
    if base:
        out.append(Requirement(f"CogVideoX-5B base folder '{base}' (T5-XXL, tokenizer, VAE)", "CogVideoX folder",
                               [Path(d) / base for key in ("cogvideox", "consisid") for d in paths.search_dirs(key)],
                               CL.PUBLISHED_BASE, _check_cog_base, folder=True, quick=_check_cog_base))
    for name, key, label in ((vae, "vae", "CogVideoX VAE"), (text_encoder, "text_encoders", "T5-XXL text encoder")):
        if name:
            out.append(Requirement(f"{label} '{name}'", label, paths.file_candidates((key,), name), CL.PUBLISHED_BASE,
                                   _header_only_at(CL.PUBLISHED_BASE), quick=_header_only_at(CL.PUBLISHED_BASE)))
    return out


def _check_concatid_cog_dit(path: Path):
    from .backbones.concatid_cogvideox.loading import resolve_dit

    found = resolve_dit(path)                        # the loader's own layout check (SAT 'latest' or .safetensors)
    if found.is_file():
        from .safeload import inspect_weights

        info = inspect_weights(found)
        return info.format, info.dtype
    return "SAT checkpoint folder", None


def _check_cog_base(path: Path):
    from .backbones.concatid_cogvideox.loading import PUBLISHED_BASE, check_base_folder
    from .safeload import check_model_folder_files

    check_base_folder(path)
    for comp in ("text_encoder", "vae"):
        check_model_folder_files(path / comp, PUBLISHED_BASE)
    return "diffusers folder", _folder_dtype(path / "vae")


def _header_only_at(published: str):
    def check(path: Path):
        from .safeload import inspect_weights

        info = inspect_weights(path, published)
        return info.format, info.dtype
    return check


def face_parsing() -> list[Requirement]:
    from .backbones.wan.refprep import PARSING_PUBLISHED, face_parsing_candidates

    return [Requirement("face-parsing folder (Concat-ID face masks)", "Segformer face parser",
                        face_parsing_candidates(), PARSING_PUBLISHED, _check_face_parsing, folder=True,
                        quick=_check_face_parsing_files)]


# --------------------------------------------------------------------------------------------------- evaluate
def _partial(cands: list[Path]) -> Optional[Path]:
    for c in cands:
        for suffix in PARTIAL_SUFFIXES:
            p = c.with_name(c.name + suffix)
            if p.exists():
                return p
    return None


def evaluate(req: Requirement, quick: bool = False) -> FileReport:
    """Search and check one requirement. ``quick``: only the checks that read no weights (headers, configs, zip
    directories): what ``generate`` runs before loading anything; the face models' ONNX files are then opened by the
    face models loader itself, first."""
    exists = (lambda p: p.is_dir()) if req.folder else (lambda p: p.is_file())
    rep = FileReport(what=req.what, kind=req.kind, published=req.published, optional=req.optional,
                     searched=[Searched(str(c), origin_of(c), exists(c)) for c in req.candidates])
    hit = next((c for c in req.candidates if exists(c)), None)
    put_at = str(req.candidates[0]) if req.candidates else None
    if hit is None:
        rep.put_at = put_at
        part = _partial(req.candidates)
        if part is not None:
            rep.status, rep.path = PARTIAL, str(part)
            rep.problem = f"only a partial download was found: {part}"
            rep.fix = f"Finish the download (or download again from {req.published}), then name it {put_at}."
        else:
            rep.problem = "not found in any folder searched"
            rep.fix = req.hint(req.candidates) or f"Download it (see 'published at') and put it at {put_at}."
        return rep
    rep.path, rep.size_bytes = str(hit), _size(hit)
    try:
        check = (req.quick or _exists) if quick else req.check
        rep.format, rep.dtype = check(hit)
        rep.status = OK
        return rep
    except MissingModelError as err:                # a part of a folder is missing
        rep.status = DAMAGED
        rep.problem = "incomplete: " + err.problem.replace("\n", " ")
        rep.fix = f"Download the whole folder again from {req.published} into {hit}."
        rep.put_at = str(hit)
        return rep
    except IDVideoError as err:
        rep.status = {UnsafeFileError: UNSAFE, WrongModelError: WRONG}.get(type(err), DAMAGED)
        rep.problem = err.problem.replace("\n", " ")
        rep.fix = err.fix
    rep.put_at = str(hit)
    return rep


# --------------------------------------------------------------------------------------------------- templates
def pack_node_classes() -> dict:
    """The pack's ``NODE_CLASS_MAPPINGS``, imported by path (the repository root's ``nodes`` package would clash
    with ComfyUI's ``nodes`` module, and the CLI may run from any folder)."""
    import sys

    name = "idvideo_pack_nodes"
    if name not in sys.modules:
        root = Path(__file__).resolve().parents[1] / "nodes"
        spec = importlib.util.spec_from_file_location(name, root / "__init__.py",
                                                      submodule_search_locations=[str(root)])
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        try:
            spec.loader.exec_module(mod)
        except BaseException:
            del sys.modules[name]
            raise
    return sys.modules[name].NODE_CLASS_MAPPINGS


def loader_nodes(workflow: dict) -> list[tuple[str, dict]]:
    """(node type, widget values by name) of every pack node in a UI-format workflow."""
    from .workflow.check import widget_values
    from .workflow.schema import node_schemas
    from .workflow.ui_format import parse_ui_workflow

    classes = pack_node_classes()
    schemas = node_schemas(classes)
    out = []
    for node in parse_ui_workflow(workflow).nodes.values():
        if node.type in schemas and node.mode == 0:
            out.append((node.type, widget_values(node, schemas[node.type], [])))
    return out


def _module_attr(node_type: str, attr: str, default):
    cls = pack_node_classes()[node_type]
    return getattr(importlib.import_module(cls.__module__), attr, default)


def requirements_of(nodes: list[tuple[str, dict]]) -> tuple[list[Requirement], list[str]]:
    """(requirements, model families) of a set of loader nodes with their widget values."""
    reqs: list[Requirement] = []
    families: list[str] = []
    for node_type, w in nodes:
        if node_type == "IDVFaceModelsLoader":
            reqs += face_stack()
        elif node_type == "IDVConsisIDModelLoader":
            name = str(w.get("model") or "ConsisID-preview")
            if name.startswith("("):
                name = "ConsisID-preview"
            reqs += consisid_model(name)
            families.append("consisid")
        elif node_type == "IDVWanModelLoader":
            labels = _module_attr(node_type, "FAMILY_LABELS", {})
            skip = {_module_attr(node_type, "FROM_BASE", None), _module_attr(node_type, "NONE", None), None, ""}
            family = labels.get(w.get("family"), w.get("family"))
            pick = {k: (None if w.get(k) in skip else str(w.get(k)))
                    for k in ("base_folder", "dit", "vae", "text_encoder")}
            reqs += wan_model(family, pick["base_folder"], pick["dit"], pick["vae"], pick["text_encoder"])
            families.append(family)
        elif node_type == "IDVConcatIDCogVideoXLoader":
            skip = {_module_attr(node_type, n, None) for n in ("NO_DIT", "NO_BASE", "FROM_BASE", "NONE")} | {None, ""}
            pick = {k: (None if w.get(k) in skip else str(w.get(k)))
                    for k in ("weights", "base_folder", "vae", "text_encoder")}
            reqs += concatid_cogvideox_model(pick["weights"], pick["base_folder"], pick["vae"], pick["text_encoder"])
            families.append(_module_attr(node_type, "FAMILY", None) or _cog_family())
        elif node_type == "IDVIdentityScore":
            reqs += scoring_models()
        elif node_type == "IDVMultiIdentityConcat":
            modes = _module_attr(node_type, "FACE_MODES", ())
            if modes and w.get("face_mode") == modes[0]:
                reqs += face_parsing()
    return reqs, families


def _cog_family() -> str:
    from .backbones.concatid_cogvideox import FAMILY

    return FAMILY


def templates(folder: Path = TEMPLATES_DIR) -> dict[str, list[tuple[str, dict]]]:
    return {p.stem: loader_nodes(json.loads(p.read_text(encoding="utf-8"))) for p in sorted(folder.glob("*.json"))}


#: The loader nodes whose widget values say which model family a template runs.
MODEL_LOADERS = ("IDVConsisIDModelLoader", "IDVWanModelLoader", "IDVConcatIDCogVideoXLoader")
#: families run through another family's template (filled by :func:`family_templates`).
@dataclass(frozen=True)
class FamilyTemplate:
    """The template that runs a family from the command line; ``borrowed``: made for another Wan family (its DiT
    file must then be named)."""

    path: Optional[Path]
    borrowed: bool = False


def family_template_table(folder: Path = TEMPLATES_DIR) -> dict[str, FamilyTemplate]:
    """Each model family and the template that runs it: its plainest one (fewest nodes, so no scoring or seed-list
    extras). A Wan family no template is made for borrows the plainest Wan template."""
    out: dict[str, FamilyTemplate] = {}
    sizes: dict[str, int] = {}
    for p in sorted(folder.glob("*.json")):
        nodes = loader_nodes(json.loads(p.read_text(encoding="utf-8")))
        _, fams = requirements_of([n for n in nodes if n[0] in MODEL_LOADERS])
        for fam in fams:
            if fam not in out or len(nodes) < sizes[fam]:
                out[fam], sizes[fam] = FamilyTemplate(p), len(nodes)
    wan_families = set(_module_attr("IDVWanModelLoader", "FAMILY_LABELS", {}).values())
    wan = [(sizes[f], t.path) for f, t in out.items() if f in wan_families]
    wan_tpl = min(wan, key=lambda t: t[0])[1] if wan else None
    for fam in sorted(wan_families - set(out)):
        out[fam] = FamilyTemplate(wan_tpl, borrowed=True)
    return out


def family_templates(folder: Path = TEMPLATES_DIR) -> dict[str, Optional[Path]]:
    """:func:`family_template_table` as family → template path."""
    return {fam: t.path for fam, t in family_template_table(folder).items()}


def family_nodes(tpls: dict[str, list[tuple[str, dict]]]) -> dict[str, list[tuple[str, dict]]]:
    """Each model family's loader nodes: those of its plainest template (:func:`family_templates`); a Wan family no
    template is made for gets its Wan loader alone, with the other templates' base files."""
    out: dict[str, list[tuple[str, dict]]] = {}
    for fam, t in family_template_table().items():
        if t.path is not None and not t.borrowed and t.path.stem in tpls:
            out[fam] = tpls[t.path.stem]
    wan_base = next((dict(w) for nodes in tpls.values() for t, w in nodes if t == "IDVWanModelLoader"), None)
    if wan_base is not None:
        labels = _module_attr("IDVWanModelLoader", "FAMILY_LABELS", {})
        for label, fam in labels.items():
            if fam not in out:
                out[fam] = [("IDVWanModelLoader", dict(wan_base, family=label,
                                                      dit=_module_attr("IDVWanModelLoader", "FROM_BASE", None)))]
    return out


@dataclass
class Report:
    name: str
    families: list[str]
    files: list[FileReport]

    @property
    def runnable(self) -> bool:
        return not any(f.blocking for f in self.files)


def build(template: Optional[str] = None, model: Optional[str] = None) -> tuple[list[Report], list[Report]]:
    """(template reports, family reports), restricted to one template or family when named."""
    from .errors import InputError

    tpls = templates()
    fams = family_nodes(tpls)
    if template is not None:
        key = Path(template).stem
        if key not in tpls:
            raise InputError(f"Unknown template '{template}'.", f"Choose one of: {', '.join(tpls)}.")
        tpls = {key: tpls[key]}
        fams = {}
    if model is not None:
        if model not in fams:
            raise InputError(f"Unknown model family '{model}'.", f"Choose one of: {', '.join(fams)}.")
        fams, tpls = {model: fams[model]}, {}
    cache: dict[tuple, FileReport] = {}

    def reports(groups):
        out = []
        for name, nodes in groups.items():
            reqs, families = requirements_of(nodes)
            files = []
            for r in reqs:
                key = (r.what, tuple(map(str, r.candidates)), r.kind)
                if key not in cache:
                    cache[key] = evaluate(r)
                files.append(cache[key])
            out.append(Report(name, families, files))
        return out

    return reports(tpls), reports(fams)


def search_table() -> list[dict]:
    """Every folder key IDVideo reads with its folders in search order (plus ConsisID's face_encoder/ folders)."""
    from .faces.locate import face_encoder_dirs

    rows = [{"key": key, "folders": [{"path": str(p), "origin": o, "exists": p.is_dir()}
                                     for p, o in paths.search_locations(key)]} for key in paths.FOLDER_KEYS]
    rows.append({"key": "face_encoder", "folders": [{"path": str(p), "origin": "ConsisID face_encoder/",
                                                     "exists": p.is_dir()} for p in face_encoder_dirs()]})
    return rows


def to_json(tpl_reports: list[Report], fam_reports: list[Report]) -> dict:
    def rep(r: Report):
        return {"runnable": r.runnable, "families": r.families, "files": [asdict(f) for f in r.files]}

    return {"comfyui": str(paths.comfyui_root()) if paths.comfyui_root() else None,
            "search": search_table(),
            "templates": {r.name: rep(r) for r in tpl_reports},
            "families": {r.name: rep(r) for r in fam_reports}}


def _human_size(n: Optional[int]) -> str:
    if n is None:
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def to_text(tpl_reports: list[Report], fam_reports: list[Report], verbose_search: bool = True) -> str:
    lines = []
    root = paths.comfyui_root()
    lines.append(f"ComfyUI install: {root}" if root else
                 "ComfyUI install: none found (pass --comfyui PATH to search its models folder and "
                 "extra_model_paths.yaml)")
    if verbose_search:
        lines.append("\nFolders searched, in order:")
        for row in search_table():
            lines.append(f"  {row['key']}:")
            for f in row["folders"] or [{"path": "(each ConsisID folder's face_encoder/; no ConsisID folder found yet)",
                                         "origin": "ConsisID face_encoder/", "exists": True}]:
                mark = "" if f["exists"] else "  (does not exist)"
                lines.append(f"    - {f['path']}  [{f['origin']}]{mark}")
    for title, group in (("Template", tpl_reports), ("Model family", fam_reports)):
        for r in group:
            state = "READY" if r.runnable else "NOT READY"
            fam = f" ({', '.join(r.families)})" if r.families and title == "Template" else ""
            lines.append(f"\n{title} {r.name}{fam}: {state}")
            for f in r.files:
                if f.ok:
                    lines.append(f"  [ok]      {f.what}: {f.path} ({f.format}, {f.dtype}, {_human_size(f.size_bytes)})")
                    continue
                lines.append(f"  [{f.status}{', optional' if f.optional else ''}] {f.what}")
                if f.path:
                    lines.append(f"            found: {f.path}")
                if f.problem:
                    lines.append(f"            problem: {f.problem}")
                lines.append("            searched, in order:")
                for s in f.searched:
                    lines.append(f"              - {s.path}  [{s.origin}]")
                lines.append(f"            published at: {f.published}")
                if f.put_at:
                    lines.append(f"            put it at: {f.put_at}")
                if f.fix:
                    lines.append(f"            fix: {f.fix}")
    return "\n".join(lines)


def main(args) -> int:
    """The ``models`` subcommand. Exit 0 only when the named template/family (or, unnamed, every one) can run."""
    paths.use_comfyui(args.comfyui, args.extra_model_paths_config or ())
    tpl, fam = build(args.template, args.model)
    if args.json:
        print(json.dumps(to_json(tpl, fam), indent=2))
    else:
        print(to_text(tpl, fam))
    return 0 if all(r.runnable for r in tpl + fam) else 1
