"""Writing generated frames to a video file in ComfyUI's output folder.

Guarantees, because a lost or clobbered render costs minutes of GPU time:

* **never overwrite**: files are named ``<prefix>_00001.<ext>`` with the next free counter, and the finished file is
  published with a hard link, which fails instead of replacing a file another writer created meanwhile;
* **never escape the output folder**: a prefix may name subfolders (``video/IDVideo``) but ``..``, absolute paths and
  symlinks pointing outside are refused with :class:`InputError`;
* **never leave half a file**: encoding goes to a hidden temp file in the destination folder and is renamed at the
  end; on a full disk, an I/O error, a codec error or a cancel the temp file is removed and
  :class:`OutputWriteError` says what happened and how to fix it.

Prompt (API JSON) and workflow (UI JSON) are embedded as container tags the way ComfyUI core's SaveVideo does it, so
dragging the video back into ComfyUI restores the workflow. Formats are data: see :mod:`idvideo_core.video_formats`.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Iterator, Optional

import numpy as np

from . import bridge
from .errors import IDVideoError, InputError, OutputWriteError, option
from .video_formats import VideoFormat, format_names, get_format, load_formats
from .video_formats.encoders import EncodeJob, encode, metadata_strings

log = logging.getLogger("idvideo")

__all__ = ["SavedVideo", "SaveTarget", "VideoFormat", "write_video", "read_video_metadata", "frames_to_uint8",
           "preview_ui", "resolve_target", "next_counter", "format_names", "get_format", "load_formats", "read_frames"]

DEFAULT_PREFIX = "IDVideo"
COUNTER_DIGITS = 5
_PUBLISH_ATTEMPTS = 1000


# ------------------------------------------------------------------------------------------------------ results
@dataclass
class SavedVideo:
    """A finished video file."""

    path: Path                # absolute path of the file
    subfolder: str            # relative to the output (or temp) folder, "/"-separated, "" for the top level
    filename: str
    format: str               # format name ("h264-mp4")
    frame_count: int
    fps: float
    width: int = 0            # encoded size (odd sizes are padded by one pixel for H.264)
    height: int = 0
    folder_type: str = "output"   # "output" or "temp", as ComfyUI's /view endpoint expects
    mime: str = ""
    padded: bool = False

    def ui_entry(self) -> dict:
        """The preview entry a ComfyUI output node returns (``/view?filename=&subfolder=&type=``)."""
        return {"filename": self.filename, "subfolder": self.subfolder, "type": self.folder_type,
                "format": self.mime, "frame_rate": self.fps, "frame_count": self.frame_count}


def preview_ui(saved: SavedVideo) -> dict:
    """The ``ui`` dict for a V1 output node: what core's ``ui.PreviewVideo`` produces (``images`` + ``animated``).

    The ComfyUI frontend shows ``.mp4``/``.webm`` entries of an animated ``images`` list as a video player and a
    ``.gif`` as an animated image.
    """
    if saved.mime.startswith("image/") and saved.mime != "image/gif":      # a frame folder: show its frames
        entries = [dict(saved.ui_entry(), filename=sequence_frame_name(i, saved.filename.rsplit(".", 1)[-1]))
                   for i in range(saved.frame_count)]
        return {"images": entries, "animated": (False,)}
    return {"images": [saved.ui_entry()], "animated": (True,)}


# ------------------------------------------------------------------------------------------------------- frames
def _check_frames(frames):
    """Accept a ComfyUI IMAGE tensor (or array) [N,H,W,C] / [H,W,C]; return it as [N,H,W,C] with C in 1, 3, 4."""
    shape = tuple(getattr(frames, "shape", ()))
    if len(shape) == 3:
        frames = frames[None]
        shape = (1, *shape)
    if len(shape) != 4 or shape[0] < 1 or shape[1] < 1 or shape[2] < 1 or shape[3] not in (1, 3, 4):
        raise InputError(f"Expected video frames shaped [frames, height, width, 3], got {list(shape) or type(frames)}.",
                         "Connect an IMAGE output (a batch of frames) to 'images'.")
    return frames


def frames_to_uint8(frames) -> np.ndarray:
    """ComfyUI IMAGE (float 0..1, [N,H,W,C] or [H,W,C]) → uint8 RGB array [N,H,W,3] (rounded, NaN → 0)."""
    frames = _check_frames(frames)
    if hasattr(frames, "detach"):
        frames = frames.detach().to("cpu").float().numpy()
    arr = np.nan_to_num(np.asarray(frames, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    arr = arr[..., :3]
    return np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)


def _iter_uint8(frames, pad_h: int, pad_w: int) -> Iterator[np.ndarray]:
    """Convert one frame at a time (a 49-frame 720p clip as float32 would double peak RAM)."""
    for i in range(frames.shape[0]):
        rgb = frames_to_uint8(frames[i])[0]
        if pad_h or pad_w:
            rgb = np.pad(rgb, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        yield np.ascontiguousarray(rgb)


def _check_fps(fps) -> Fraction:
    try:
        value = float(fps)
    except (TypeError, ValueError):
        value = float("nan")
    if not (0.0 < value <= 1000.0):
        raise InputError(f"Frame rate ({option('frame_rate')}) {fps!r} is out of range.",
                         "Use a frame rate between 0.01 and 1000 (e.g. 8 "
                         "for CogVideoX/ConsisID, 16 for Wan).")
    # Millisecond precision like ComfyUI core: 23.976 stays 23.976, not a 50-digit binary fraction.
    return Fraction(round(value * 1000), 1000)


def _check_crf(fmt: VideoFormat, crf) -> Optional[int]:
    if fmt.crf is None:
        return None
    if crf is None or int(crf) < 0:
        return fmt.crf.default
    if not (fmt.crf.min <= int(crf) <= fmt.crf.max):
        raise InputError(f"{option('crf')} {crf} is out of range for {fmt.name}.",
                         f"Use {fmt.crf.min}..{fmt.crf.max} (lower = better quality), or -1 for the default "
                         f"({fmt.crf.default}).")
    return int(crf)


# -------------------------------------------------------------------------------------------- names and folders
@dataclass
class SaveTarget:
    folder: Path         # resolved absolute folder the file goes in
    subfolder: str       # relative to the base folder, "/"-separated
    name: str            # file name stem before the counter


_VARS = ("width", "height", "year", "month", "day", "hour", "minute", "second")


def _expand_vars(prefix: str, width: int, height: int) -> str:
    """ComfyUI's simple save-path variables (%width%, %year%, …); other %...% text is left alone."""
    if "%" not in prefix:
        return prefix
    now = time.localtime()
    values = {"width": width, "height": height, "year": now.tm_year, "month": f"{now.tm_mon:02d}",
              "day": f"{now.tm_mday:02d}", "hour": f"{now.tm_hour:02d}", "minute": f"{now.tm_min:02d}",
              "second": f"{now.tm_sec:02d}"}
    for key in _VARS:
        prefix = prefix.replace(f"%{key}%", str(values[key]))
    return prefix


