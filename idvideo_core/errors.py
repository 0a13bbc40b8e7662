"""User-facing errors.

Every problem a creator can fix raises an :class:`IDVideoError` whose message says what went wrong *and* how to fix
it. Node wrappers and the CLI show that message alone, never a raw traceback.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Sequence


_OPTION = re.compile(r"\u2039([A-Za-z0-9_]+)\u203a")


def option(name: str) -> str:
    """Name a node input / command-line option inside a message: rendered as the widget name ('num_frames') inside
    ComfyUI and as the flag (--frames) on the command line (see :meth:`IDVideoError.render`)."""
    return f"\u2039{name}\u203a"


def widget_name(name: str) -> str:
    return f"'{name}'"


def render_options(text: str, name_option=widget_name) -> str:
    return _OPTION.sub(lambda m: name_option(m.group(1)), text)


class IDVideoError(Exception):
    """A problem the user can fix. ``str(err)`` is the whole message shown to the user.

    One error, two renderings: options named with :func:`option` read as widget names by default (ComfyUI shows
    ``str(err)``) and as flags when the command line calls ``err.render(flag_of)``.
    """

    def __init__(self, message: str, fix: str | None = None):
        self.problem = message
        self.fix = fix
        super().__init__(self.render())

    def render(self, name_option=widget_name) -> str:
        text = self.problem if not self.fix else f"{self.problem}\nFix: {self.fix}"
        return render_options(text, name_option)


class MissingModelError(IDVideoError):
    """A model file was not found in any searched location."""

    def __init__(self, what: str, searched: Sequence[Path | str], published: str | None = None,
                 extra: str | None = None):
        self.searched = [str(p) for p in searched]
        lines = [f"IDVideo could not find {what}. Searched:"]
        lines += [f"  - {p}" for p in self.searched] or ["  (no search locations configured)"]
        fix = f"Put the {'folder' if 'folder' in what else 'file'} in one of the folders above"
        if published:
            fix += f" (it is published at {published})"
        fix += "; IDVideo never downloads anything."
        if extra:
            fix += " " + extra
        fix += " `python -m idvideo_core models` lists every file IDVideo needs and where to put it."
        super().__init__("\n".join(lines), fix)


class CorruptFileError(IDVideoError):
    """A model file exists but cannot be read (truncated download, wrong format)."""

    def __init__(self, path: Path | str, detail: str, published: str | None = None):
        fix = "Delete the file and download it again completely"
        if published:
            fix += f" from {published}"
        super().__init__(f"The file {path} is damaged or not what IDVideo expected: {detail}", fix + ".")


class UnsafeFileError(IDVideoError):
    """A pickled checkpoint would execute code when loaded; IDVideo refuses it."""


class WrongModelError(IDVideoError):
    """A checkpoint of a different family was given to a loader (detected from its keys or config)."""


class NoFaceError(IDVideoError):
    """No face was found in an input image."""


class InputError(IDVideoError):
    """A node input or CLI argument is out of range or inconsistent."""


class MissingDependencyError(IDVideoError):
    """An optional Python package is not installed."""

    def __init__(self, package: str, feature: str, pip_name: str | None = None):
        pip_name = pip_name or package
        super().__init__(f"{feature} needs the Python package '{package}', which is not installed.",
                         f"Install it into ComfyUI's Python: python -m pip install {pip_name}")


class OutputWriteError(IDVideoError):
    """A video or file could not be written."""


def require(module: str, feature: str, pip_name: str | None = None):
    """Import ``module`` or raise :class:`MissingDependencyError` naming the install line."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised in the bad-input tests
        raise MissingDependencyError(module.split(".")[0], feature, pip_name) from exc


def format_paths(paths: Iterable[Path | str]) -> str:
    return "\n".join(f"  - {p}" for p in paths)
