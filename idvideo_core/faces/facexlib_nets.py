"""RetinaFace-R50 and BiSeNet from facexlib's architecture classes, with weights loaded by :mod:`idvideo_core.safeload`.

facexlib's own ``init_detection_model`` / ``init_parsing_model`` download missing files from GitHub and unpickle
with a plain ``torch.load``; we only borrow the network classes and load the published state dicts ourselves
(``weights_only=True``), from the folders :mod:`.locate` searched.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

from ..errors import WrongModelError, require
from ..paths import PUBLISHED
from ..safeload import load_weights

RETINAFACE_CONF = 0.97      # facexlib FaceRestoreHelper's detection threshold (the reference's)
BISENET_CLASSES = 19


def _load_strict(net: torch.nn.Module, path: Path, what: str) -> torch.nn.Module:
    sd = load_weights(path, published=PUBLISHED["facexlib"])
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    missing, unexpected = net.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise WrongModelError(
            f"{path} is not a {what} checkpoint ({len(missing)} missing, {len(unexpected)} unexpected tensors, "
            f"e.g. {(list(missing) + list(unexpected))[:3]}).",
            f"Use the published file '{path.name}' ({PUBLISHED['facexlib']}).")
    return net.eval()


def load_retinaface(path: Path | str, device: torch.device | str = "cpu") -> torch.nn.Module:
    """facexlib ``RetinaFace('resnet50')``; call ``detect_faces(bgr_uint8, RETINAFACE_CONF)`` on it."""
    require("facexlib", "Face alignment (RetinaFace)")
    from facexlib.detection.retinaface import RetinaFace

    device = torch.device(device)
    with warnings.catch_warnings():  # torchvision's "pretrained is deprecated" notice from facexlib's constructor
        warnings.simplefilter("ignore")
        net = RetinaFace(network_name="resnet50", half=False, device=device)
    return _load_strict(net, Path(path), "RetinaFace-ResNet50 (detection_Resnet50_Final.pth)").to(device)


def load_bisenet(path: Path | str, device: torch.device | str = "cpu") -> torch.nn.Module:
    """facexlib ``BiSeNet(19)`` face parser; its first output holds the class logits."""
    require("facexlib", "Face parsing (BiSeNet)")
    from facexlib.parsing.bisenet import BiSeNet

    net = BiSeNet(num_class=BISENET_CLASSES)
    return _load_strict(net, Path(path), "BiSeNet face-parsing (parsing_bisenet.pth)").to(torch.device(device))
