"""Tiny face models in the real published layouts, for tests (never committed; written into tmp folders).

- ``models/antelopev2/scrfd_10g_bnkps.onnx``: an SCRFD-format graph (one input, 9 outputs: scores / distance boxes /
  distance key points for strides 8, 16, 32 × 2 anchors) whose outputs are constants, so it *plants* detections:
  each :class:`PlantedFace` fires at one anchor with its box, key points and score, in the pixel space of the
  analysed image (the ≤1024 px image both insightface and IDVideo see). The input still feeds the graph (× 0) so it
  is a real, used input.
- ``models/antelopev2/glintr100.onnx``: a small deterministic random ArcFace-shaped graph, 112×112 → 512.
- ``detection_Resnet50_Final.pth``: the real facexlib RetinaFace-R50 architecture with random weights; the head
  weights are zero and their biases make exactly one anchor type (stride 16, 128 px) fire everywhere with a face-like
  set of landmarks, so its detections are a deterministic grid that NMS thins out.
- ``parsing_bisenet.pth`` (random BiSeNet) and ``parsing_parsenet.pth`` (random ParseNet: facexlib's
  FaceRestoreHelper, used by the reference, always loads it).
- ``EVA02_CLIP_L_336_psz14_s6B.pt`` via :func:`idvideo_core.testing.tiny_eva.write_tiny_eva_checkpoint`.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

STRIDES = (8, 16, 32)
DET_SIZE = 640
# RetinaFace planting: level 1 (stride 16), anchor 1 (min size 128) fires; landmarks as fractions of the 128 box.
RETINA_LEVEL, RETINA_ANCHOR = 1, 1
RETINA_LANDMARKS = np.array([[-0.17, -0.10], [0.17, -0.10], [0.0, 0.06], [-0.13, 0.22], [0.13, 0.22]])


@dataclass
class PlantedFace:
    """A face the tiny SCRFD reports: box (x1, y1, x2, y2) and 5 key points in analysed-image pixels."""

    bbox: Sequence[float]
    kps: Sequence[Sequence[float]] | None = None
    score: float = 0.9

    def keypoints(self) -> np.ndarray:
        if self.kps is not None:
            return np.asarray(self.kps, dtype=np.float64)
        x1, y1, x2, y2 = self.bbox
        w, h = x2 - x1, y2 - y1
        rel = np.array([[0.32, 0.40], [0.68, 0.40], [0.50, 0.58], [0.36, 0.76], [0.64, 0.76]])
        return np.stack([x1 + rel[:, 0] * w, y1 + rel[:, 1] * h], axis=-1)


def det_scale_for(width: int, height: int, det_size: int = DET_SIZE) -> float:
    """The letter-box scale SCRFD uses for an image of this size (insightface's rule)."""
    im_ratio = float(height) / width
    if im_ratio > 1.0:
        new_h = det_size
    else:
        new_h = int(det_size * im_ratio)
    return float(new_h) / height


def planted_face_from_retina(row: np.ndarray, score: float = 0.9, shrink: float = 0.0) -> PlantedFace:
    """A planted SCRFD face on a RetinaFace detection row (box, score, 10 landmark coords)."""
    x1, y1, x2, y2 = (float(v) for v in row[:4])
    dx, dy = shrink * (x2 - x1), shrink * (y2 - y1)
    return PlantedFace((x1 + dx, y1 + dy, x2 - dx, y2 - dy), np.asarray(row[5:15], np.float64).reshape(5, 2), score)


def _save_onnx(graph, path: Path | str) -> Path:
    """A checked opset-13 model (ir 8, what onnxruntime and insightface 0.7.3/2.x read) written to ``path``."""
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _planted_arrays(image_size: tuple[int, int], faces: Sequence[PlantedFace], det_size: int) -> list[np.ndarray]:
    """The 9 SCRFD outputs (scores ×3 strides, boxes ×3, key points ×3) that report ``faces`` on an image of
    ``image_size`` = (width, height); each face fires at one stride-8 anchor."""
    w, h = image_size
    scale = det_scale_for(w, h, det_size)
    scores, boxes, kpss = [], [], []
    for s in STRIDES:
        n = (det_size // s) ** 2 * 2
        scores.append(np.zeros((n, 1), np.float32))
        boxes.append(np.zeros((n, 4), np.float32))
        kpss.append(np.zeros((n, 10), np.float32))
    lvl, s = 0, STRIDES[0]
    g = det_size // s
    for f in faces:
        x1, y1, x2, y2 = (float(v) * scale for v in f.bbox)
        pts = f.keypoints() * scale
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        col, row = int(np.clip(round(cx / s), 0, g - 1)), int(np.clip(round(cy / s), 0, g - 1))
        k = (row * g + col) * 2
        ax, ay = col * s, row * s
        if scores[lvl][k, 0] != 0:
            raise ValueError("two planted faces share one anchor; move them apart")
        scores[lvl][k, 0] = f.score
        boxes[lvl][k] = np.array([ax - x1, ay - y1, x2 - ax, y2 - ay]) / s
        kpss[lvl][k] = ((pts - np.array([ax, ay])) / s).ravel()
    return scores + boxes + kpss


SCRFD_OUTPUTS = [f"score_{s}" for s in STRIDES] + [f"bbox_{s}" for s in STRIDES] + [f"kps_{s}" for s in STRIDES]


def write_tiny_scrfd(path: Path | str, image_size: tuple[int, int], faces: Sequence[PlantedFace] = (),
                     det_size: int = DET_SIZE) -> Path:
    """SCRFD-format ONNX planting ``faces`` for an analysed image of ``image_size`` = (width, height)."""
    from onnx import TensorProto, helper, numpy_helper

    arrays = _planted_arrays(image_size, faces, det_size)
    nodes = [helper.make_node("ReduceMean", ["input.1"], ["mean"], keepdims=0, name="ReduceMean_0"),
             helper.make_node("Mul", ["mean", "zero"], ["nil"], name="Mul_1")]
    inits = [numpy_helper.from_array(np.array(0.0, np.float32), "zero")]
    outputs = []
    for name, arr in zip(SCRFD_OUTPUTS, arrays):
        inits.append(numpy_helper.from_array(arr, f"{name}_const"))
        nodes.append(helper.make_node("Add", [f"{name}_const", "nil"], [name], name=f"Add_{name}"))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(arr.shape)))
    graph = helper.make_graph(nodes, "tiny_scrfd",
                              [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, det_size, det_size])],
                              outputs, inits)
    return _save_onnx(graph, path)


