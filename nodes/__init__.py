"""IDVideo nodes, grouped by the creator's task. Each node is a schema plus one call into ``idvideo_core``."""
from idvideo_core.paths import register_folders

from . import concatid_cog, evaluate, faces, identity, lora, models, references, sampling, video

register_folders()

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}
for _m in (faces, identity, lora, models, references, sampling, video, evaluate, concatid_cog):
    NODE_CLASS_MAPPINGS.update(_m.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_m.NODE_DISPLAY_NAME_MAPPINGS)

from .checks import install as _install_queue_checks  # noqa: E402

_install_queue_checks(NODE_CLASS_MAPPINGS)  # conflicting sizes are refused when a prompt is queued (issue 14)
