"""``python -m idvideo_core models``: a tree with every file, a tree missing each kind of file, truncated files,
wrong-kind files, half-downloads, and the ComfyUI folder order (models folder, extra_model_paths.yaml,
IDVIDEO_MODELS_DIR, face_encoder/). Every verdict must come from the loaders' own checks."""
from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import pytest

from idvideo_core import paths, setup_check
from idvideo_core.cli import main

FE = Path("consisid") / "ConsisID-preview" / "face_encoder"
TEMPLATES = {"single_identity_consisid": "consisid", "best_of_seeds": "consisid",
             "multi_identity_concatid": "concatid_cogvideox", "single_identity_concatid": "concatid_cogvideox",
             "virtual_tryon": "phantom_wan", "multi_subject_phantom": "phantom_wan",
             "phantom14b_fast_tryon": "phantom_wan"}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    from idvideo_core.testing import build_all

    return build_all(tmp_path_factory.mktemp("models_cmd") / "models")


@pytest.fixture()
def env(tree, monkeypatch):
    monkeypatch.setenv("IDVIDEO_MODELS_DIR", str(tree))
    paths.use_comfyui(None)
    yield tree
    paths.use_comfyui(None)


@contextlib.contextmanager
def moved(path: Path, suffix: str = ".away"):
    """Take a file or folder out of the tree for one check (renamed, then put back)."""
    away = path.with_name(path.name + suffix)
    path.rename(away)
    try:
        yield away
    finally:
        away.rename(path)


@contextlib.contextmanager
def replaced(path: Path, writer):
    """Swap a file for another content for one check."""
    keep = path.with_name(path.name + ".keep")
    path.rename(keep)
    try:
        writer(path, keep)
        yield
    finally:
        path.unlink()
        keep.rename(path)


def report(template=None, model=None):
    tpl, fam = setup_check.build(template, model)
    return (tpl or fam)[0]


def by_what(rep, text):
    return next(f for f in rep.files if text in f.what)


def run_json(capsys, *argv) -> tuple[int, dict]:
    code = main(["models", "--json", *argv])
    return code, json.loads(capsys.readouterr().out)


def test_every_file_present_every_template_runs(env, capsys):
    code, data = run_json(capsys)
    assert code == 0
    assert set(data["templates"]) == set(TEMPLATES)
    assert set(data["families"]) >= set(TEMPLATES.values())
    for name, fam in TEMPLATES.items():
        t = data["templates"][name]
        assert t["runnable"] and t["families"] == [fam]
        for f in t["files"]:
            if f["optional"]:
                continue              # the scoring models of best_of_seeds (see the test below)
            assert f["status"] == "ok" and Path(f["path"]).exists() and f["size_bytes"] > 0, f
            assert f["format"] and f["searched"][0]["origin"] == "IDVIDEO_MODELS_DIR" or \
                f["searched"][0]["origin"] == "ConsisID face_encoder/", f
    files = {f["what"]: f for f in data["templates"]["single_identity_consisid"]["files"]}
    eva = next(v for k, v in files.items() if k.startswith("EVA02"))
    assert (eva["format"], eva["dtype"]) == ("pickle", "float16")       # tiny_eva writes fp16, as published
    assert next(v for k, v in files.items() if "scrfd" in k)["format"] == "onnx"
    assert next(v for k, v in files.items() if "ConsisID model folder" in k)["format"] == "diffusers folder"
    # the search table names every key, in order, with where each folder comes from
    keys = [row["key"] for row in data["search"]]
    assert keys[: len(paths.FOLDER_KEYS)] == list(paths.FOLDER_KEYS) and keys[-1] == "face_encoder"
    # text form
    assert main(["models", "--template", "virtual_tryon"]) == 0
    out = capsys.readouterr().out
    assert "Template virtual_tryon (phantom_wan): READY" in out and "Folders searched, in order:" in out


MISSING = [  # (path in the tree, what the report calls it)
    (FE / "models" / "antelopev2" / "scrfd_10g_bnkps.onnx", "scrfd_10g_bnkps.onnx"),
    (FE / "models" / "antelopev2" / "glintr100.onnx", "glintr100.onnx"),
    (FE / "detection_Resnet50_Final.pth", "detection_Resnet50_Final.pth"),
    (FE / "parsing_bisenet.pth", "parsing_bisenet.pth"),
    (FE / "EVA02_CLIP_L_336_psz14_s6B.pt", "EVA02_CLIP_L_336_psz14_s6B.pt"),
    (Path("consisid") / "ConsisID-preview", "ConsisID model folder"),
    (Path("wan") / "Wan2.1-T2V-1.3B-Diffusers", "Wan2.1 base folder"),
    (Path("diffusion_models") / "Phantom-Wan-1.3B.pth", "Phantom-Wan-1.3B.pth"),
]