@dataclass
class DetectorMode:
    """One planted answer of a probing detector: when every probe ``i`` in ``when`` reads ``when[i]`` (± tolerance),
    the detector reports ``faces`` (coordinates in pixels of an analysed image of ``image_size``)."""

    when: dict
    image_size: tuple[int, int]
    faces: Sequence[PlantedFace] = ()


def probe_value(red: int) -> float:
    """What a probe reads for a pixel whose red channel is ``red`` (SCRFD's blob: RGB, (x − 127.5) / 128)."""
    return (float(red) - 127.5) / 128.0


def write_tiny_scrfd_modes(path: Path | str, probes: Sequence[tuple[int, int]], modes: Sequence[DetectorMode],
                           det_size: int = 320, tol: float = 0.1, dynamic: bool = True) -> Path:
    """An SCRFD-format detector whose answer depends on the image: it reads the red channel at ``probes`` ((x, y) in
    the letter-boxed detection input) and reports the faces of the mode whose conditions hold (none: no face).

    This lets one detector file find faces in some frames, none in others, and others only after the
    grey padding of the evaluation protocols (the padded frame puts grey where the frame's corner was).
    ``dynamic``: the input's height and width are symbolic like the real ``det_10g.onnx``'s, so the caller's
    detection size decides the input (the planted outputs fit ``det_size`` only: any other size fails loudly)."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], [numpy_helper.from_array(np.array(tol, np.float32), "tol")]
    for j, (x, y) in enumerate(probes):
        inits += [numpy_helper.from_array(np.array([0, 0, y, x], np.int64), f"p{j}_start"),
                  numpy_helper.from_array(np.array([1, 1, y + 1, x + 1], np.int64), f"p{j}_end")]
        nodes += [helper.make_node("Slice", ["input.1", f"p{j}_start", f"p{j}_end"], [f"p{j}_px"], name=f"Slice_p{j}"),
                  helper.make_node("ReduceMean", [f"p{j}_px"], [f"p{j}"], keepdims=0, name=f"ReduceMean_p{j}")]
    totals = [None] * len(SCRFD_OUTPUTS)
    for k, mode in enumerate(modes):
        ind = None
        for j, target in mode.when.items():
            name = f"m{k}_p{j}"
            inits.append(numpy_helper.from_array(np.array(target, np.float32), f"{name}_t"))
            nodes += [helper.make_node("Sub", [f"p{j}", f"{name}_t"], [f"{name}_d"], name=f"Sub_{name}"),
                      helper.make_node("Abs", [f"{name}_d"], [f"{name}_a"], name=f"Abs_{name}"),
                      helper.make_node("Less", [f"{name}_a", "tol"], [f"{name}_b"], name=f"Less_{name}"),
                      helper.make_node("Cast", [f"{name}_b"], [f"{name}_f"], to=TensorProto.FLOAT,
                                       name=f"Cast_{name}")]
            if ind is None:
                ind = f"{name}_f"
            else:
                nodes.append(helper.make_node("Mul", [ind, f"{name}_f"], [f"{name}_and"], name=f"Mul_{name}"))
                ind = f"{name}_and"
        if ind is None:  # no condition: this mode always fires
            ind = f"m{k}_always"
            inits.append(numpy_helper.from_array(np.array(1.0, np.float32), ind))
        for i, arr in enumerate(_planted_arrays(mode.image_size, mode.faces, det_size)):
            c = f"m{k}_{SCRFD_OUTPUTS[i]}"
            inits.append(numpy_helper.from_array(arr, c))
            nodes.append(helper.make_node("Mul", [c, ind], [f"{c}_on"], name=f"Mul_{c}"))
            if totals[i] is None:
                totals[i] = f"{c}_on"
            else:
                nodes.append(helper.make_node("Add", [totals[i], f"{c}_on"], [f"{c}_sum"], name=f"Add_{c}"))
                totals[i] = f"{c}_sum"
    outputs = []
    for i, name in enumerate(SCRFD_OUTPUTS):
        shape = _planted_arrays((det_size, det_size), (), det_size)[i].shape
        if totals[i] is None:
            inits.append(numpy_helper.from_array(np.zeros(shape, np.float32), f"{name}_zero"))
            totals[i] = f"{name}_zero"
        nodes.append(helper.make_node("Identity", [totals[i]], [name], name=f"Identity_{name}"))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape)))
    side = ["?", "?"] if dynamic else [det_size, det_size]
    graph = helper.make_graph(nodes, "tiny_scrfd_probing",
                              [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, *side])],
                              outputs, inits)
    return _save_onnx(graph, path)


def write_tiny_buffalo_l(folder: Path | str, probes: Sequence[tuple[int, int]], modes: Sequence[DetectorMode],
                         seed: int = 0) -> Path:
    """insightface's default pack layout, ``<folder>/models/buffalo_l/{det_10g,w600k_r50}.onnx``: a probing SCRFD
    at the benchmarks' 320×320 detection size and a random ArcFace-shaped recogniser. Returns the pack folder."""
    pack = Path(folder) / "models" / "buffalo_l"
    write_tiny_scrfd_modes(pack / "det_10g.onnx", probes, modes, det_size=320)
    write_tiny_arcface(pack / "w600k_r50.onnx", seed)
    return pack


