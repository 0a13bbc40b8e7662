"""IDVideo nodes, grouped by the creator's task. Each node is a schema plus one call into ``idvideo_core``."""
from idvideo_core.paths import register_folders

from . import faces, identity, models, sampling

register_folders()

_MODULES = [faces, identity, models, sampling]
try:  # the video combiner module
    from . import video

    _MODULES.append(video)
except ImportError as exc:  # pragma: no cover - only while a module is missing
    import logging

    logging.getLogger("idvideo").warning("IDVideo: video combiner unavailable (%s)", exc)

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}
for _m in _MODULES:
    NODE_CLASS_MAPPINGS.update(_m.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_m.NODE_DISPLAY_NAME_MAPPINGS)
