"""FFHQ 512 alignment and BiSeNet background whitening (consisid.md §1.2 steps 5 and 7).

Alignment: a similarity transform (OpenCV ``estimateAffinePartial2D`` with LMEDS, as facexlib does) of the 5
RetinaFace landmarks onto the FFHQ 512 template, warped with a constant gray border (135, 133, 132). The crop stays
BGR like the reference's. Parsing: BiSeNet on the ImageNet-normalised RGB crop; the reference's background labels
(background, cloth, hat, ears, earring, neck, necklace) become white. EVA sees the *gray* face on white (to avoid
colour leakage / copy-paste), the VAE sees the colour face on white.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from ..errors import NoFaceError

FFHQ_TEMPLATE_512 = np.array([[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935],
                              [201.26117, 371.41043], [313.08905, 371.15118]])
FACE_SIZE = 512
BORDER_BGR = (135, 133, 132)
BACKGROUND_LABELS = (0, 16, 18, 7, 8, 9, 14, 15)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def align_ffhq(img_bgr: np.ndarray, landmarks5: np.ndarray) -> np.ndarray:
    """512×512 BGR crop aligned on the FFHQ template."""
    m = cv2.estimateAffinePartial2D(landmarks5, FFHQ_TEMPLATE_512, method=cv2.LMEDS)[0]
    if m is None:
        raise NoFaceError("The face landmarks are degenerate, so the face could not be aligned.",
                          "Use a clearer, frontal photo of the face.")
    return cv2.warpAffine(img_bgr, m, (FACE_SIZE, FACE_SIZE), borderMode=cv2.BORDER_CONSTANT,
                          borderValue=BORDER_BGR)


def rgb_tensor(img_bgr: np.ndarray) -> torch.Tensor:
    """(1, 3, H, W) float RGB in [0, 1] from a BGR uint8 image."""
    rgb = cv2.cvtColor(img_bgr, cv2.COLOR_BGR2RGB)
    return torch.from_numpy(rgb.transpose(2, 0, 1)).float().unsqueeze(0) / 255.0


def to_gray(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma repeated on 3 channels."""
    y = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    return y.repeat(1, 3, 1, 1)


@torch.no_grad()
def parse_background(parser: torch.nn.Module, face_rgb: torch.Tensor) -> torch.Tensor:
    """(1, 1, H, W) bool: True where BiSeNet sees background (to be whitened)."""
    from torchvision.transforms.functional import normalize

    dev = next(parser.parameters()).device
    logits = parser(normalize(face_rgb.to(dev), IMAGENET_MEAN, IMAGENET_STD))[0]
    labels = logits.argmax(dim=1, keepdim=True)
    bg = torch.zeros_like(labels, dtype=torch.bool)
    for lab in BACKGROUND_LABELS:
        bg |= labels == lab
    return bg


def whiten(face_rgb: torch.Tensor, bg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(gray face on white, colour face on white), both (1, 3, H, W) float in [0, 1]."""
    bg = bg.to(face_rgb.device)
    white = torch.ones_like(face_rgb)
    return torch.where(bg, white, to_gray(face_rgb)), torch.where(bg, white, face_rgb)


def quantise(x: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) float → (H, W, 3) uint8, truncating like the reference before the VAE."""
    return (x[0].permute(1, 2, 0).detach().cpu().numpy() * 255).astype(np.uint8)