def _refuse(prefix: str, why: str) -> InputError:
    return InputError(f"The filename prefix ({option('filename_prefix')}) {prefix!r} is not allowed: {why}.",
                      "Use a name like 'IDVideo' or 'video/IDVideo' (subfolders inside the output folder only).")


def resolve_target(filename_prefix: str, base_dir: Path, width: int = 0, height: int = 0) -> SaveTarget:
    """Split ``filename_prefix`` into a folder inside ``base_dir`` and a name; refuse anything that escapes it."""
    raw = _expand_vars(str(filename_prefix or ""), width, height).strip()
    if "\x00" in raw:
        raise _refuse(raw, "it contains a NUL character")
    if raw.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", raw) or os.path.isabs(raw):
        raise _refuse(raw, "absolute paths would write outside the output folder")
    parts = [p for p in re.split(r"[\\/]+", raw) if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise _refuse(raw, "'..' would write outside the output folder")
    if raw.endswith(("/", "\\")) or not parts:
        parts.append(DEFAULT_PREFIX)
    name, sub_parts = parts[-1], parts[:-1]

    base = Path(base_dir).expanduser()
    base_real = Path(os.path.realpath(base))
    folder = Path(os.path.realpath(base.joinpath(*sub_parts))) if sub_parts else base_real
    # realpath follows symlinks that already exist: a subfolder linking outside the output folder is refused here.
    if folder != base_real and base_real not in folder.parents:
        raise _refuse(raw, f"it resolves to {folder}, outside the output folder {base_real} (a symlink?)")
    return SaveTarget(folder=folder, subfolder="/".join(sub_parts), name=name)


def _counter_pattern(name: str) -> re.Pattern:
    return re.compile(re.escape(name) + r"_(\d{" + str(COUNTER_DIGITS) + r",})(?:[._].*)?$", re.IGNORECASE)


def next_counter(folder: Path, name: str) -> int:
    """1 + the highest counter used by any file ``<name>_NNNNN*`` in ``folder`` (shared across extensions, as in
    ComfyUI, so a video and its companion files get the same number)."""
    pattern = _counter_pattern(name)
    highest = 0
    try:
        entries = os.listdir(folder)
    except FileNotFoundError:
        return 1
    for entry in entries:
        match = pattern.match(entry)
        if match:
            highest = max(highest, int(match.group(1)))
    return highest + 1


def _unwritable(folder: Path, exc: OSError) -> OutputWriteError:
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        return OutputWriteError(f"The disk holding the output folder {folder} is full; the video was not written.",
                                "Free some disk space, or start ComfyUI with --output-directory on another drive "
                                "(IDVIDEO_OUTPUT_DIR outside ComfyUI).")
    return OutputWriteError(f"IDVideo cannot write to the output folder {folder} ({reason}).",
                            "Make that folder writable (check its permissions and that the drive is mounted "
                            "read-write), or start ComfyUI with --output-directory pointing to a writable folder "
                            "(IDVIDEO_OUTPUT_DIR outside ComfyUI).")


def _prepare_folder(target: SaveTarget, base_dir: Path) -> None:
    try:
        target.folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _unwritable(target.folder, exc) from exc
    if not target.folder.is_dir():
        raise OutputWriteError(f"The output path {target.folder} exists but is not a folder.",
                               "Remove or rename that file, or use another filename prefix.")
    # Re-check after creating: a symlink could have appeared between the check and mkdir.
    base_real = Path(os.path.realpath(base_dir))
    real = Path(os.path.realpath(target.folder))
    if real != base_real and base_real not in real.parents:
        raise _refuse(target.subfolder, f"it resolves to {real}, outside the output folder {base_real}")


# --------------------------------------------------------------------------------------------- temp and publish
def _open_output_file(path: Path) -> BinaryIO:
    """Create ``path`` exclusively and open it for binary writing (the seam tests use to inject I/O failures)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
    return os.fdopen(fd, "wb")


class _GuardedFile:
    """Wraps the temp file and remembers the first OSError, which PyAV may re-raise as a generic callback error."""

    def __init__(self, raw: BinaryIO):
        self._raw = raw
        self.error: Optional[OSError] = None

    def _guard(self, fn, *args):
        try:
            return fn(*args)
        except OSError as exc:
            if self.error is None:
                self.error = exc
            raise

    def write(self, data) -> int:
        if self.error is not None:
            # Already failed: the muxer still tries to write its trailer on close. Drop it quietly (the recorded
            # error is raised afterwards) instead of making PyAV print "exception being dropped" tracebacks.
            return len(data)
        written = self._guard(self._raw.write, data)
        return len(data) if written is None else written

    def seek(self, offset: int, whence: int = 0) -> int:
        if self.error is not None:
            return 0
        return self._guard(self._raw.seek, offset, whence)

    def raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error

    def tell(self) -> int:
        return self._raw.tell()

    def flush(self) -> None:
        self._guard(self._raw.flush)

    def close(self) -> None:
        if not self._raw.closed:
            self._guard(self._raw.close)

    def abandon(self) -> None:
        try:
            self._raw.close()
        except OSError:
            pass


def _publish(tmp: Path, target: SaveTarget, extension: str) -> Path:
    """Give the finished temp file its final ``<name>_NNNNN.<ext>`` name without ever replacing an existing file."""
    counter = next_counter(target.folder, target.name)
    for _ in range(_PUBLISH_ATTEMPTS):
        final = target.folder / f"{target.name}_{counter:0{COUNTER_DIGITS}d}.{extension}"
        try:
            os.link(tmp, final)  # atomic and fails if ``final`` exists
        except FileExistsError:
            counter += 1
            continue
        except OSError:
            # Filesystems without hard links (FAT/exFAT, some network shares): best effort exists-check + rename.
            if final.exists():
                counter += 1
                continue
            os.replace(tmp, final)
            return final
        tmp.unlink()
        return final
    raise OutputWriteError(f"Could not find a free file name for {target.name} in {target.folder}.",
                           "Use another filename prefix.")


def _find_oserror(exc: BaseException) -> Optional[OSError]:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno is not None and exc.errno < 10000:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _write_failed(fmt: VideoFormat, target: SaveTarget, exc: BaseException, io_error: Optional[OSError]):
    where = target.folder
    if io_error is not None and io_error.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return OutputWriteError(
            f"The disk filled up while writing the {fmt.name} video in {where}; the partial file was removed.",
            "Free some disk space (or lower the resolution / frame count), or start ComfyUI with --output-directory "
            "on another drive (IDVIDEO_OUTPUT_DIR outside ComfyUI), then run the queue again.")
    if io_error is not None:
        return OutputWriteError(
            f"Writing the {fmt.name} video in {where} failed ({io_error.strerror or io_error}); the partial file "
            "was removed.",
            "Check that the drive is still connected and writable, or choose another output folder.")
    return OutputWriteError(
        f"Encoding the {fmt.name} video failed ({type(exc).__name__}: {exc}); the partial file was removed.",
        "Try another format (h264-mp4 works everywhere), or update PyAV: python -m pip install -U av.")


# ------------------------------------------------------------------------------------------------------ writing
def write_video(frames, fps: float = 8, format: str = "h264-mp4", filename_prefix: str = "IDVideo",
                output_dir: Path | str | None = None, metadata: Optional[dict] = None, crf: Optional[int] = None,
                folder_type: str = "output", progress: bool = True, node_id: Optional[str] = None) -> SavedVideo:
    """Encode ``frames`` (float [N,H,W,3] in 0..1) to ``<output_dir>/<prefix>_NNNNN.<ext>``.

    ``metadata`` maps tag names to values (non-strings are JSON-dumped): pass ``{"prompt": ..., "workflow": ...}``
    to make the file drag-and-droppable into ComfyUI. ``crf`` None or negative = the format's default.
    ``output_dir`` defaults to ComfyUI's output folder (or temp folder when ``folder_type="temp"``).
    """
    fmt = get_format(format)
    frames = _check_frames(frames)
    rate = _check_fps(fps)
    crf_value = _check_crf(fmt, crf)
    n, height, width = int(frames.shape[0]), int(frames.shape[1]), int(frames.shape[2])
    pad_h = height % 2 if fmt.even_dimensions else 0
    pad_w = width % 2 if fmt.even_dimensions else 0

    if output_dir is None:
        output_dir = bridge.temp_dir() if folder_type == "temp" else bridge.output_dir()
    base_dir = Path(output_dir)
    target = resolve_target(filename_prefix, base_dir, width, height)
    _prepare_folder(target, base_dir)
    if fmt.is_sequence:
        return _write_sequence(fmt, frames, rate, target, metadata, folder_type, progress, node_id)

    tmp = target.folder / f".{target.name}.{uuid.uuid4().hex[:12]}.{fmt.extension}.part"
    try:
        raw = _open_output_file(tmp)
    except OSError as exc:
        raise _unwritable(target.folder, exc) from exc
    dest = _GuardedFile(raw)

    bar = bridge.Progress(n, "Writing video", node_id=node_id) if progress else None
    interrupts: list[BaseException] = []

    def on_frame() -> None:
        try:
            bar.update(1)   # progress bar and the cancel checkpoint (ComfyUI's interrupt, the CLI's cancel)
        except BaseException as exc:
            interrupts.append(exc)
            raise

    job = EncodeJob(fmt=fmt, frames=_iter_uint8(frames, pad_h, pad_w), frame_count=n, width=width + pad_w,
                    height=height + pad_h, rate=rate, crf=crf_value,
                    metadata=metadata_strings(metadata) if fmt.metadata else None,
                    on_frame=on_frame if bar is not None else None)
    try:
        encode(job, dest)
        dest.raise_if_failed()   # in case the encoder swallowed a write error
        dest.close()   # flushes: a full disk can surface only here
        final = _publish(tmp, target, fmt.extension)
    except BaseException as exc:
        dest.abandon()
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        except OSError as unlink_exc:  # pragma: no cover - the folder vanished or became read-only mid-write
            log.warning("IDVideo: could not remove the partial file %s (%s)", tmp, unlink_exc)
        if isinstance(exc, IDVideoError) or not isinstance(exc, Exception) or exc in interrupts:
            raise  # our own message, or a cancel/interrupt from the progress bar: pass it through unchanged
        raise _write_failed(fmt, target, exc, dest.error or _find_oserror(exc)) from exc
    finally:
        if bar is not None:
            bar.close()

    if pad_h or pad_w:
        log.info("IDVideo: %s needs even sizes; padded %dx%d to %dx%d", fmt.name, width, height, width + pad_w,
                 height + pad_h)
    return SavedVideo(path=final, subfolder=target.subfolder, filename=final.name, format=fmt.name, frame_count=n,
                      fps=float(rate), width=width + pad_w, height=height + pad_h, folder_type=folder_type,
                      mime=fmt.mime, padded=bool(pad_h or pad_w))


# ----------------------------------------------------------------------------------------------- frame folders
SEQUENCE_SUFFIX = "_frames"


def sequence_frame_name(index: int, extension: str = "png") -> str:
    """``frame_00001.png`` for the first frame (1-based, like the video's frame numbers in players)."""
    return f"frame_{index + 1:0{COUNTER_DIGITS}d}.{extension}"


def _write_sequence(fmt: VideoFormat, frames, rate: Fraction, target: SaveTarget, metadata: Optional[dict],
                    folder_type: str, progress: bool, node_id: Optional[str]) -> SavedVideo:
    """Frames as ``<name>_NNNNN_frames/frame_00001.png``...: written into a hidden folder, then renamed (a rename
    onto an existing folder fails, so nothing is ever merged into or replaces an earlier result)."""
    import shutil

    from PIL import Image, PngImagePlugin

    n, height, width = int(frames.shape[0]), int(frames.shape[1]), int(frames.shape[2])
    tmp = target.folder / f".{target.name}.{uuid.uuid4().hex[:12]}{SEQUENCE_SUFFIX}.part"
    bar = bridge.Progress(n, "Writing frames", node_id=node_id) if progress else None
    level = int(fmt.options.get("compress_level", 4))
    try:
        try:
            tmp.mkdir()
        except OSError as exc:
            raise _unwritable(target.folder, exc) from exc
        info = None
        if fmt.metadata and metadata:
            info = PngImagePlugin.PngInfo()
            for key, value in metadata_strings(metadata).items():
                info.add_text(key, value)
        for i, rgb in enumerate(_iter_uint8(frames, 0, 0)):
            try:
                Image.fromarray(rgb, "RGB").save(tmp / sequence_frame_name(i, fmt.extension), format="PNG",
                                                 compress_level=level, pnginfo=info if i == 0 else None)
            except OSError as exc:
                raise _write_failed(fmt, target, exc, exc) from exc
            if bar is not None:
                bar.update(1)
        counter = next_counter(target.folder, target.name)
        for _ in range(_PUBLISH_ATTEMPTS):
            final = target.folder / f"{target.name}_{counter:0{COUNTER_DIGITS}d}{SEQUENCE_SUFFIX}"
            if final.exists():
                counter += 1
                continue
            try:
                os.rename(tmp, final)      # fails if another writer created ``final`` meanwhile (non-empty folder)
            except OSError as exc:
                if final.exists():
                    counter += 1
                    continue
                raise _unwritable(target.folder, exc) from exc
            break
        else:
            raise OutputWriteError(f"Could not find a free folder name for {target.name} in {target.folder}.",
                                   "Use another filename prefix.")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    sub = "/".join(p for p in (target.subfolder, final.name) if p)
    return SavedVideo(path=final, subfolder=sub, filename=sequence_frame_name(0, fmt.extension), format=fmt.name,
                      frame_count=n, fps=float(rate), width=width, height=height, folder_type=folder_type,
                      mime=fmt.mime)


def read_frames(path: Path | str) -> np.ndarray:
    """Decode a written result back to uint8 RGB frames [N, H, W, 3]: a frame folder, an image file or a video."""
    path = Path(path)
    if path.is_dir():
        from PIL import Image

        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".png")
        return np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    from .errors import require

    av = require("av", "Reading videos", "av")
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


# ------------------------------------------------------------------------------------------------------ reading
def _maybe_json(value: str):
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def read_video_metadata(path: Path | str) -> dict:
    """Tags of a written file with lower-case keys; ``prompt``/``workflow`` JSON is parsed back into objects.

    Matroska/WebM stores tag names upper-case (``PROMPT``); the ComfyUI frontend lower-cases them too.
    """
    path = Path(path)
    if path.suffix.lower() == ".gif":
        from PIL import Image

        with Image.open(path) as img:
            comment = img.info.get("comment")
        if not comment:
            return {}
        try:
            data = json.loads(comment.decode("utf-8") if isinstance(comment, bytes) else comment)
        except ValueError:
            return {"comment": comment}
        return {str(k).lower(): _maybe_json(v) for k, v in data.items()} if isinstance(data, dict) else {}
    from .errors import require

    av = require("av", "Reading video metadata", "av")

    with av.open(str(path)) as container:
        tags = dict(container.metadata)
    return {str(k).lower(): _maybe_json(v) for k, v in tags.items()}
