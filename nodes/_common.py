"""Small helpers shared by the node modules: categories, socket type names, error shaping."""
from __future__ import annotations

import functools
import logging

from idvideo_core.errors import IDVideoError

log = logging.getLogger("idvideo")

CATEGORY = "IDVideo"

# Pack-private socket types (never core names such as VAE or MODEL).
FACE_MODELS = "IDV_FACE_MODELS"
FACES = "IDV_FACES"
MODEL = "IDV_MODEL"
TEXT = "IDV_TEXT_EMBEDS"
GLOBAL_ID = "IDV_GLOBAL_ID"
LOCAL_ID = "IDV_LOCAL_ID"
REFERENCES = "IDV_REFERENCES"


def user_errors(fn):
    """Let IDVideoError through unchanged (its message names the fix); turn out-of-memory into advice."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except IDVideoError:
            raise
        except MemoryError as exc:
            raise IDVideoError("Out of memory.", "Choose a lower-memory mode on the model loader (block_swap or "
                                                 "sequential) and enable VAE tiling.") from exc
        except RuntimeError as exc:
            if "out of memory" in str(exc).lower():
                raise IDVideoError("The GPU ran out of memory.",
                                   "Choose memory_mode=block_swap (or sequential) on the model loader and turn on "
                                   "vae_tiling on the sampler.") from exc
            raise

    return wrapper
