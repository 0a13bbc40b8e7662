"""The bad-input table: every user-fixable problem ends in an IDVideoError naming the fix, or in a clear warning.

Each case drives the real node (or the core call the node makes) on tiny checkpoints in the published layouts.
Error cases assert the exact IDVideoError subclass (so no raw library exception can escape) and that the message
carries a "Fix:" line with the named remedy; warning cases assert the run succeeds and the log says what was changed.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from idvideo_core import errors as E

TOM = Path(__import__("importlib").util.find_spec("insightface").origin).parent / "data" / "images" / \
    "Tom_Hanks_54745.png"
LONG_PROMPT = " ".join(f"word{i % 50} and more" for i in range(700))


def _photo() -> torch.Tensor:
    from PIL import Image

    return torch.from_numpy(np.asarray(Image.open(TOM).convert("RGB"), np.float32) / 255.0)[None]


def _link_tree(src: Path, dst: Path) -> Path:
    """A copy of a model folder made of hard links (cheap); files to be damaged are replaced, never edited."""
    shutil.copytree(src, dst, copy_function=os.link, symlinks=True)
    return dst


def _replace(path: Path, data: bytes) -> None:
    path.unlink()
    path.write_bytes(data)


# ------------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def root(consisid_folder, tmp_path_factory) -> Path:
    """models/ with the session's tiny ConsisID (linked) and tiny Wan / Concat-ID / Phantom files."""
    from idvideo_core.testing import build_wan_models

    r = tmp_path_factory.mktemp("bad_models")
    (r / "consisid").mkdir()
    (r / "consisid" / "ConsisID-preview").symlink_to(consisid_folder, target_is_directory=True)
    build_wan_models(r)
    return r


@dataclasses.dataclass
class Stack:
    M: dict
    root: Path
    consisid: object
    fm: object
    faces: list
    ident: object
    local: object
    text: object
    wan: object
    wan_text: object
    blind: object          # face models whose detectors never fire
    two: object            # face models planting two faces (30 px at left, 80 px at right) on a 200×100 image


@pytest.fixture(scope="module")
def s(pack, root, tmp_path_factory):
    from idvideo_core.faces.onnx_session import open_session
    from idvideo_core.faces.scrfd import ScrfdDetector
    from idvideo_core.testing.tiny_consisid import TINY_HEIGHT, TINY_WIDTH
    from idvideo_core.testing.tiny_faces import PlantedFace, write_tiny_scrfd

    mp = pytest.MonkeyPatch()
    mp.setenv("IDVIDEO_MODELS_DIR", str(root))
    M = pack.NODE_CLASS_MAPPINGS
    model, = M["IDVConsisIDModelLoader"]().load("ConsisID-preview", "fp32", "auto", 0)
    fm, = M["IDVFaceModelsLoader"]().load("CPU", "fp32")
    faces = M["IDVFaceLoader"]().load(fm, _photo(), "largest", 0, "error")["result"][0]
    local, = M["IDVLocalIdentity"]().extract(fm, faces)
    ident, _ = M["IDVGlobalIdentity"]().extract(model, faces, TINY_WIDTH, TINY_HEIGHT)
    text, = M["IDVTextEncode"]().encode(model, "a man smiles", "")
    wan, = M["IDVWanModelLoader"]().load("Phantom-Wan", "Wan2.1-T2V-1.3B-Diffusers", "Phantom-Wan-1.3B.pth",
                                         "(from base folder)", "(from base folder)", "fp32", "auto", 0)
    wan_text, = M["IDVTextEncode"]().encode(wan, "a man walks", "")

    # Detectors that find nothing: silent RetinaFace (same net, no anchor above threshold) + an empty SCRFD.
    from idvideo_core.faces.facexlib_nets import load_retinaface

    tmp = tmp_path_factory.mktemp("faces_bad")
    sd = torch.load(root / "consisid" / "ConsisID-preview" / "face_encoder" / "detection_Resnet50_Final.pth",
                    weights_only=True)
    for k in range(3):
        sd[f"ClassHead.{k}.conv1x1.bias"].view(2, 2)[:, 1] = -10.0
    torch.save(sd, tmp / "silent.pth")
    write_tiny_scrfd(tmp / "empty.onnx", (112, 112), [])
    write_tiny_scrfd(tmp / "two.onnx", (200, 100), [PlantedFace((10, 20, 40, 50), score=0.8),
                                                  PlantedFace((110, 10, 190, 90), score=0.9)])
    silent = dataclasses.replace(fm, retinaface=load_retinaface(tmp / "silent.pth"))
    blind = dataclasses.replace(silent, detector=ScrfdDetector(open_session(tmp / "empty.onnx")))
    two = dataclasses.replace(silent, detector=ScrfdDetector(open_session(tmp / "two.onnx")))
    yield Stack(M, root, model, fm, faces, ident, local, text, wan, wan_text, blind, two)
    mp.undo()


