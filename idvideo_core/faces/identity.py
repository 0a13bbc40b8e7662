"""DetectedFace → ConsisID's local identity (consisid.md §1.2 steps 8–9) and the face image the VAE encodes.

``id_cond`` = raw ArcFace (512) ⊕ L2-normalised EVA projection; ``id_vit_hidden`` = the EVA tower's 5 hidden states.
EVA input: the gray face on white, resized to the tower's size with torchvision bicubic (antialiased, as the
reference calls it) and normalised with the tower's mean/std.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError
from ..types import DetectedFace, LocalIdentity


@torch.no_grad()
def eva_input(models, face: DetectedFace) -> torch.Tensor:
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.functional import normalize, resize

    tower = models.eva
    x = face.face_gray_white.to(models.device)
    x = resize(x, tower.image_size, InterpolationMode.BICUBIC)
    return normalize(x, list(tower.image_mean), list(tower.image_std))


@torch.no_grad()
def local_identity(models, face: DetectedFace) -> LocalIdentity:
    if face.embedding is None or face.face_gray_white is None:
        raise InputError("This face was not fully analysed (no embedding or aligned face).",
                         "Run the face analysis node on the image first.")
    x = eva_input(models, face).to(models.dtype)
    proj, hidden = models.eva(x)
    proj = proj / torch.norm(proj, 2, 1, True)
    arc = torch.from_numpy(np.asarray(face.embedding)).to(models.device, models.dtype).reshape(1, -1)
    return LocalIdentity(id_cond=torch.cat([arc, proj], dim=-1), id_vit_hidden=list(hidden))


def face_image_for_vae(face: DetectedFace) -> np.ndarray:
    """The colour face on white, 512×512 uint8 RGB, quantised exactly as the reference does before the VAE."""
    if face.face_rgb_white is None:
        raise InputError("This face has no aligned image.", "Run the face analysis node on the image first.")
    return face.face_rgb_white