def write_tiny_arcface(path: Path | str, seed: int = 0) -> Path:
    """ArcFace-shaped ONNX: (N, 3, 112, 112) → Conv 8×8/8 → Relu → Flatten → Gemm → (N, 512)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    wc = (rng.standard_normal((8, 3, 8, 8)) / np.sqrt(192)).astype(np.float32)
    bc = (0.1 * rng.standard_normal(8)).astype(np.float32)
    wg = (rng.standard_normal((512, 8 * 14 * 14)) / np.sqrt(8 * 14 * 14) * 4).astype(np.float32)
    bg = (0.5 * rng.standard_normal(512)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["input.1", "wc", "bc"], ["c"], kernel_shape=[8, 8], strides=[8, 8],
                              name="Conv_0"),
             helper.make_node("Relu", ["c"], ["r"], name="Relu_1"),
             helper.make_node("Flatten", ["r"], ["f"], axis=1, name="Flatten_2"),
             helper.make_node("Gemm", ["f", "wg", "bg"], ["683"], transB=1, name="Gemm_3")]
    inits = [numpy_helper.from_array(a, n) for a, n in ((wc, "wc"), (bc, "bc"), (wg, "wg"), (bg, "bg"))]
    graph = helper.make_graph(nodes, "tiny_arcface",
                              [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["None", 3, 112, 112])],
                              [helper.make_tensor_value_info("683", TensorProto.FLOAT, ["None", 512])], inits)
    return _save_onnx(graph, path)


def tiny_retinaface_state_dict(seed: int = 0, box_scale: float = 1.0, fire: bool = True) -> dict:
    """RetinaFace-R50 with random weights; ``fire=False`` gives a detector that never finds a face."""
    import torch
    from facexlib.detection.retinaface import RetinaFace

    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = RetinaFace(network_name="resnet50", half=False, device=torch.device("cpu"))
    with torch.no_grad():
        for heads in (net.ClassHead, net.BboxHead, net.LandmarkHead):
            for head in heads:
                head.conv1x1.weight.zero_()
                head.conv1x1.bias.zero_()
        for lvl, head in enumerate(net.ClassHead):
            b = head.conv1x1.bias.view(2, 2)          # (anchor, [background, face])
            b[:, 1] = -10.0
            if lvl == RETINA_LEVEL and fire:
                b[RETINA_ANCHOR, 1] = 10.0
        box = net.BboxHead[RETINA_LEVEL].conv1x1.bias.view(2, 4)
        box[RETINA_ANCHOR, 2:] = float(np.log(box_scale) / 0.2)     # decode: size = prior × exp(0.2 · d)
        lm = net.LandmarkHead[RETINA_LEVEL].conv1x1.bias.view(2, 10)
        lm[RETINA_ANCHOR] = torch.tensor(RETINA_LANDMARKS.ravel() / 0.1, dtype=torch.float32)  # centre + 0.1·d·size
    return {k: v.clone() for k, v in net.state_dict().items()}


def write_tiny_retinaface(path: Path | str, seed: int = 0, fire: bool = True) -> Path:
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(tiny_retinaface_state_dict(seed, fire=fire), path)
    return path


def tiny_bisenet_state_dict(seed: int = 0) -> dict:
    import torch
    from facexlib.parsing.bisenet import BiSeNet

    torch.manual_seed(seed)
    net = BiSeNet(num_class=19)
    with torch.no_grad():  # random BN statistics so the parse map is a patchwork of kept and whitened classes
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    return net.state_dict()


def write_tiny_bisenet(path: Path | str, seed: int = 0) -> Path:
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(tiny_bisenet_state_dict(seed), path)
    return path


def write_tiny_parsenet(path: Path | str, seed: int = 0) -> Path:
    """Only the reference needs it (facexlib's FaceRestoreHelper always loads ParseNet)."""
    import torch
    from facexlib.parsing.parsenet import ParseNet

    torch.manual_seed(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ParseNet(in_size=512, out_size=512, parsing_ch=19).state_dict(), path)
    return path


def central_face(image_size: tuple[int, int], fraction: float = 0.35) -> PlantedFace:
    w, h = image_size
    s = fraction * min(w, h)
    return PlantedFace((w / 2 - s / 2, h / 2 - s / 2, w / 2 + s / 2, h / 2 + s / 2))


def write_tiny_face_encoder(folder: Path | str, faces: Sequence[PlantedFace] | None = None,
                            image_size: tuple[int, int] = (1024, 708), seed: int = 0, eva: bool = True,
                            parsenet: bool = True) -> Path:
    """A ConsisID ``face_encoder/`` folder: ``models/antelopev2/{scrfd_10g_bnkps,glintr100}.onnx``, the facexlib
    ``.pth`` files and (``eva=True``) the EVA ``.pt``. ``image_size`` is the analysed image's (width, height);
    ``faces=None`` plants one face in the middle of such an image."""
    folder = Path(folder)
    if faces is None:
        faces = [central_face(image_size)]
    ante = folder / "models" / "antelopev2"
    write_tiny_scrfd(ante / "scrfd_10g_bnkps.onnx", image_size, faces)
    write_tiny_arcface(ante / "glintr100.onnx", seed)
    write_tiny_retinaface(folder / "detection_Resnet50_Final.pth", seed)
    write_tiny_bisenet(folder / "parsing_bisenet.pth", seed)
    if parsenet:
        write_tiny_parsenet(folder / "parsing_parsenet.pth", seed)
    if eva:
        from .tiny_eva import write_tiny_eva_checkpoint

        write_tiny_eva_checkpoint(folder / "EVA02_CLIP_L_336_psz14_s6B.pt", seed)
    return folder
