"""Tiny scoring models in the published layouts (tests and ``score --smoke``; never committed).

- ``<root>/insightface/models/buffalo_l/{det_10g,w600k_r50}.onnx`` (insightface's default pack layout) via
  :func:`idvideo_core.testing.tiny_faces.write_tiny_buffalo_l`: a *probing* SCRFD whose answer depends on a colour
  code painted in the top-left corner of each image (:func:`code_image`), so frames can have a face, a face only after
  the protocols' grey padding, two faces, or none.
- ``glint360k_curricular_face_r101_backbone.bin``: the real IR-101 key layout (all 49 units) at a tiny width, random
  weights and BatchNorm statistics, written with ``torch.save`` as the published file is.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .tiny_faces import DetectorMode, PlantedFace, probe_value, write_tiny_buffalo_l

SIZE = 160                 # every test image is SIZE × SIZE
CODE = 40                  # the colour code fills the top-left CODE × CODE pixels
PAD = int(SIZE * 0.25)     # the protocols' grey padding of a SIZE image
PROBES = ((2, 2), (70, 70))  # (x, y) in the 320×320 detection input: the corner, and inside the code when padded

FACE = (44, 40, 124, 136)                          # the single face (x1, y1, x2, y2)
LEFT_FACE, RIGHT_FACE = (6, 52, 76, 144), (84, 44, 154, 136)
SMALL_FACE = (6, 100, 40, 140)

# red value of the code → what the detector reports
CODE_FACE = 255            # one face at FACE
CODE_PAD_ONLY = 0          # no face; after the grey padding: FACE
CODE_NONE = 64             # never a face
CODE_TWO = 192             # two faces, LEFT_FACE and RIGHT_FACE (RIGHT is larger)
CODE_SMALL_AND_FACE = 224  # a small face and FACE (the protocols take FACE, the largest)


def _shift(box, d):
    return tuple(v + d for v in box)


def detector_modes() -> list[DetectorMode]:
    grey = probe_value(128)
    s = (SIZE, SIZE)
    return [DetectorMode({0: probe_value(CODE_FACE)}, s, [PlantedFace(FACE)]),
            DetectorMode({0: grey, 1: probe_value(CODE_PAD_ONLY)}, (SIZE + 2 * PAD,) * 2,
                         [PlantedFace(_shift(FACE, PAD), score=0.8)]),
            DetectorMode({0: probe_value(CODE_TWO)}, s, [PlantedFace(LEFT_FACE, score=0.85), PlantedFace(RIGHT_FACE)]),
            DetectorMode({0: probe_value(CODE_SMALL_AND_FACE)}, s,
                         [PlantedFace(SMALL_FACE, score=0.95), PlantedFace(FACE, score=0.7)])]


def write_tiny_buffalo(insightface_dir: Path | str, seed: int = 0, always_face: bool = False) -> Path:
    """``<insightface_dir>/models/buffalo_l/`` with the probing detector; returns the pack folder.
    ``always_face``: a detector that reports one central face in every image instead (``score --smoke``)."""
    if always_face:
        modes = [DetectorMode({}, (320, 320), [PlantedFace((110, 100, 210, 220))])]
        return write_tiny_buffalo_l(insightface_dir, PROBES, modes, seed)
    return write_tiny_buffalo_l(insightface_dir, PROBES, detector_modes(), seed)


def tiny_curricularface_state_dict(widths=(4, 8, 12, 16), embed_dim: int = 32, seed: int = 0) -> dict:
    import torch

    from ..evaluate.curricularface import CurricularFaceIR101

    torch.manual_seed(seed)
    net = CurricularFaceIR101(widths, embed_dim)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(1000)
                if m.affine:
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.normal_(0, 0.1)
    return {k: v.clone() for k, v in net.state_dict().items()}


def write_tiny_curricularface(path: Path | str, seed: int = 0, **kw) -> Path:
    import torch

    from ..evaluate.curricularface import FILE_NAME

    path = Path(path)
    if path.suffix != ".bin":
        path = path / FILE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(tiny_curricularface_state_dict(seed=seed, **kw), path)
    return path


def write_tiny_scoring_models(models_root: Path | str, seed: int = 0, always_face: bool = False) -> Path:
    """A ComfyUI-style ``models/`` tree with buffalo_l under ``insightface/`` and IR-101 under ``idvideo/``."""
    models_root = Path(models_root)
    write_tiny_buffalo(models_root / "insightface", seed, always_face)
    write_tiny_curricularface(models_root / "idvideo", seed)
    return models_root


def code_image(content_rgb: np.ndarray, code: int, box=FACE) -> np.ndarray:
    """A SIZE × SIZE RGB image: ``content_rgb`` resized into ``box`` on a mid-grey-blue background, the colour code
    (red = ``code``) in the top-left corner."""
    import cv2

    img = np.full((SIZE, SIZE, 3), (90, 110, 130), np.uint8)
    x1, y1, x2, y2 = box
    img[y1:y2, x1:x2] = cv2.resize(content_rgb, (x2 - x1, y2 - y1), interpolation=cv2.INTER_AREA)
    img[:CODE, :CODE] = (code, 40, 200)
    return img


def two_face_image(left_rgb: np.ndarray, right_rgb: np.ndarray, code: int = CODE_TWO) -> np.ndarray:
    img = code_image(right_rgb, code, RIGHT_FACE)
    import cv2

    x1, y1, x2, y2 = LEFT_FACE
    img[y1:y2, x1:x2] = cv2.resize(left_rgb, (x2 - x1, y2 - y1), interpolation=cv2.INTER_AREA)
    img[:CODE, :CODE] = (code, 40, 200)
    return img


def _bytes_to_unicode() -> dict:
    """GPT-2/CLIP byte-level BPE alphabet (printable stand-ins for the 256 bytes)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def write_tiny_clip(folder: Path | str, seed: int = 0) -> Path:
    """A transformers ``CLIPModel`` folder as ``openai/clip-vit-base-patch32`` is laid out (config, weights,
    vocab/merges tokenizer, image processor), tiny and random: a byte-level vocabulary without merges."""
    import json

    import torch
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTokenizer,
    )

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    chars = list(_bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    ip = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=ip, tokenizer=tok).save_pretrained(folder)
    eos = vocab["<|endoftext|>"]
    cfg = CLIPConfig(text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=37,
                                      num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=77,
                                      bos_token_id=vocab["<|startoftext|>"], eos_token_id=eos, pad_token_id=eos),
                     vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                                        num_attention_heads=2, image_size=32, patch_size=8), projection_dim=16)
    torch.manual_seed(seed)
    CLIPModel(cfg).save_pretrained(folder)
    return folder
