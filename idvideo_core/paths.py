"""Where model files live: one answer to "where is this file", shared by every loader.

Folders are looked up through ComfyUI's ``folder_paths`` keys (so ``extra_model_paths.yaml`` works) when the pack
runs inside ComfyUI, and under ``IDVIDEO_MODELS_DIR`` (default ``./models``) otherwise. A missing file is an
:class:`~idvideo_core.errors.MissingModelError` listing every path searched and where the file is published.
Nothing is ever downloaded.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from . import bridge
from .errors import MissingModelError

# Folder keys IDVideo reads, with their default sub-folder of ComfyUI's models directory and file extensions.
FOLDER_KEYS: dict[str, tuple[str, tuple[str, ...]]] = {
    "insightface": ("insightface", (".onnx",)),
    "facexlib": ("facexlib", (".pth", ".pt", ".safetensors")),
    "clip_vision": ("clip_vision", (".pt", ".pth", ".safetensors", ".bin")),
    "idvideo": ("idvideo", ()),
    "consisid": ("consisid", ()),
    "wan": ("wan", ()),
    "concatid": ("concatid", (".pt", ".pth", ".safetensors")),
    "cogvideox": ("cogvideox", ()),
    "diffusion_models": ("diffusion_models", (".safetensors", ".pt", ".pth", ".ckpt")),
    "vae": ("vae", (".safetensors", ".pt", ".pth", ".ckpt")),
    "text_encoders": ("text_encoders", (".safetensors", ".pt", ".bin")),
    "loras": ("loras", (".safetensors",)),
}

# Where each family of files is published (shown in "missing file" messages).
PUBLISHED = {
    "antelopev2": "the insightface model zoo (antelopev2.zip), also inside "
                  "huggingface.co/BestWishYsh/ConsisID-preview under face_encoder/models/antelopev2",
    "facexlib": "github.com/xinntao/facexlib releases, also huggingface.co/BestWishYsh/ConsisID-preview face_encoder/",
    "eva_clip": "huggingface.co/BestWishYsh/ConsisID-preview (face_encoder/EVA02_CLIP_L_336_psz14_s6B.pt) or "
                "huggingface.co/QuanSun/EVA-CLIP",
    "consisid": "huggingface.co/BestWishYsh/ConsisID-preview (download the whole repository as a folder)",
    "buffalo_l": "the insightface model zoo (buffalo_l.zip, insightface's default pack), also inside "
                 "huggingface.co/BestWishYsh/ConsisID-preview under face_encoder/models/buffalo_l",
    "curricularface": "huggingface.co/BestWishYsh/OpenS2V-Weight (glint360k_curricular_face_r101_backbone.bin), also "
                      "inside huggingface.co/BestWishYsh/ConsisID-preview under face_encoder/",
    "clip_score": "huggingface.co/openai/clip-vit-base-patch32 (the whole repository as a folder)",
    "wan": "huggingface.co/Wan-AI/Wan2.1-T2V-1.3B-Diffusers, or the ComfyUI repackaged single files "
           "(huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged)",
    "concatid_wan": "huggingface.co/yongzhong/Concat-ID-Wan",
    "concatid_cogvideox": "modelscope.cn/models/yongzhong/Concat-ID (folders single-identity/ and two-identities/) "
                          "and modelscope.cn/models/yongzhong/Concat-ID-pre-training",
    "cogvideox": "huggingface.co/THUDM/CogVideoX-5b (text_encoder/, tokenizer/, vae/; the ConsisID-preview folder "
                 "carries the same T5 and VAE)",
    "phantom": "huggingface.co/bytedance-research/Phantom",
}


def register_folders() -> None:
    """Register every IDVideo folder key with ComfyUI (no-op outside ComfyUI)."""
    for key, (sub, exts) in FOLDER_KEYS.items():
        bridge.register_folder(key, sub, exts)


def search_dirs(key: str) -> list[Path]:
    """Every folder searched for ``key``, in order (see :func:`search_locations`)."""
    return [p for p, _origin in search_locations(key)]


# ------------------------------------------------------------------------------- ComfyUI folders outside ComfyUI
# The command line (``generate``, ``models``) can search a ComfyUI install's folders the way ComfyUI itself would:
# ``<ComfyUI>/models/<sub>``, then the ``extra_model_paths.yaml`` entries, then ``IDVIDEO_MODELS_DIR``.
_COMFYUI: dict = {"root": None, "yamls": ()}
# ComfyUI's own names for two of its folders (folder_paths.map_legacy) and the default sub-folders of its keys.
COMFY_LEGACY_KEYS = {"unet": "diffusion_models", "clip": "text_encoders"}
COMFY_DEFAULT_SUBDIRS = {"diffusion_models": ("unet", "diffusion_models"), "text_encoders": ("text_encoders", "clip")}


_EXTRA_FOLDERS: dict[str, list[tuple[Path, str]]] = {}


def add_search_folder(key: str, folder: Path | str, origin: str) -> None:
    """Search ``folder`` first for ``key`` (the CLI: the folder of a file given by path, e.g. ``--dit``)."""
    entry = (Path(folder), origin)
    if entry not in _EXTRA_FOLDERS.setdefault(key, []):
        _EXTRA_FOLDERS[key].append(entry)


def clear_search_folders() -> None:
    """Forget the folders added with :func:`add_search_folder` (each CLI run starts clean)."""
    _EXTRA_FOLDERS.clear()


def use_comfyui(root: Path | str | None, extra_yamls: Sequence[Path | str] = ()) -> None:
    """Search the model folders of the ComfyUI install at ``root`` (the CLI's ``--comfyui``); None = auto-detect."""
    _COMFYUI["root"] = Path(root).expanduser().resolve() if root else None
    _COMFYUI["yamls"] = tuple(Path(y).expanduser().resolve() for y in extra_yamls)


def comfyui_root() -> Path | None:
    """The ComfyUI install whose folders the CLI searches: ``--comfyui``, else the one this pack sits in
    (``<ComfyUI>/custom_nodes/<pack>``), else None."""
    if _COMFYUI["root"] is not None:
        return _COMFYUI["root"]
    import os

    if os.environ.get("IDVIDEO_NO_COMFY") == "1":     # the test suite: only the folders it sets up
        return None

    # not resolved: a symlinked pack counts where it is linked (the shell's $PWD keeps that path when run from there)
    for pack in (Path(os.path.abspath(__file__)).parents[1], Path(os.environ.get("PWD") or ".")):
        if pack.parent.name == "custom_nodes" and (pack.parent.parent / "folder_paths.py").is_file():
            return pack.parent.parent
    return None


def extra_model_paths_files(root: Path | None = None) -> list[Path]:
    """The yaml files ComfyUI reads: ``<ComfyUI>/extra_model_paths.yaml`` (when present) and ``--extra-model-paths``."""
    root = root if root is not None else comfyui_root()
    out = [root / "extra_model_paths.yaml"] if root is not None and (root / "extra_model_paths.yaml").is_file() else []
    return out + [y for y in _COMFYUI["yamls"] if y not in out]


def yaml_folders(yaml_path: Path, key: str) -> list[Path]:
    """Folders an ``extra_model_paths.yaml`` gives ``key``, read as ComfyUI's ``utils/extra_config.py`` does
    (``base_path`` joined, relative paths against the yaml's folder, one path per line, legacy names mapped)."""
    import os

    import yaml

    from .errors import InputError

    try:
        data = yaml.safe_load(Path(yaml_path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"Cannot read {yaml_path}: {exc}", "Fix the YAML (ComfyUI would not start with it either).") \
            from exc
    here = Path(yaml_path).parent
    out: list[Path] = []
    for section in data.values() if isinstance(data, dict) else []:
        if not isinstance(section, dict):
            continue
        base = section.get("base_path")
        if base:
            base = os.path.expandvars(os.path.expanduser(str(base)))
            if not os.path.isabs(base):
                base = os.path.abspath(os.path.join(here, base))
        for name, value in section.items():
            if name in ("base_path", "is_default") or COMFY_LEGACY_KEYS.get(name, name) != key or value is None:
                continue
            for line in str(value).split("\n"):
                line = os.path.expandvars(os.path.expanduser(line.strip()))
                if not line:
                    continue
                full = os.path.join(base, line) if base else (line if os.path.isabs(line) else os.path.join(here, line))
                out.append(Path(os.path.normpath(full)))
    return out


def search_locations(key: str) -> list[tuple[Path, str]]:
    """(folder, where that folder comes from) for ``key``, in search order, without duplicates.

    Inside ComfyUI: ``folder_paths`` (its models folder and every ``extra_model_paths.yaml`` entry). Outside (the
    CLI): the ComfyUI install's ``models/<sub>`` and yaml entries when one is known (:func:`comfyui_root`), then
    ``IDVIDEO_MODELS_DIR/<key>``.
    """
    out: list[tuple[Path, str]] = list(_EXTRA_FOLDERS.get(key, ()))
    if bridge.in_comfyui():
        base = bridge.models_dir()
        for p in bridge.folder_paths_for(key):
            out.append((p, "ComfyUI models folder" if base in p.parents else "extra_model_paths.yaml"))
    else:
        root = comfyui_root()
        if root is not None:
            subs = COMFY_DEFAULT_SUBDIRS.get(key, (FOLDER_KEYS.get(key, (key, ()))[0],))
            out += [(root / "models" / s, f"ComfyUI models folder ({root})") for s in subs]
        for y in extra_model_paths_files(root):
            out += [(p, f"extra_model_paths.yaml ({y})") for p in yaml_folders(y, key)]
        import os

        label = "IDVIDEO_MODELS_DIR" if os.environ.get("IDVIDEO_MODELS_DIR") else "IDVIDEO_MODELS_DIR (not set: ./models)"
        out += [(p, label) for p in bridge.folder_paths_for(key)]
    seen: set[str] = set()
    unique = []
    for p, origin in out:
        if str(p) not in seen:
            seen.add(str(p))
            unique.append((p, origin))
    return unique


def candidate_paths(candidates: Sequence[tuple[str, str]], extra_dirs: Iterable[Path | str] = ()) -> list[Path]:
    """Expand ``(folder_key, relative_path)`` pairs (and explicit folders + relative path) into full paths, in order."""
    out: list[Path] = []
    for key, rel in candidates:
        for d in search_dirs(key):
            out.append(Path(d) / rel)
    for d in extra_dirs:
        for _key, rel in candidates[:1]:
            out.append(Path(d) / Path(rel).name)
    seen: set[str] = set()
    unique = []
    for p in out:
        s = str(p)
        if s not in seen:
            seen.add(s)
            unique.append(p)
    return unique


def find_file(what: str, candidates: Sequence[Path | str], published: str | None = None,
              extra: str | None = None) -> Path:
    """Return the first existing file among ``candidates`` or raise a MissingModelError listing them all."""
    for c in candidates:
        p = Path(c)
        if p.is_file():
            return p
    raise MissingModelError(what, candidates, published, extra)


def find_dir(what: str, candidates: Sequence[Path | str], must_contain: Sequence[str] = (),
             published: str | None = None, extra: str | None = None) -> Path:
    """Return the first existing folder containing all of ``must_contain``."""
    for c in candidates:
        p = Path(c)
        if p.is_dir() and all((p / m).exists() for m in must_contain):
            return p
    raise MissingModelError(what, candidates, published, extra)


def consisid_folders() -> list[Path]:
    """Every ConsisID-style diffusers folder under the ``consisid`` key (each may carry ``face_encoder/``)."""
    found: list[Path] = []
    for d in search_dirs("consisid"):
        d = Path(d)
        if not d.is_dir():
            continue
        if (d / "model_index.json").exists() or (d / "face_encoder").is_dir():
            found.append(d)
        for sub in sorted(d.iterdir()):
            if sub.is_dir() and ((sub / "model_index.json").exists() or (sub / "face_encoder").is_dir()):
                found.append(sub)
    return found


def list_model_folders(key: str, marker: str = "model_index.json") -> list[str]:
    """Names (relative to their search folder) of sub-folders under ``key`` that contain ``marker``."""
    names: list[str] = []
    for d in search_dirs(key):
        d = Path(d)
        if not d.is_dir():
            continue
        for sub in sorted(d.iterdir()):
            if sub.is_dir() and (sub / marker).exists() and sub.name not in names:
                names.append(sub.name)
    return names


def resolve_model_folder(key: str, name: str, marker: str = "model_index.json", published: str | None = None
                         ) -> Path:
    """An absolute folder is used as is; a name is looked up under every folder of ``key``."""
    p = Path(name).expanduser()
    if p.is_absolute():
        return find_dir(f"the model folder '{name}'", [p], published=published)
    if ".." in p.parts:
        from .errors import InputError

        raise InputError(f"The model folder name '{name}' is not a folder inside ComfyUI's model folders.",
                         "Pick a folder from the list.")
    return find_dir(f"the model folder '{name}'", model_folder_candidates(key, name), published=published)


def model_folder_candidates(key: str, name: str) -> list[Path]:
    """Where a model folder chosen by name is looked for, in order."""
    return [Path(d) / name for d in search_dirs(key)]


def file_candidates(keys: Sequence[str], name: str) -> list[Path]:
    """Where a file chosen in a loader combo is looked for, in order."""
    return [Path(d) / name for k in keys for d in search_dirs(k)]


WEIGHT_EXTS = (".safetensors", ".pt", ".pth", ".ckpt", ".bin")


def list_files(keys: Sequence[str], exts: Sequence[str] = WEIGHT_EXTS) -> list[str]:
    """File names (relative to their folder) under the folders of ``keys``, for loader combos."""
    names: list[str] = []
    for key in keys:
        for d in search_dirs(key):
            d = Path(d)
            if not d.is_dir():
                continue
            for f in sorted(d.rglob("*")):
                rel = f.relative_to(d).as_posix()
                if (f.is_file() and f.suffix in exts and rel not in names and not rel.startswith(".")
                        and not (f.parent / "config.json").exists()):  # skip parts of HF model folders
                    names.append(rel)
    return names


def resolve_file(keys: Sequence[str], name: str, what: str, published: str | None = None) -> Path:
    """A file chosen in a combo: looked up under every folder of ``keys``; refuses names escaping them."""
    rel = Path(name)
    if rel.is_absolute() or ".." in rel.parts:
        from .errors import InputError

        raise InputError(f"The model name '{name}' is not a file name inside ComfyUI's model folders.",
                         "Pick a file from the list.")
    return find_file(what, file_candidates(keys, name), published)
