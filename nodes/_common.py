"""Small helpers shared by the node modules: categories, socket type names, error shaping."""
from __future__ import annotations

import functools
import logging

from idvideo_core import bridge, notices
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

# Queue-time graph check (nodes/checks.py): a hidden input the pack's prompt handler fills with the reason a node's
# inputs conflict; the node's VALIDATE_INPUTS then refuses the prompt with that sentence.
CHECK_INPUT = "idv_check"
CHECK_INPUT_TYPE = "IDV_CHECK"

MEMORY_MODES = ("auto", "gpu", "model_offload", "block_swap", "sequential")
FP8_TIP = ("fp8_e4m3 stores the DiT's linear weights in 8 bits (upcast per layer when used): about half the VRAM of "
           "bf16 and half the block-swap traffic, with a small loss of precision.")


def memory_inputs(blocks_default: int, storages, storage_default: str = "default", storage_tip: str = FP8_TIP,
                  blocks_note: str = "") -> dict:
    """The memory widgets every model loader has (precision, memory_mode, blocks_to_swap, weight_storage): one
    schema, so the loaders cannot drift apart; only the defaults and the storage choices are the loader's."""
    from idvideo_core.dtypes import CHOICES as PRECISIONS

    return {
        "precision": (list(PRECISIONS), {"default": "auto", "tooltip": "Compute precision. auto = bf16 on GPUs that "
                      "support it, fp32 on the CPU (bf16/fp16 fall back to fp32 there)."}),
        "memory_mode": (list(MEMORY_MODES), {"default": "auto", "tooltip": "auto picks from free VRAM and ComfyUI's "
                        "--lowvram/--novram flags. gpu = everything stays on the GPU; model_offload = text encoder, "
                        "DiT and VAE each moved in when used; block_swap = stream DiT blocks; sequential = lowest "
                        "VRAM, slowest."}),
        "blocks_to_swap": ("INT", {"default": blocks_default, "min": 0, "max": 64, "tooltip": "With block_swap: how "
                           f"many transformer blocks{blocks_note} stay in RAM and are streamed in each step."}),
        "weight_storage": (list(storages), {"default": storage_default, "tooltip": storage_tip}),
    }


WARNINGS_EVENT = "idvideo.warnings"   # server message the pack's JS extension shows on the node
UI_WARNINGS = "idv_warnings"          # the same list in the ui output of nodes that return one


def user_errors(fn):
    """Around every node call: let IDVideoError through unchanged (its message names the fix), turn out-of-memory
    into advice, and show the warnings the pack logged during the call on the node (issue 14): they go to the
    browser as an ``idvideo.warnings`` message for the node, into the node's ``ui`` output when it returns one, and
    are remembered for the Video Combiner's metadata (:mod:`idvideo_core.notices`)."""

    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        node_id = kwargs.get("unique_id")
        node_id = str(node_id) if node_id is not None else bridge.executing_node_id()
        with notices.capture(node_id, type(self).__name__) as caught:
            try:
                result = _run(fn, self, *args, **kwargs)
            finally:
                if caught.messages and node_id is not None:
                    bridge.send_ui_event(WARNINGS_EVENT, {"node": node_id, "warnings": list(caught.messages)})
        if caught.messages and isinstance(result, dict) and isinstance(result.get("ui"), dict):
            result["ui"][UI_WARNINGS] = list(caught.messages)
        return result

    return wrapper


def _run(fn, *args, **kwargs):
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
