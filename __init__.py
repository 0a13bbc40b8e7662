"""IDVideo — identity-preserving video generation nodes for ComfyUI.

ComfyUI imports this file as a package. The pack's folder is appended to ``sys.path`` so the node modules can import
the core library ``idvideo_core`` (which also installs on its own with ``pip install .`` for the CLI and tests).
"""
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.append(_HERE)

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402

WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
