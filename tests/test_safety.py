"""Safety: no network at run time, no eval/exec, widget names cannot escape ComfyUI's folders, pickles never run.

* A whole tiny ConsisID generation through the nodes succeeds with ``socket.socket`` made to raise.
* No ``eval(`` / ``exec(`` call anywhere in the pack's source (AST scan of idvideo_core/ and nodes/).
* Model names and filename prefixes from widgets cannot reach outside ComfyUI's folders.
* A malicious pickle (``__reduce__`` that would create a marker file) handed to every pickle loader — EVA-CLIP ``.pt``,
  facexlib ``.pth``, Concat-ID ``.pt``, Phantom ``.pth`` — is refused with UnsafeFileError and the marker never appears.
"""
from __future__ import annotations

import ast
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from idvideo_core import paths
from idvideo_core.errors import IDVideoError, InputError, UnsafeFileError

ROOT = Path(__file__).resolve().parents[1]
TOM = Path(__import__("importlib").util.find_spec("insightface").origin).parent / "data" / "images" / \
    "Tom_Hanks_54745.png"


class _NoNetwork(OSError):
    pass


def test_generation_with_sockets_blocked(pack, models_env, monkeypatch, tmp_path):
    from PIL import Image

    from idvideo_core.testing.tiny_consisid import TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH

    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise _NoNetwork("network access attempted during generation")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("IDVIDEO_OUTPUT_DIR", str(tmp_path / "out"))
    M = pack.NODE_CLASS_MAPPINGS
    model, = M["IDVConsisIDModelLoader"]().load("ConsisID-preview", "fp32", "auto", 0)
    fm, = M["IDVFaceModelsLoader"]().load("CPU", "fp32")
    photo = torch.from_numpy(np.asarray(Image.open(TOM).convert("RGB"), np.float32) / 255.0)[None]
    faces = M["IDVFaceLoader"]().load(fm, photo, "largest", 0, "error")["result"][0]
    kps, = M["IDVKeypointRenderer"]().render(faces, "reference (aligned face size)")
    local, = M["IDVLocalIdentity"]().extract(fm, faces)
    ident, _ = M["IDVGlobalIdentity"]().extract(model, faces, TINY_WIDTH, TINY_HEIGHT, kps)
    text, = M["IDVTextEncode"]().encode(model, "a man smiles", "")
    frames, = M["IDVSampler"]().sample(model, text, TINY_WIDTH, TINY_HEIGHT, TINY_FRAMES, 2, 6.0, 1,
                                        vae_tiling=False, global_identity=ident, local_identity=local)
    out = M["IDVideoCombine"]().combine(frames, 8.0, "IDVideo", "h264-mp4", True)
    assert frames.shape == (TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH, 3)
    assert Path(out["result"][2]).is_file()
    assert attempts == []


# ---------------------------------------------------------------------------------------------- no eval / exec
def _sources():
    files = sorted((ROOT / "idvideo_core").rglob("*.py")) + sorted((ROOT / "nodes").rglob("*.py"))
    assert len(files) > 20
    return files


def test_no_eval_or_exec_in_the_pack():
    banned = {"eval", "exec", "execfile", "compile", "__import__"}
    found = []
    for f in _sources():
        tree = ast.parse(f.read_text(encoding="utf-8"), filename=str(f))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                fn = node.func
                name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else None
                # builtins only: re.compile / torch.compile are attributes of modules, not the builtin
                if name in banned and (isinstance(fn, ast.Name) or
                                       (isinstance(fn.value, ast.Name) and fn.value.id == "builtins")):
                    found.append(f"{f.relative_to(ROOT)}:{node.lineno} {name}(")
    assert found == []


def test_no_plain_torch_load_outside_safeload():
    """Every torch.load goes through safeload (weights_only=True)."""
    hits = []
    for f in _sources():
        if f.name == "safeload.py":
            continue
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
                hits.append(f"{f.relative_to(ROOT)}:{node.lineno}")
    assert hits == []


# --------------------------------------------------------------------------------------------- path traversal
ESCAPES = ["../../etc/passwd", "..", "../consisid", "a/../../b", "/etc/passwd", "./../x.pt"]


@pytest.mark.parametrize("name", ESCAPES)
def test_resolve_file_refuses_escapes(name, models_env):
    with pytest.raises(InputError) as info:
        paths.resolve_file(("concatid", "diffusion_models"), name, "the DiT weights")
    assert "not a file name inside ComfyUI's model folders" in str(info.value)


@pytest.mark.parametrize("name", ["../../etc", "..", "../consisid/ConsisID-preview", "x/../../consisid"])
def test_resolve_model_folder_refuses_dotdot(name, models_env):
    with pytest.raises(InputError) as info:
        paths.resolve_model_folder("wan", name)
    assert "Pick a folder from the list" in str(info.value)


