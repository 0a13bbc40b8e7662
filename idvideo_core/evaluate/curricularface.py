"""CurricularFace IR-101 (the FaceSim-Cur recogniser), our own definition of the published layout.

The benchmark file ``glint360k_curricular_face_r101_backbone.bin`` (OpenS2V-Weight; ConsisID-preview's
``face_encoder/``) is a plain ``state_dict`` of TFace's IR-101 for 112×112 input. Its layout, which this module
reproduces key for key:

- ``input_layer``: 3×3 conv 3→64 (no bias), BatchNorm, PReLU (``input_layer.{0,1,2}``).
- ``body.0`` … ``body.48``: 49 improved-residual units in four stages of 3, 13, 30 and 3 units with 64, 128, 256 and
  512 channels; the first unit of each stage has stride 2 (112 → 7). A unit is
  ``res_layer`` = BN(in), 3×3 conv in→out, BN(out), PReLU(out), 3×3 conv out→out (stride), BN(out)
  (``res_layer.{0..5}``) plus a ``shortcut_layer``: a stride-only 1×1 max-pool when the channel count is unchanged
  (no weights), else a 1×1 conv + BN (``shortcut_layer.{0,1}``).
- ``output_layer``: BN2d(512), Dropout(0.4), Flatten, Linear(512·7·7 → 512), BatchNorm1d(512, affine=False)
  (``output_layer.{0,3,4}``; the last has running statistics only).

65,150,912 parameters (:data:`PUBLISHED_PARAMS`); with the BatchNorm buffers that is the 261 MB fp32 file. The
channel widths are read from the file, so a tiny-width test file with the same key names loads through the same code.
The file is loaded with ``torch.load(weights_only=True)`` (:mod:`idvideo_core.safeload`) and strictly: a file of
another network is refused with the keys that differ.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

FILE_NAME = "glint360k_curricular_face_r101_backbone.bin"
STAGE_UNITS = (3, 13, 30, 3)
WIDTHS = (64, 128, 256, 512)
EMBED_DIM = 512
INPUT_SIZE = 112
PUBLISHED_PARAMS = 65_150_912


class IRUnit(nn.Module):
    """One improved-residual unit (pre-activation BN, PReLU between the two 3×3 convs, stride on the second)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        if cin == cout:
            self.shortcut_layer = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.PReLU(cout),
            nn.Conv2d(cout, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class CurricularFaceIR101(nn.Module):
    """IR-101 backbone, 112×112 RGB in ((x/255 − 0.5)/0.5), raw 512-d embedding out (not normalised)."""

    def __init__(self, widths: tuple[int, int, int, int] = WIDTHS, embed_dim: int = EMBED_DIM,
                 stage_units: tuple[int, ...] = STAGE_UNITS):
        super().__init__()
        self.input_layer = nn.Sequential(nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]),
                                         nn.PReLU(widths[0]))
        units, cin = [], widths[0]
        for cout, n in zip(widths, stage_units):
            units.append(IRUnit(cin, cout, 2))
            units += [IRUnit(cout, cout, 1) for _ in range(n - 1)]
            cin = cout
        self.body = nn.Sequential(*units)
        side = INPUT_SIZE // 2 ** len(stage_units)
        self.output_layer = nn.Sequential(nn.BatchNorm2d(widths[-1]), nn.Dropout(0.4), nn.Flatten(),
                                          nn.Linear(widths[-1] * side * side, embed_dim),
                                          nn.BatchNorm1d(embed_dim, affine=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_layer(self.body(self.input_layer(x)))


def stage_first_units(stage_units: tuple[int, ...] = STAGE_UNITS) -> list[int]:
    """Index in ``body`` of the first unit of each stage (0, 3, 16, 46 for IR-101)."""
    out, k = [], 0
    for n in stage_units:
        out.append(k)
        k += n
    return out


def widths_from_state_dict(sd: dict) -> tuple[tuple[int, ...], int]:
    """(stage widths, embedding size) of an IR-101 state dict, read from the tensor shapes."""
    widths = tuple(int(sd[f"body.{i}.res_layer.1.weight"].shape[0]) for i in stage_first_units())
    return widths, int(sd["output_layer.3.weight"].shape[0])


def load_curricularface(path: Path | str, device="cpu") -> CurricularFaceIR101:
    """Build the network with the file's widths and load it strictly (safe unpickling); eval mode."""
    from ..errors import WrongModelError
    from ..paths import PUBLISHED
    from ..safeload import load_weights

    path = Path(path)
    sd = load_weights(path, PUBLISHED["curricularface"])
    try:
        widths, embed = widths_from_state_dict(sd)
        model = CurricularFaceIR101(widths, embed)  # type: ignore[arg-type]
    except (KeyError, IndexError) as exc:
        raise WrongModelError(f"{path} is not a CurricularFace IR-101 backbone (no tensor {exc}).",
                              f"Use {FILE_NAME} from {PUBLISHED['curricularface']}.") from exc
    want = set(model.state_dict())
    missing, unexpected = sorted(want - set(sd)), sorted(set(sd) - want)
    if missing or unexpected:
        raise WrongModelError(
            f"{path} does not have the CurricularFace IR-101 layout: {len(missing)} missing keys "
            f"(e.g. {missing[:3]}), {len(unexpected)} unexpected keys (e.g. {unexpected[:3]}).",
            f"Use {FILE_NAME} from {PUBLISHED['curricularface']}.")
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise WrongModelError(f"{path}: tensor shapes do not fit an IR-101 ({str(exc).splitlines()[-1]}).",
                              f"Use {FILE_NAME} from {PUBLISHED['curricularface']}.") from exc
    return model.to(device).eval()