@pytest.fixture()
def env(s, monkeypatch, tmp_path):
    monkeypatch.setenv("IDVIDEO_MODELS_DIR", str(s.root))
    monkeypatch.setenv("IDVIDEO_OUTPUT_DIR", str(tmp_path / "output"))
    return s


# ---------------------------------------------------------------------------------------------------- actions
def _sample(s, **kw):
    from idvideo_core.testing.tiny_consisid import TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH

    args = dict(width=TINY_WIDTH, height=TINY_HEIGHT, num_frames=TINY_FRAMES, steps=1, cfg=6.0, seed=1)
    args.update(kw)
    return s.M["IDVSampler"]().sample(s.consisid, s.text, args["width"], args["height"], args["num_frames"],
                                      args["steps"], args["cfg"], args["seed"], vae_tiling=False,
                                      global_identity=s.ident, local_identity=s.local)[0]


def _wan_sample(s, text=None, **kw):
    args = dict(width=32, height=32, num_frames=5, steps=1, cfg=5.0, seed=1)
    args.update(kw)
    return s.M["IDVSampler"]().sample(s.wan, text or s.wan_text, args["width"], args["height"],
                                      args["num_frames"], args["steps"], args["cfg"], args["seed"])[0]


def _face_loader(models, image, selection="largest", index=0, on_no_face="error"):
    def run(s, tmp_path, mp):
        return _node_faces(s, getattr(s, models), image() if callable(image) else image, selection, index,
                           on_no_face)
    return run


def _node_faces(s, models, image, selection, index, on_no_face):
    return s.M["IDVFaceLoader"]().load(models, image, selection, index, on_no_face)["result"]


def _combine(s, tmp_path, prefix="IDVideo", fps=8.0, fmt="h264-mp4"):
    frames = torch.rand(3, 16, 16, 3, generator=torch.Generator().manual_seed(0))
    return s.M["IDVideoCombine"]().combine(frames, fps, prefix, fmt, True)


def case_missing_face_models(s, tmp_path, mp):
    mp.setenv("IDVIDEO_MODELS_DIR", str(tmp_path / "empty_models"))
    s.M["IDVFaceModelsLoader"]().load("CPU", "fp32")


def case_missing_consisid(s, tmp_path, mp):
    mp.setenv("IDVIDEO_MODELS_DIR", str(tmp_path / "empty_models"))
    loader = s.M["IDVConsisIDModelLoader"]
    choice = loader.INPUT_TYPES()["required"]["model"][0][0]
    loader().load(choice, "fp32", "auto", 0)


