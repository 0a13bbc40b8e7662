"""All face models ConsisID needs, loaded once [IDV_FACE_MODELS].

antelopev2 SCRFD + ArcFace run on ONNX Runtime with the user's provider choice; RetinaFace, BiSeNet and the
EVA02-CLIP vision tower are torch modules on ``device``. Files are found by :mod:`.locate`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..paths import PUBLISHED
from .arcface import ArcFaceRecognizer
from .locate import FaceModelFiles, find_face_model_files
from .onnx_session import onnx_node_names, open_session
from .scrfd import ScrfdDetector

log = logging.getLogger("idvideo")


@dataclass
class FaceModels:
    """The loaded face stack. ``provider`` is what ONNX Runtime actually runs on (after any fallback)."""

    detector: ScrfdDetector             # antelopev2 SCRFD-10G (640 px, threshold 0.5)
    recognizer: ArcFaceRecognizer       # antelopev2 glintr100 ArcFace, raw 512-d embeddings
    retinaface: torch.nn.Module         # facexlib RetinaFace-R50 (landmarks for the FFHQ alignment)
    parser: torch.nn.Module             # facexlib BiSeNet (19-class face parsing)
    eva: Any                            # EVA02-CLIP-L-336 vision tower (idvideo_core.faces.eva_clip)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32
    provider: str = "CPU"
    files: FaceModelFiles | None = None

    def to(self, device) -> FaceModels:
        """Move the torch models (e.g. back to the offload device after encoding)."""
        device = torch.device(device)
        for m in (self.retinaface, self.parser, self.eva):
            m.to(device)
        # facexlib's RetinaFace keeps its own device and mean tensor outside the module's buffers.
        self.retinaface.device = device
        self.retinaface.mean_tensor = self.retinaface.mean_tensor.to(device)
        self.device = device
        return self


def load_face_models(provider: str = "auto", device=None, dtype: torch.dtype = torch.float32,
                     consisid_folder: Path | str | None = None) -> FaceModels:
    """Find and load every face model. ``provider``: auto (the best ONNX Runtime offers), CPU, CUDA, ROCm or
    CoreML (falls back to CPU, logged)."""
    from .eva_clip import load_eva_clip
    from .facexlib_nets import load_bisenet, load_retinaface

    if device is None:
        from ..bridge import torch_device

        device = torch_device()
    device = torch.device(device)
    files = find_face_model_files(consisid_folder)

    det_sess = open_session(files.scrfd, provider, PUBLISHED["antelopev2"])
    rec_sess = open_session(files.arcface, provider, PUBLISHED["antelopev2"])
    used = det_sess.get_providers()[0].replace("ExecutionProvider", "")
    detector = ScrfdDetector(det_sess)
    recognizer = ArcFaceRecognizer.from_session(rec_sess, onnx_node_names(files.arcface))

    retinaface = load_retinaface(files.retinaface, device)
    parser = load_bisenet(files.bisenet, device)
    eva = load_eva_clip(files.eva, device, dtype)
    log.info("IDVideo: face models loaded (ONNX on %s; torch on %s, EVA in %s) from %s", used, device, dtype,
             files.scrfd.parent)
    return FaceModels(detector, recognizer, retinaface, parser, eva, device, dtype, used, files)