def _users(env, rel) -> set[str]:
    """Templates whose report, on the full tree, found this file/folder (what removing it must break)."""
    tpl, _ = setup_check.build()
    return {r.name for r in tpl if any(f.path == str(env / rel) for f in r.files)}


@pytest.mark.parametrize("rel,what", MISSING, ids=[m[1] for m in MISSING])
def test_each_missing_kind_is_named_with_where_to_put_it(env, capsys, rel, what):
    breaks = _users(env, rel)
    assert breaks, f"no template uses {rel}"
    if "face_encoder" in str(rel):
        assert breaks == set(TEMPLATES)           # every template loads the face models
    with moved(env / rel):
        code, data = run_json(capsys)
    assert code == 1
    for name, t in data["templates"].items():
        assert t["runnable"] == (name not in breaks), name
    for name in breaks:
        f = next(f for f in data["templates"][name]["files"] if what in f["what"])
        assert f["status"] == "missing" and f["path"] is None
        assert f["published"] and f["searched"], f
        # where to put it: the first folder searched, under the file's (or folder's) own name
        assert f["put_at"] == f["searched"][0]["path"] and Path(f["put_at"]).name == rel.name
        assert [s["path"] for s in f["searched"]] == [str(p) for p in _candidates_of(name, what)]


def _candidates_of(template, what):
    nodes = setup_check.templates()[template]
    reqs, _ = setup_check.requirements_of(nodes)
    return next(r.candidates for r in reqs if what in r.what)


def test_missing_component_of_a_folder_is_incomplete_not_missing(env):
    with moved(env / "consisid" / "ConsisID-preview" / "vae"):
        f = by_what(report("single_identity_consisid"), "ConsisID model folder")
    assert f.status == setup_check.DAMAGED and "vae" in f.problem and f.put_at.endswith("ConsisID-preview")


def _truncate(path: Path, keep: Path) -> None:
    data = keep.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("rel,what,template", [
    (FE / "EVA02_CLIP_L_336_psz14_s6B.pt", "EVA02", "single_identity_consisid"),
    (FE / "models" / "antelopev2" / "glintr100.onnx", "glintr100", "single_identity_consisid"),
    (Path("diffusion_models") / "Phantom-Wan-1.3B.pth", "Phantom-Wan", "virtual_tryon"),
], ids=["pickle", "onnx", "dit"])
def test_truncated_file_is_damaged(env, rel, what, template):
    with replaced(env / rel, _truncate):
        f = by_what(report(template), what)
    assert f.status == setup_check.DAMAGED and f.path == str(env / rel)
    assert "download" in (f.fix or "").lower()


def test_truncated_safetensors_shard_inside_a_folder(env):
    shard = sorted((env / "consisid" / "ConsisID-preview" / "transformer").glob("*.safetensors"))[0]
    with replaced(shard, _truncate):
        f = by_what(report("single_identity_consisid"), "ConsisID model folder")
    assert f.status == setup_check.DAMAGED and "incomplete download" in f.problem


def _copy_from(other: Path):
    return lambda path, keep: shutil.copyfile(other, path)


def test_wrong_kind_files(env):
    ante = env / FE / "models" / "antelopev2"
    # the recogniser where the detector belongs: SCRFD's own output check refuses it
    with replaced(ante / "scrfd_10g_bnkps.onnx", _copy_from(ante / "glintr100.onnx")):
        f = by_what(report("single_identity_consisid"), "scrfd")
    assert f.status == setup_check.WRONG and "9 outputs" in f.problem
    # a Wan DiT where the EVA-CLIP checkpoint belongs
    with replaced(env / FE / "EVA02_CLIP_L_336_psz14_s6B.pt", _copy_from(env / "diffusion_models" /
                                                                         "Phantom-Wan-1.3B.pth")):
        f = by_what(report("single_identity_consisid"), "EVA02")
    assert f.status == setup_check.WRONG and "not an EVA02-CLIP checkpoint" in f.problem
    # Concat-ID's AdaLN DiT loaded as Phantom
    with replaced(env / "diffusion_models" / "Phantom-Wan-1.3B.pth", _copy_from(env / "concatid" /
                                                                                "second_stage_adaln.pt")):
        f = by_what(report("virtual_tryon"), "Phantom-Wan")
    assert f.status == setup_check.WRONG and "Concat-ID" in f.fix


def test_half_downloaded_file_is_named(env):
    eva = env / FE / "EVA02_CLIP_L_336_psz14_s6B.pt"
    with moved(eva, ".crdownload"):
        f = by_what(report("single_identity_consisid"), "EVA02")
    assert f.status == setup_check.PARTIAL and f.path.endswith(".crdownload")
    assert f.put_at == str(_candidates_of("single_identity_consisid", "EVA02")[0])