def case_corrupt_shard(s, tmp_path, mp):
    models = tmp_path / "models"
    folder = _link_tree(s.root / "consisid" / "ConsisID-preview", models / "consisid" / "Broken")
    shard = sorted((folder / "transformer").glob("*.safetensors"))[1]
    _replace(shard, shard.read_bytes()[: shard.stat().st_size // 2])   # a half-finished download
    mp.setenv("IDVIDEO_MODELS_DIR", str(models))
    s.M["IDVConsisIDModelLoader"]().load("Broken", "fp32", "auto", 0)


def case_truncated_onnx(s, tmp_path, mp):
    from idvideo_core import runtime

    folder = _link_tree(s.root / "consisid" / "ConsisID-preview" / "face_encoder", tmp_path / "c" / "face_encoder")
    onnx = folder / "models" / "antelopev2" / "glintr100.onnx"
    _replace(onnx, onnx.read_bytes()[:3000])
    mp.setenv("IDVIDEO_MODELS_DIR", str(tmp_path / "nothing_else"))
    runtime.load_face_models("CPU", "fp32", consisid_folder=tmp_path / "c")


def case_wan_folder_to_consisid(s, tmp_path, mp):
    models = tmp_path / "models"
    (models / "consisid").mkdir(parents=True)
    (models / "consisid" / "LooksLikeConsisID").symlink_to(s.root / "wan" / "Wan2.1-T2V-1.3B-Diffusers")
    mp.setenv("IDVIDEO_MODELS_DIR", str(models))
    s.M["IDVConsisIDModelLoader"]().load("LooksLikeConsisID", "fp32", "auto", 0)


def case_wan_file_to_consisid(s, tmp_path, mp):
    from idvideo_core.backbones.consisid.loading import load_consisid

    load_consisid(s.root / "diffusion_models" / "wan2.1_t2v_1.3B_fp16.safetensors", "fp32")


def case_consisid_folder_to_wan(s, tmp_path, mp):
    models = tmp_path / "models"
    (models / "wan").mkdir(parents=True)
    (models / "wan" / "NotWan").symlink_to(s.root / "consisid" / "ConsisID-preview")
    mp.setenv("IDVIDEO_MODELS_DIR", str(models))
    s.M["IDVWanModelLoader"]().load("Phantom-Wan", "NotWan", "(from base folder)", "(from base folder)",
                                    "(from base folder)", "fp32", "auto", 0)


def case_consisid_file_to_wan(s, tmp_path, mp):
    from safetensors.torch import load_file, save_file

    models = _link_tree(s.root, tmp_path / "models")
    sd = {}
    for shard in sorted((s.root / "consisid" / "ConsisID-preview" / "transformer").glob("*.safetensors")):
        sd.update(load_file(str(shard)))
    save_file(sd, str(models / "diffusion_models" / "consisid_transformer.safetensors"))
    mp.setenv("IDVIDEO_MODELS_DIR", str(models))
    s.M["IDVWanModelLoader"]().load("Phantom-Wan", "Wan2.1-T2V-1.3B-Diffusers", "consisid_transformer.safetensors",
                                    "(from base folder)", "(from base folder)", "fp32", "auto", 0)


class _RunsCode:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def case_pickle_runs_code(s, tmp_path, mp):
    models = _link_tree(s.root, tmp_path / "models")
    torch.save({"patch_embedding.weight": torch.zeros(1), "x": _RunsCode(tmp_path / "PWNED")},
               models / "concatid" / "evil.pt")
    mp.setenv("IDVIDEO_MODELS_DIR", str(models))
    try:
        s.M["IDVWanModelLoader"]().load("Concat-ID-Wan", "Wan2.1-T2V-1.3B-Diffusers", "evil.pt",
                                        "(from base folder)", "(from base folder)", "fp32", "auto", 0)
    finally:
        assert not (tmp_path / "PWNED").exists(), "the pickle ran code"


def case_no_av(s, tmp_path, mp):
    mp.setitem(sys.modules, "av", None)
    try:
        _combine(s, tmp_path)
    finally:
        out = tmp_path / "output"
        assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()], "a partial file was left"


def case_no_onnxruntime(s, tmp_path, mp):
    mp.setitem(sys.modules, "onnxruntime", None)
    s.M["IDVFaceModelsLoader"]().load("CPU", "fp32")


def case_no_facexlib(s, tmp_path, mp):
    mp.setitem(sys.modules, "facexlib", None)
    s.M["IDVFaceModelsLoader"]().load("CPU", "fp32")


def case_unwritable_output(s, tmp_path, mp):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    mp.setenv("IDVIDEO_OUTPUT_DIR", str(blocker / "output"))   # mkdir fails (ENOTDIR) even for root
    _combine(s, tmp_path)


def case_disk_full(s, tmp_path, mp):
    import errno

    from idvideo_core import video

    opened = []

    class Filling:
        def __init__(self, path):
            self.f, self.n, self.closed = open(path, "xb"), 0, False
            opened.append(path)

        def write(self, data):
            if self.n + len(data) > 1500:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.n += len(data)
            return self.f.write(data)

        def seek(self, *a):
            return self.f.seek(*a)

        def tell(self):
            return self.f.tell()

        def flush(self):
            self.f.flush()

        def close(self):
            self.closed = True
            self.f.close()

    mp.setattr(video, "_open_output_file", Filling)
    try:
        _combine(s, tmp_path)
    finally:
        assert opened and not opened[0].exists()
        assert not [p for p in (tmp_path / "output").rglob("*") if p.is_file()]


def gray(img):
    return img.mean(dim=-1, keepdim=True)


def rgba(img):
    return torch.cat([img, torch.ones_like(img[..., :1])], dim=-1)


def case_png16_cli(s, tmp_path, mp):
    from PIL import Image

    from idvideo_core.cli import _load_image

    rgb = np.asarray(Image.open(TOM).convert("L"), np.uint16) * 257
    Image.fromarray(rgb).save(tmp_path / "face16.png")
    assert Image.open(tmp_path / "face16.png").mode.startswith("I;16")
    img = _load_image(tmp_path / "face16.png")
    assert img.shape == (1, 112, 112, 3) and float(img.min()) < 0.5 < float(img.max()) <= 1.0
    return _node_faces(s, s.fm, img, "largest", 0, "error")


def case_huge_image(s, tmp_path, mp):
    big = torch.full((1, 8000, 8000, 3), 0.5)
    faces, aligned, whitened = _node_faces(s, s.fm, big, "largest", 0, "use whole image")
    assert aligned.shape == (1, 512, 512, 3)
    assert faces[0].source_rgb.shape[:2] == (1024, 1024)   # analysed at ≤ 1024 px, as the reference
    return faces


def _two_faces_image():
    return torch.rand(1, 100, 200, 3, generator=torch.Generator().manual_seed(3))


ERR, WARN = "error", "warn"
CASES = [
    # ---- faces and images
    ("no_face", _face_loader("blind", _photo), ERR, E.NoFaceError, ["No face was found", "'use whole image'"]),
    ("many_faces_index_out_of_range", _face_loader("two", _two_faces_image, "index", 5), ERR, E.InputError,
     ["only 2 face(s)", "between 0 and 1"]),
    ("face_under_40px", _face_loader("two", _two_faces_image, "index", 0), WARN, None, ["under 40 px"]),
    ("grayscale_1_channel", _face_loader("fm", lambda: gray(_photo())), WARN, None, ["grayscale"]),
    ("rgba_4_channels", _face_loader("fm", lambda: rgba(_photo())), WARN, None, ["alpha"]),
    ("png_16_bit_cli_loader", case_png16_cli, WARN, None, ["16-bit gray image"]),
    ("image_1x1", _face_loader("fm", lambda: torch.rand(1, 1, 1, 3)), ERR, E.InputError, ["too small", "at least"]),
    ("image_2_channels", _face_loader("fm", lambda: torch.rand(1, 64, 64, 2)), ERR, E.InputError,
     ["Expected an RGB image"]),
    ("image_8000x8000", case_huge_image, WARN, None, []),
    ("empty_batch", _face_loader("fm", lambda: torch.zeros(0, 64, 64, 3)), ERR, E.InputError,
     ["empty", "Load Image"]),
    ("gray_subject_reference", lambda s, t, m: s.M["IDVMultiIdentityConcat"]().concat(
        64, 32, "whole image, white pad (Phantom)", "white pad (Phantom)", subject_1=torch.rand(1, 20, 30, 1)),
     WARN, None, []),
    # ---- sizes, frames, steps, cfg
    ("consisid_size_not_multiple_of_16", lambda s, t, m: _sample(s, width=100), ERR, E.InputError,
     ["only generates 96×64", "Set 'width' to 96 and 'height' to 64"]),
    ("consisid_not_trained_size", lambda s, t, m: _sample(s, width=128, height=64), ERR, E.InputError,
     ["learned for that size", "Set 'width' to 96"]),
    ("wan_size_not_multiple_of_16", lambda s, t, m: _wan_sample(s, width=40), ERR, E.InputError,
     ["divisible by 16"]),
    ("consisid_frames_not_4k1", lambda s, t, m: _sample(s, num_frames=8), WARN, None,
     ["8 frames cannot be made by this model (it makes 8k+1 frames); making 9 frames"]),
    ("wan_frames_not_4k1", lambda s, t, m: _wan_sample(s, num_frames=7), WARN, None,
     ["7 frames is not 4k+1; using 5 frames"]),
    ("consisid_zero_steps", lambda s, t, m: _sample(s, steps=0), ERR, E.InputError, ["steps must be at least 1"]),
    ("wan_negative_steps", lambda s, t, m: _wan_sample(s, steps=-3), ERR, E.InputError,
     ["steps must be at least 1"]),
    ("consisid_cfg_below_1", lambda s, t, m: _sample(s, cfg=0.5), ERR, E.InputError, ["out of range", "between 1"]),
    ("wan_cfg_above_30", lambda s, t, m: _wan_sample(s, cfg=50.0), ERR, E.InputError, ["out of range", "between 1"]),
    ("consisid_text_to_wan_sampler", lambda s, t, m: _wan_sample(s, text=s.text), ERR, E.InputError,
     ["CogVideoX", "Text Encode"]),
    # ---- model files
    ("missing_face_models", case_missing_face_models, ERR, E.MissingModelError,
     ["Searched:", "empty_models", "never downloads"]),
    ("missing_consisid_folder", case_missing_consisid, ERR, E.MissingModelError,
     ["Searched:", "empty_models", "ConsisID-preview"]),
    ("corrupt_safetensors_shard", case_corrupt_shard, ERR, E.CorruptFileError,
     ["diffusion_pytorch_model-00002-of-00004.safetensors", "incomplete download", "download it again"]),
    ("truncated_onnx", case_truncated_onnx, ERR, E.CorruptFileError, ["glintr100.onnx", "download it again"]),
    ("wan_folder_to_consisid_loader", case_wan_folder_to_consisid, ERR, E.WrongModelError,
     ["WanTransformer3DModel", "Wan Model Loader"]),
    ("wan_file_to_consisid_loader", case_wan_file_to_consisid, ERR, E.WrongModelError,
     ["detected from its keys", "Wan Model Loader"]),
    ("consisid_folder_to_wan_loader", case_consisid_folder_to_wan, ERR, E.WrongModelError,
     ["ConsisIDTransformer3DModel", "Wan2.1"]),
    ("consisid_file_to_wan_loader", case_consisid_file_to_wan, ERR, E.WrongModelError,
     ["consisid_transformer.safetensors is a ConsisID checkpoint (detected from its keys)", "ConsisID Model Loader"]),
    ("pickle_that_runs_code", case_pickle_runs_code, ERR, E.UnsafeFileError, ["refuses", "safetensors"]),
    # ---- precision, prompts
    ("bf16_on_cpu_consisid", lambda s, t, m: s.M["IDVConsisIDModelLoader"]().load("ConsisID-preview", "bf16",
                                                                                 "auto", 0), WARN, None,
     ["bf16 was chosen but the model runs on the CPU; using fp32"]),
    ("fp16_on_cpu_wan", lambda s, t, m: s.M["IDVWanModelLoader"]().load(
        "Phantom-Wan", "Wan2.1-T2V-1.3B-Diffusers", "Phantom-Wan-1.3B.pth", "(from base folder)",
        "(from base folder)", "fp16", "auto", 0), WARN, None, ["fp16 was chosen but the model runs on the CPU"]),
    ("long_prompt_consisid", lambda s, t, m: s.M["IDVTextEncode"]().encode(s.consisid, LONG_PROMPT, ""), WARN,
     None, ["longer than 226 tokens"]),
    ("long_prompt_wan", lambda s, t, m: s.M["IDVTextEncode"]().encode(s.wan, LONG_PROMPT, ""), WARN, None,
     ["longer than 512 UMT5 tokens"]),
    # ---- dependencies and output
    ("missing_av", case_no_av, ERR, E.MissingDependencyError, ["'av'", "python -m pip install av"]),
    ("missing_onnxruntime", case_no_onnxruntime, ERR, E.MissingDependencyError,
     ["'onnxruntime'", "pip install onnxruntime"]),
    ("missing_facexlib", case_no_facexlib, ERR, E.MissingDependencyError, ["'facexlib'", "pip install facexlib"]),
    ("unwritable_output_folder", case_unwritable_output, ERR, E.OutputWriteError,
     ["cannot write to the output folder", "--output-directory"]),
    ("disk_full_during_write", case_disk_full, ERR, E.OutputWriteError,
     ["disk filled up", "partial file was removed", "Free some disk space"]),
    ("prefix_traversal", lambda s, t, m: _combine(s, t, prefix="../../escape"), ERR, E.InputError,
     ["not allowed", "outside the output folder"]),
    ("frame_rate_zero", lambda s, t, m: _combine(s, t, fps=0.0), ERR, E.InputError, ["Frame rate"]),
]


def test_table_is_large_enough():
    assert len(CASES) >= 25
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("name, action, kind, err, needles", CASES, ids=[c[0] for c in CASES])
def test_bad_input(env, tmp_path, monkeypatch, caplog, name, action, kind, err, needles):
    if kind == ERR:
        with pytest.raises(E.IDVideoError) as info:
            action(env, tmp_path, monkeypatch)
        assert type(info.value) is err, f"{type(info.value).__name__}: {info.value}"
        msg = str(info.value)
        assert "\nFix: " in msg, msg
        for needle in needles:
            assert needle in msg, f"{needle!r} not in:\n{msg}"
        assert "Traceback" not in msg
    else:
        with caplog.at_level(logging.WARNING, logger="idvideo"):
            action(env, tmp_path, monkeypatch)
        for needle in needles:
            assert needle in caplog.text, f"{needle!r} not in the log:\n{caplog.text}"


def test_many_faces_selection_is_consistent(env):
    """Two faces: 'largest' takes the 80-px one, index 0 the left one, 'all' both left to right; the crop, key
    points and embedding of a choice all belong to that same face."""
    img = _two_faces_image()
    largest = _node_faces(env, env.two, img, "largest", 0, "error")[0]
    left = _node_faces(env, env.two, img, "index", 0, "error")[0]
    both = _node_faces(env, env.two, img, "all (left to right)", 0, "error")[0]
    assert len(largest) == len(left) == 1 and len(both) == 2
    assert largest[0].bbox[0] > 100 and left[0].bbox[0] < 50
    assert [f.bbox[0] < 100 for f in both] == [True, False]
    np.testing.assert_array_equal(both[1].embedding, largest[0].embedding)
    np.testing.assert_array_equal(both[0].embedding, left[0].embedding)
    assert not np.array_equal(left[0].embedding, largest[0].embedding)


def test_snapped_frames_really_change_the_output(env):
    # 12 → 9 frames = 3 latent frames; 14 → 17. (An even latent count would decode to 4k frames in CogVideoX's
    # VAE, so ConsisID snaps to 8k+1; ConsisID-preview's 49 frames are 13 latent frames.)
    assert _sample(env, num_frames=12).shape[0] == 9
    assert _wan_sample(env, num_frames=7).shape[0] == 5


def test_truncated_prompt_is_flagged(env):
    emb, = env.M["IDVTextEncode"]().encode(env.consisid, LONG_PROMPT, "")
    assert emb.truncated and emb.prompt_embeds.shape[1] == 226
    short, = env.M["IDVTextEncode"]().encode(env.consisid, "a man", "")
    assert not short.truncated


def test_cpu_fallback_precision_is_fp32(env):
    model, = env.M["IDVConsisIDModelLoader"]().load("ConsisID-preview", "bf16", "auto", 0)
    assert model.dtype == torch.float32 and next(model.transformer.parameters()).dtype == torch.float32
