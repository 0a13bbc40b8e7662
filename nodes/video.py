"""IDVideo Video Combiner: frames → a video file in ComfyUI's output folder, plus IMAGE / VIDEO / path outputs.

A thin V1 wrapper over :func:`idvideo_core.video.write_video`; all file handling (never overwrite, stay inside the
output folder, remove partial files) lives there. User-fixable problems raise ``IDVideoError`` and ComfyUI shows
their message; raw library errors are translated in the core, never passed through.
"""
from __future__ import annotations

import logging
from fractions import Fraction

from idvideo_core import bridge, notices
from idvideo_core.video import format_names, preview_ui, write_video

from ._common import user_errors

log = logging.getLogger("idvideo")


def make_core_video(images, fps: float):
    """Core ComfyUI ``VIDEO`` (``VideoFromComponents``) for the frames, or None outside ComfyUI.

    Imported lazily: ``comfy_api`` exists only inside a running ComfyUI.
    """
    try:
        from comfy_api.latest import InputImpl, Types
    except Exception as exc:  # noqa: BLE001 - not inside ComfyUI (or a ComfyUI too old for the VIDEO type)
        log.info("IDVideo: VIDEO output is empty because comfy_api is not available (%s)", exc)
        return None
    rate = Fraction(round(float(fps) * 1000), 1000)
    return InputImpl.VideoFromComponents(Types.VideoComponents(images=images, frame_rate=rate))


class IDVideoCombine:
    """Encode frames to MP4 / WebM / GIF with the workflow embedded, and pass the frames on."""

    DESCRIPTION = ("Saves frames as a video (H.264 MP4, VP9 WebM or GIF) in ComfyUI's output folder with the prompt "
                   "and workflow embedded, so dragging the video back into ComfyUI restores the workflow. Never "
                   "overwrites: files are numbered prefix_00001, prefix_00002, …. Also outputs the frames (IMAGE, "
                   "for VHS Video Combine or more processing), a core VIDEO (for Save Video and other core video "
                   "nodes) and the file path. The warnings of the nodes that made the frames are listed in the video's "
                   "metadata (idvideo_warnings).")
    CATEGORY = "IDVideo/output"
    FUNCTION = "combine"
    OUTPUT_NODE = True
    RETURN_TYPES = ("IMAGE", "VIDEO", "STRING")
    RETURN_NAMES = ("images", "video", "path")
    OUTPUT_TOOLTIPS = (
        "The same frames that came in, unchanged: connect VHS Video Combine, an upscaler or a frame interpolator.",
        "The frames as a core ComfyUI VIDEO at the chosen frame rate: connect Save Video, Get Video Components, etc.",
        "Absolute path of the written file (in the temp folder when save_output is off).",
    )
    SEARCH_ALIASES = ["video combine", "save video", "mp4", "webm", "gif", "combine frames", "video writer",
                      "export video"]

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "The video frames (a batch of images), e.g. from the "
                                                "'IDVideo DiT Sampler'."}),
                "frame_rate": ("FLOAT", {"default": 8.0, "min": 0.1, "max": 240.0, "step": 1.0, "round": 0.001,
                                         "tooltip": "Frames per second. CogVideoX/ConsisID are trained at 8, "
                                                    "Wan2.1/Concat-ID/Phantom at 16."}),
                "filename_prefix": ("STRING", {"default": "IDVideo/IDVideo",
                                               "tooltip": "File name before the counter; may name subfolders of "
                                                          "the output folder ('IDVideo/IDVideo' → output/IDVideo/"
                                                          "IDVideo_00001.mp4). %width%, %height%, %year% … work."}),
                "format": (format_names(), {"default": "h264-mp4",
                                            "tooltip": "h264-mp4 plays everywhere (odd sizes are padded by one "
                                                       "pixel); vp9-webm is smaller but slower to encode; gif has "
                                                       "256 colours and cannot carry the workflow back into "
                                                       "ComfyUI; ffv1-mkv (lossless video) and png-sequence (a "
                                                       "folder of PNG frames) keep the exact 8-bit frames."}),
                "save_output": ("BOOLEAN", {"default": True,
                                            "tooltip": "On: save to the output folder. Off: write a preview to "
                                                       "ComfyUI's temp folder (deleted when ComfyUI restarts)."}),
            },
            "optional": {
                "crf": ("INT", {"default": -1, "min": -1, "max": 63, "step": 1,
                                "tooltip": "Quality: lower = better and bigger (H.264 0-51, VP9 0-63). -1 uses the "
                                           "format's default (H.264 19, VP9 30). Ignored for GIF."}),
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO", "unique_id": "UNIQUE_ID"},
        }

    @user_errors
    def combine(self, images, frame_rate=8.0, filename_prefix="IDVideo/IDVideo", format="h264-mp4",
                save_output=True, crf=-1, prompt=None, extra_pnginfo=None, unique_id=None):
        metadata = None
        if not bridge.args_disable_metadata():
            metadata = {}
            if isinstance(extra_pnginfo, dict):
                metadata.update(extra_pnginfo)   # "workflow" (UI JSON), as core SaveVideo does
            if prompt is not None:
                metadata["prompt"] = prompt      # API JSON
            warned = notices.for_output(None if unique_id is None else str(unique_id), prompt)
            if warned:                           # what the creator was warned about while making these frames
                metadata[notices.METADATA_KEY] = warned
            metadata = metadata or None
        saved = write_video(images, fps=frame_rate, format=format, filename_prefix=filename_prefix,
                            metadata=metadata, crf=crf, folder_type="output" if save_output else "temp",
                            node_id=str(unique_id) if unique_id is not None else None)
        video = make_core_video(images, saved.fps)
        return {"ui": preview_ui(saved), "result": (images, video, str(saved.path))}


NODE_CLASS_MAPPINGS = {"IDVideoCombine": IDVideoCombine}
NODE_DISPLAY_NAME_MAPPINGS = {"IDVideoCombine": "IDVideo Video Combiner"}