def test_exit_code_follows_the_named_template_or_family(env, capsys):
    with moved(env / "diffusion_models" / "Phantom-Wan-1.3B.pth"):
        assert main(["models", "--template", "single_identity_consisid"]) == 0
        assert main(["models", "--model", "consisid"]) == 0
        assert main(["models", "--template", "virtual_tryon"]) == 1
        assert main(["models", "--model", "concatid_cogvideox"]) == 0
        assert main(["models"]) == 1
    assert main(["models", "--model", "nope"]) == 2
    assert "Unknown model family" in capsys.readouterr().err


def test_comfyui_folders_then_yaml_then_idvideo_models_dir(tree, tmp_path, monkeypatch, capsys):
    """A ComfyUI install with an empty models/ and an extra_model_paths.yaml pointing at the tree."""
    comfy = tmp_path / "ComfyUI"
    (comfy / "models").mkdir(parents=True)
    (comfy / "folder_paths.py").write_text("")
    (comfy / "extra_model_paths.yaml").write_text(
        "mine:\n    base_path: " + str(tree) + "\n    consisid: consisid\n    insightface: insightface\n"
        "    unet: |\n        diffusion_models\n        elsewhere\n")
    monkeypatch.setenv("IDVIDEO_MODELS_DIR", str(tmp_path / "nothing"))
    try:
        code, data = run_json(capsys, "--comfyui", str(comfy), "--template", "single_identity_consisid")
        assert code == 0
        search = {row["key"]: row["folders"] for row in data["search"]}
        assert [(f["path"], f["origin"].split(" (")[0]) for f in search["consisid"]] == [
            (str(comfy / "models" / "consisid"), "ComfyUI models folder"),
            (str(tree / "consisid"), "extra_model_paths.yaml"),
            (str(tmp_path / "nothing" / "consisid"), "IDVIDEO_MODELS_DIR")]
        # ComfyUI's legacy key 'unet' is diffusion_models; a multi-line value gives one folder per line
        assert [f["path"] for f in search["diffusion_models"]][:4] == [
            str(comfy / "models" / "unet"), str(comfy / "models" / "diffusion_models"),
            str(tree / "diffusion_models"), str(tree / "elsewhere")]
        files = data["templates"]["single_identity_consisid"]["files"]
        assert next(f for f in files if "ConsisID model" in f["what"])["searched"][1]["origin"].startswith(
            "extra_model_paths.yaml")
        assert next(f for f in files if "EVA02" in f["what"])["searched"][-1]["origin"] == "ConsisID face_encoder/"
    finally:
        paths.use_comfyui(None)


def test_the_loaders_find_what_models_reports(env, monkeypatch):
    """The report's first hit is the file the real loader opens (same search lists, same order)."""
    from idvideo_core.faces.locate import find_face_model_files

    rep = report("single_identity_consisid")
    found = find_face_model_files()
    assert by_what(rep, "EVA02").path == str(found.eva)
    assert by_what(rep, "scrfd").path == str(found.scrfd)


def test_finds_the_comfyui_it_is_installed_in(tmp_path):
    """Run from ComfyUI/custom_nodes/<pack> (here a symlink, as many installs are): that ComfyUI's folders are
    searched without any flag."""
    import os
    import subprocess
    import sys

    comfy = tmp_path / "ComfyUI"
    (comfy / "custom_nodes").mkdir(parents=True)
    (comfy / "folder_paths.py").write_text("")
    link = comfy / "custom_nodes" / "IDVideo"
    link.symlink_to(Path(__file__).resolve().parents[1], target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if k not in ("IDVIDEO_MODELS_DIR", "IDVIDEO_NO_COMFY")}
    env["PWD"] = str(link)
    res = subprocess.run([sys.executable, "-m", "idvideo_core", "models", "--json", "--model", "wan"], cwd=link,
                         env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stderr[-2000:]          # nothing is installed in this ComfyUI
    data = json.loads(res.stdout)
    assert data["comfyui"] == str(comfy)
    base = data["families"]["wan"]["files"][0]
    assert base["put_at"] == str(comfy / "models" / "wan" / "Wan2.1-T2V-1.3B-Diffusers")


def test_scoring_files_are_listed_as_optional(env, capsys):
    """best_of_seeds also opens the scoring models; each is optional (fallback or skipped score), so the template
    still runs without them, and the report says where each would go."""
    code, data = run_json(capsys, "--template", "best_of_seeds")
    assert code == 0
    files = data["templates"]["best_of_seeds"]["files"]
    optional = [f for f in files if f["optional"]]
    assert {f["kind"] for f in optional} == {"onnx detector", "onnx recogniser", "CurricularFace IR-101",
                                             "CLIP folder"}
    assert all(f["status"] == "missing" and f["put_at"] for f in optional)
    assert all(f["status"] == "ok" for f in files if not f["optional"])
