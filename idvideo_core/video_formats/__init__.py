"""Video formats as data.

Every ``*.json`` file in this folder describes one output format (container, codec, pixel format, encoder options,
file extension, whether prompt/workflow metadata can be embedded). Adding a format means adding a file; the node's
``format`` combo lists whatever is here. Files are validated when loaded so a broken format file is reported by name
instead of failing half-way through an encode.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Optional

from ..errors import InputError, OutputWriteError, option

FORMATS_DIR = Path(__file__).resolve().parent

#: Encoder back-ends a format file may name (see :mod:`.encoders`).
ENCODERS = ("pyav", "pillow-gif", "png-sequence")


@dataclass(frozen=True)
class CrfRange:
    """The constant-quality knob of a codec: lower = better quality, bigger file."""

    option: str
    default: int
    min: int
    max: int


@dataclass(frozen=True)
class VideoFormat:
    """One output format, loaded from ``<name>.json``."""

    name: str
    description: str
    encoder: str                      # one of ENCODERS
    container: str                    # PyAV/FFmpeg muxer name ("mp4", "webm") or "gif"
    extension: str                    # without the dot
    mime: str                         # for the UI preview ("video/mp4", "image/gif")
    codec: str                        # PyAV encoder name ("libx264", "libvpx-vp9")
    pix_fmt: str
    even_dimensions: bool             # pad odd width/height by one edge pixel (H.264 4:2:0 cannot encode odd sizes)
    container_options: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    crf: Optional[CrfRange] = None
    metadata: bool = True             # prompt/workflow can be embedded
    source: str = ""                  # the file it came from, for error messages

    @property
    def is_video(self) -> bool:
        return self.mime.startswith("video/")

    @property
    def is_sequence(self) -> bool:
        """One image file per frame in a folder (``png-sequence``), not one file."""
        return self.container == "folder"


def _str_dict(value, what: str, path: Path) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise OutputWriteError(f"The video format file {path} is invalid: '{what}' must be an object.",
                               "Fix or delete that file.")
    return {str(k): str(v) for k, v in value.items()}


def parse_format(path: Path) -> VideoFormat:
    """Read and validate one format file."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OutputWriteError(f"The video format file {path} cannot be read: {exc}",
                               "Fix the JSON or delete that file.") from exc
    required = ("container", "extension", "codec", "pix_fmt", "encoder", "mime")
    missing = [k for k in required if not isinstance(raw.get(k), str) or not raw.get(k)]
    if missing:
        raise OutputWriteError(f"The video format file {path} is missing {', '.join(missing)}.",
                               "Add those fields (see h264-mp4.json for an example) or delete the file.")
    if raw["encoder"] not in ENCODERS:
        raise OutputWriteError(f"The video format file {path} names an unknown encoder '{raw['encoder']}'.",
                               f"Use one of: {', '.join(ENCODERS)}.")
    crf = raw.get("crf")
    crf_range = None
    if crf is not None:
        try:
            crf_range = CrfRange(str(crf["option"]), int(crf["default"]), int(crf["min"]), int(crf["max"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise OutputWriteError(f"The video format file {path} has an invalid 'crf' entry ({exc}).",
                                   "Give crf as {\"option\", \"default\", \"min\", \"max\"} or null.") from exc
    return VideoFormat(
        name=str(raw.get("name") or path.stem),
        description=str(raw.get("description", "")),
        encoder=raw["encoder"],
        container=raw["container"],
        extension=raw["extension"].lstrip("."),
        mime=raw["mime"],
        codec=raw["codec"],
        pix_fmt=raw["pix_fmt"],
        even_dimensions=bool(raw.get("even_dimensions", False)),
        container_options=_str_dict(raw.get("container_options"), "container_options", path),
        options=_str_dict(raw.get("options"), "options", path),
        crf=crf_range,
        metadata=bool(raw.get("metadata", True)),
        source=str(path),
    )


@lru_cache(maxsize=None)
def _load_all(folder: str) -> dict[str, VideoFormat]:
    formats: dict[str, VideoFormat] = {}
    for path in sorted(Path(folder).glob("*.json")):
        fmt = parse_format(path)
        formats[fmt.name] = fmt
    return formats


def load_formats(folder: Path | None = None) -> dict[str, VideoFormat]:
    """All formats in ``folder`` (default: this package folder), keyed by name, h264-mp4 first."""
    formats = _load_all(str(folder or FORMATS_DIR))
    ordered = sorted(formats.values(), key=lambda f: (f.name != "h264-mp4", f.name))
    return {f.name: f for f in ordered}


def format_names() -> list[str]:
    """Names for the node's combo (default first)."""
    return list(load_formats())


def get_format(name: str) -> VideoFormat:
    formats = load_formats()
    if name not in formats:
        raise InputError(f"Unknown video format ({option('format')}) '{name}'.", f"Choose one of: {', '.join(formats)}.")
    return formats[name]
