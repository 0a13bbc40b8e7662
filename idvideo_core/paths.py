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
    return bridge.folder_paths_for(key)


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
    return find_dir(f"the model folder '{name}'", [Path(d) / name for d in search_dirs(key)],
                    published=published)


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
    return find_file(what, [Path(d) / rel for k in keys for d in search_dirs(k)], published)
