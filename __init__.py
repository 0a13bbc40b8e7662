"""IDVideo — identity-preserving video generation nodes for ComfyUI.

ComfyUI imports this file as a package. The node modules import the core library ``idvideo_core`` by its absolute
name (it also installs on its own with ``pip install .`` for the CLI and tests), so the pack makes sure that name
means *this folder's* copy: its folder goes first on ``sys.path``, and a copy imported earlier from elsewhere (a stale
``pip install`` in site-packages, another checkout) is dropped from ``sys.modules``. When another copy is installed,
a warning names it, so that a ``git pull`` of the pack is never silently shadowed.
"""
import importlib.machinery
import logging
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_CORE = "idvideo_core"


def _inside(path, folder) -> bool:
    try:
        return os.path.commonpath([os.path.realpath(path), os.path.realpath(folder)]) == os.path.realpath(folder)
    except ValueError:  # different drives on Windows
        return False


def _use_own_core() -> list:
    """Put this folder first on sys.path, forget a foreign ``idvideo_core`` already imported; return other copies."""
    while _HERE in sys.path:
        sys.path.remove(_HERE)
    sys.path.insert(0, _HERE)
    loaded = sys.modules.get(_CORE)
    if loaded is not None and not _inside(getattr(loaded, "__file__", None) or "", _HERE):
        for name in [n for n in sys.modules if n == _CORE or n.startswith(_CORE + ".")]:
            del sys.modules[name]
    others = []

    def note(spec):
        if spec is None:
            return
        where = spec.origin if spec.origin not in (None, "namespace") else \
            next(iter(spec.submodule_search_locations or []), None)
        if where and not _inside(where, _HERE) and where not in others:
            others.append(where)

    for entry in sys.path[1:]:
        if not isinstance(entry, str) or _inside(entry or os.getcwd(), _HERE):
            continue
        try:
            note(importlib.machinery.PathFinder.find_spec(_CORE, [entry]))
        except (ImportError, OSError, ValueError):
            continue
    for finder in sys.meta_path:  # editable installs (pip install -e) answer through their own finder
        if finder is importlib.machinery.PathFinder or not hasattr(finder, "find_spec"):
            continue
        try:
            note(finder.find_spec(_CORE, None))
        except Exception:  # noqa: BLE001 - a third-party finder must never break the pack's import
            continue
    return others


_OTHERS = _use_own_core()

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402

if _OTHERS:
    logging.getLogger("idvideo").warning(
        "IDVideo: another copy of idvideo_core is installed (%s); the pack uses its own (%s). Remove the other copy "
        "(python -m pip uninstall idvideo) so command-line tools and the nodes run the same code.",
        ", ".join(_OTHERS), os.path.join(_HERE, _CORE))

WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