def test_consisid_loader_name_cannot_climb_out(pack, models_env, tmp_path, monkeypatch):
    """Even a '..' name that points at a real ConsisID folder relative to the working directory is refused."""
    monkeypatch.chdir(models_env / "consisid")
    M = pack.NODE_CLASS_MAPPINGS
    with pytest.raises(IDVideoError) as info:
        M["IDVConsisIDModelLoader"]().load("../consisid/ConsisID-preview", "fp32", "auto", 0)
    assert "not a folder inside ComfyUI's model folders" in str(info.value)


def test_wan_loader_names_cannot_climb_out(pack, models_env):
    M = pack.NODE_CLASS_MAPPINGS
    for args in (("../consisid", "(from base folder)"), ("(none)", "../../etc/passwd")):
        with pytest.raises(InputError):
            M["IDVWanModelLoader"]().load("Phantom-Wan", args[0], args[1], "(from base folder)",
                                          "(from base folder)", "fp32", "auto", 0)


@pytest.mark.parametrize("prefix", ["../escape", "../../etc/cron.d/x", "/tmp/abs", "a/../../b", "sub/../../x"])
def test_video_prefix_cannot_escape_output(pack, prefix, tmp_path, monkeypatch):
    monkeypatch.setenv("IDVIDEO_OUTPUT_DIR", str(tmp_path / "out"))
    before = {p for p in tmp_path.parent.rglob("*") if tmp_path not in p.parents and p != tmp_path}
    with pytest.raises(InputError):
        pack.NODE_CLASS_MAPPINGS["IDVideoCombine"]().combine(torch.rand(2, 16, 16, 3), 8.0, prefix, "gif", True)
    after = {p for p in tmp_path.parent.rglob("*") if tmp_path not in p.parents and p != tmp_path}
    assert after == before
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


# ------------------------------------------------------------------------------------------ pickles never run
class _Marker:
    """Unpickling this object would call ``open(marker, "w")``, creating the marker file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _evil(path: Path, marker: Path, keys=("weight",)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    obj = {k: torch.zeros(2) for k in keys}
    obj["payload"] = _Marker(marker)
    torch.save(obj, path)
    return path


def _load_eva(p):
    from idvideo_core.faces.eva_clip import load_eva_clip

    load_eva_clip(p)


def _load_retinaface(p):
    from idvideo_core.faces.facexlib_nets import load_retinaface

    load_retinaface(p)


def _load_bisenet(p):
    from idvideo_core.faces.facexlib_nets import load_bisenet

    load_bisenet(p)


def _load_wan_dit(p):
    from idvideo_core.backbones.wan.loading import load_dit

    load_dit(p)


@pytest.mark.parametrize("name, loader", [
    ("clip_vision/EVA02_CLIP_L_336_psz14_s6B.pt", _load_eva),
    ("facexlib/detection_Resnet50_Final.pth", _load_retinaface),
    ("facexlib/parsing_bisenet.pth", _load_bisenet),
    ("concatid/second_stage_adaln.pt", _load_wan_dit),
    ("diffusion_models/Phantom-Wan-1.3B.pth", _load_wan_dit),
], ids=["eva_pt", "facexlib_retinaface_pth", "facexlib_bisenet_pth", "concatid_pt", "phantom_pth"])
def test_malicious_pickle_is_refused_never_run(tmp_path, name, loader):
    marker = tmp_path / "PWNED"
    path = _evil(tmp_path / "models" / name, marker)
    # The payload is real (see test_the_payload_would_really_run): an unrestricted unpickle creates the marker.
    with pytest.raises(UnsafeFileError) as info:
        loader(path)
    assert not marker.exists(), "loading ran code from the pickle"
    msg = str(info.value)
    assert str(path) in msg and "refuses" in msg and "\nFix: " in msg


def test_the_payload_would_really_run(tmp_path):
    """Proof the malicious file is effective: torch.load with weights_only=False creates the marker."""
    marker = tmp_path / "PWNED"
    path = _evil(tmp_path / "evil.pt", marker)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_face_models_loader_refuses_malicious_eva_in_search_path(pack, models_env, tmp_path):
    """Through the node: a malicious EVA .pt in models/clip_vision (searched first) stops the load, nothing runs."""
    marker = tmp_path / "PWNED"
    _evil(models_env / "clip_vision" / "EVA02_CLIP_L_336_psz14_s6B.pt", marker)
    try:
        with pytest.raises(UnsafeFileError):
            pack.NODE_CLASS_MAPPINGS["IDVFaceModelsLoader"]().load("CPU", "fp32")
    finally:
        shutil.rmtree(models_env / "clip_vision")
    assert not marker.exists()
