"""``python -m idvideo_core generate``: every wrong input fails before any model weights are read (spies on the
loading functions), with the flag named; faces are found before the big model loads; every node option has a flag;
lossless outputs decode back to the exact frames; one header and one progress line per stage; a JSON summary."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from idvideo_core import paths
from idvideo_core.cli import build_parser, main
from idvideo_core.testing.tiny_consisid import TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH

TOM = Path(__import__("importlib").util.find_spec("insightface").origin).parent / "data" / "images" / \
    "Tom_Hanks_54745.png"
BIG_LOADERS = [("idvideo_core.backbones.consisid.loading", "load_consisid"),
               ("idvideo_core.backbones.wan.model", "load_wan_model")]
FACE_LOADERS = [("idvideo_core.faces.models", "load_face_models"), ("idvideo_core.faces.eva_clip", "load_eva_clip"),
                ("idvideo_core.faces.facexlib_nets", "load_retinaface"),
                ("idvideo_core.faces.facexlib_nets", "load_bisenet"),
                ("idvideo_core.backbones.wan.refprep", "FaceParser")]


@pytest.fixture()
def spies(monkeypatch, tmp_path):
    """Every loading function records its call and refuses to run: nothing may be read by a failing command."""
    import importlib

    calls: list[str] = []

    def spy(name):
        def refuse(*a, **k):
            calls.append(name)
            raise AssertionError(f"{name} was called: weights would be read")
        return refuse

    for mod, fn in BIG_LOADERS + FACE_LOADERS:
        monkeypatch.setattr(importlib.import_module(mod), fn, spy(fn))
    monkeypatch.setenv("IDVIDEO_MODELS_DIR", str(tmp_path / "no_models"))
    yield calls
    paths.clear_search_folders()


@pytest.fixture()
def big_spies(monkeypatch, tmp_path):
    """Only the DiT loaders refuse (the face models may load: they are small and run first)."""
    import importlib

    calls: list[str] = []
    for mod, fn in BIG_LOADERS:
        monkeypatch.setattr(importlib.import_module(mod), fn,
                            lambda *a, _n=fn, **k: calls.append(_n) or (_ for _ in ()).throw(AssertionError(_n)))
    monkeypatch.setenv("IDVIDEO_MODELS_DIR", str(tmp_path / "no_models"))
    yield calls
    paths.clear_search_folders()


def base_args(model: Path, out: Path) -> list[str]:
    return ["generate", "--model", str(model), "--image", str(TOM), "--output", str(out), "--width",
            str(TINY_WIDTH), "--height", str(TINY_HEIGHT), "--frames", str(TINY_FRAMES), "--steps", "2",
            "--on-no-face", "use whole image"]


def linked_copy(src: Path, dst: Path, drop: tuple[str, ...] = ()) -> Path:
    """A ConsisID folder made of symlinks to ``src``'s parts (face_encoder/ file by file), without ``drop``."""
    dst.mkdir(parents=True)
    for part in src.iterdir():
        if part.name in drop:
            continue
        if part.name == "face_encoder":
            for f in part.rglob("*"):
                if f.is_file() and str(f.relative_to(part)) not in drop:
                    target = dst / "face_encoder" / f.relative_to(part)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.symlink_to(f)
        else:
            (dst / part.name).symlink_to(part, target_is_directory=part.is_dir())
    return dst


def run(argv, capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _replace(argv, flag, value):
    argv = list(argv)
    i = argv.index(flag)
    argv[i + 1] = value
    return argv


BAD = {  # case -> (argv change, flag the message must name)
    "bad size": (lambda a, t: _replace(a, "--width", "128"), "--width"),
    "frames range": (lambda a, t: _replace(a, "--frames", "-1"), "--frames"),
    "steps range": (lambda a, t: _replace(a, "--steps", "0"), "--steps"),
    "cfg range": (lambda a, t: a + ["--cfg", "31"], "--cfg"),
    "face index range": (lambda a, t: a + ["--face-index", "99"], "--face-index"),
    "unknown choice": (lambda a, t: _replace(a, "--on-no-face", "shrug"), "--on-no-face"),
    "unreadable image": (lambda a, t: _replace(a, "--image", str(t / "not_a_photo.jpg")), "--image"),
    "unknown format": (lambda a, t: a + ["--format", "h265-avi"], "--format"),
    "crf for format": (lambda a, t: a + ["--format", "h264-mp4", "--crf", "60"], "--crf"),
    "frame rate": (lambda a, t: a + ["--fps", "0"], "--fps"),
    "prefix escapes": (lambda a, t: a + ["--prefix", "../x"], "--prefix"),
    "unwritable folder": (lambda a, t: _replace(a, "--output", str(t / "a_file" / "out")), "--output"),
    "subject for consisid": (lambda a, t: a + ["--subject", str(TOM)], "--subject"),
    "no photo": (lambda a, t: a[:a.index("--image")] + a[a.index("--image") + 2:], "--image"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_wrong_input_fails_before_any_weights_with_the_flag(case, consisid_folder, spies, tmp_path, capsys):
    (tmp_path / "not_a_photo.jpg").write_text("hello")
    (tmp_path / "a_file").write_text("x")
    change, flag = BAD[case]
    code, out, err = run(change(base_args(consisid_folder, tmp_path / "out"), tmp_path), capsys)
    assert code == 2, (out, err)
    assert spies == [], f"{case}: {spies} ran before the error"
    assert flag in err, err
    assert "Traceback" not in err and "IDVideo: IDVideo" not in err


def test_missing_model_part_fails_before_any_weights(consisid_folder, spies, tmp_path, capsys):
    broken = linked_copy(consisid_folder, tmp_path / "models" / "ConsisID-broken", drop=("vae",))
    code, _, err = run(base_args(broken, tmp_path / "out"), capsys)
    assert code == 2 and spies == []
    assert "ConsisID model folder" in err and "vae" in err and "--model" in err
    assert "python -m idvideo_core models" in err


def test_missing_face_file_names_where_to_put_it(consisid_folder, spies, tmp_path, capsys):
    broken = linked_copy(consisid_folder, tmp_path / "models" / "ConsisID-noeva",
                         drop=("EVA02_CLIP_L_336_psz14_s6B.pt",))
    code, _, err = run(base_args(broken, tmp_path / "out"), capsys)
    assert code == 2 and spies == []
    assert "EVA02_CLIP_L_336_psz14_s6B.pt" in err and "put it at:" in err


def test_no_face_is_found_before_the_model_loads(consisid_folder, big_spies, tmp_path, capsys):
    from idvideo_core.testing.tiny_faces import write_tiny_retinaface, write_tiny_scrfd

    blind = linked_copy(consisid_folder, tmp_path / "models" / "ConsisID-blind",
                        drop=("models/antelopev2/scrfd_10g_bnkps.onnx", "detection_Resnet50_Final.pth"))
    write_tiny_scrfd(blind / "face_encoder" / "models" / "antelopev2" / "scrfd_10g_bnkps.onnx", (1024, 708), [])
    write_tiny_retinaface(blind / "face_encoder" / "detection_Resnet50_Final.pth", fire=False)
    argv = _replace(base_args(blind, tmp_path / "out"), "--on-no-face", "error")
    code, _, err = run(argv, capsys)
    assert code == 2 and big_spies == [], err
    assert "No face was found" in err and "--on-no-face" in err and "'on_no_face'" not in err


def test_frames_are_snapped_with_the_warning_before_loading(consisid_folder, spies, tmp_path, capsys):
    argv = _replace(base_args(consisid_folder, tmp_path / "out"), "--frames", "12") + ["--check-only"]
    code, out, err = run(argv, capsys)
    assert code == 0 and spies == []
    summary = json.loads(out[out.index("{"):])
    assert summary["warnings"] and "making 9 frames" in summary["warnings"][0]
    sampler = next(v for k, v in summary["settings"].items() if "Sampler" in k)
    assert sampler["num_frames"] == 9
    assert summary["outputs"] == []


def test_one_error_two_renderings():
    from idvideo_core.cli_generate import render
    from idvideo_core.errors import InputError, option

    err = InputError(f"{option('num_frames')} is 0.", f"Set {option('use_dynamic_cfg')} and {option('index')}.")
    assert str(err) == "'num_frames' is 0.\nFix: Set 'use_dynamic_cfg' and 'index'."           # inside ComfyUI
    assert render(err) == "IDVideo: --frames is 0.\nFix: Set --dynamic-cfg and --face-index."   # on the CLI


def test_every_node_option_has_a_flag(pack):
    """Compare the node schemas with the parser: every widget input of every pack node is a flag with the node's
    type and choices (the issue-14 label changes follow automatically)."""
    from idvideo_core.cli_generate import NOT_FLAGS, OWN_FLAGS, flag_of, generate_node_types
    from idvideo_core.workflow.schema import node_schemas

    sub = build_parser()._subparsers._group_actions[0].choices["generate"]
    actions = {s: a for a in sub._actions for s in a.option_strings}
    missing = []
    used = generate_node_types()
    loaders = {"IDVConsisIDModelLoader", "IDVWanModelLoader", "IDVFaceModelsLoader", "IDVFaceLoader",
               "IDVSampler", "IDVideoCombine", "IDVMultiIdentityConcat", "IDVTextEncode"}
    assert loaders <= used            # every node of the generation graph is covered
    for node_type, schema in node_schemas(pack.NODE_CLASS_MAPPINGS).items():
        if node_type not in used:
            continue                  # scoring nodes: the score command and --seeds/--score-protocol
        for spec in schema.inputs:
            if not spec.is_widget or spec.name in NOT_FLAGS:
                continue
            flag = flag_of(spec.name)
            if flag not in actions:
                missing.append(f"{node_type}.{spec.name} ({flag})")
                continue
            act = actions[flag]
            if spec.name in OWN_FLAGS:
                continue
            if spec.type == "INT":
                assert act.type is int, flag
            elif spec.type == "FLOAT":
                assert act.type is float, flag
            elif spec.type == "BOOLEAN":
                assert f"--no-{flag[2:]}" in act.option_strings, flag
            elif spec.type == "COMBO" and spec.name not in ("model", "base_folder", "dit", "vae", "text_encoder",
                                                            "weights", "format"):
                for choice in spec.choices:          # every label is accepted as written
                    assert act.type(choice) == choice, (flag, choice)
    assert missing == [], f"node options without a flag: {missing}"
    # the named flags
    for flag in ("--face-index", "--on-no-face", "--dynamic-cfg", "--face-scale", "--memory-mode", "--blocks-to-swap",
                 "--weight-storage", "--cache-threshold", "--attention", "--selection", "--provider", "--subject",
                 "--save-latents", "--family", "--dit"):
        assert flag in actions, flag


def test_choices_accept_short_forms(pack):
    sub = build_parser()._subparsers._group_actions[0].choices["generate"]
    args = sub.parse_args(["--on-no-face", "use-whole-image", "--selection", "all", "--face-mode", "whole image, "
                           "white pad"])
    assert (args.on_no_face, args.selection) == ("use whole image", "all (left to right)")
    assert args.face_mode == "whole image, white pad (Phantom)"


@pytest.fixture(scope="module")
def wan_tree(tmp_path_factory):
    from idvideo_core.testing import build_wan_models

    return build_wan_models(tmp_path_factory.mktemp("wan_cli") / "models")


@pytest.mark.parametrize("family,images,subjects", [("phantom_wan", 1, 1), ("concatid_wan", 2, 0)])
def test_wan_families_from_the_same_command(family, images, subjects, wan_tree, consisid_folder, monkeypatch,
                                            tmp_path):
    """References from repeated --image (one batch into the face loader), garments from --subject (the
    concatenator's subject inputs), the family's DiT from the template or --dit; checked without loading."""
    from idvideo_core.cli_generate import build_plan

    monkeypatch.setenv("IDVIDEO_MODELS_DIR", str(wan_tree))
    paths.clear_search_folders()
    paths.add_search_folder("consisid", consisid_folder.parent, "test")     # the face models' face_encoder/
    argv = ["generate", "--family", family, "--output", str(tmp_path / "out"), "--width", "64", "--height", "64",
            "--frames", "6"] + ["--image", str(TOM)] * images + ["--subject", str(TOM)] * subjects
    if family == "concatid_wan":       # no template of its own: the Wan template, with its DiT named
        args = build_parser().parse_args(argv)
        from idvideo_core.cli_generate import build_plan as _bp
        from idvideo_core.errors import InputError

        with pytest.raises(InputError, match="DiT file must be named"):
            _bp(args)
        argv += ["--dit", "second_stage_adaln.pt", "--face-mode", "face crop + mask (Concat-ID)"]
    args = build_parser().parse_args(argv)
    plan = build_plan(args)
    try:
        prompt = plan.prompt
        face_loader = next(n for n in prompt.values() if n["class_type"] == "IDVFaceLoader")
        assert face_loader["inputs"]["image"] == ["cli_image", 0]
        from idvideo_core.cli_generate import CliImage

        assert CliImage.images[("image", 0)].shape[0] == images
        concat = next(n for n in prompt.values() if n["class_type"] == "IDVMultiIdentityConcat")
        assert [concat["inputs"].get(f"subject_{k + 1}") for k in range(subjects)] == \
            [[f"cli_subject_{k}", 0] for k in range(subjects)]
        assert "subject_1" not in concat["inputs"] or subjects
        sampler = next(n for n in prompt.values() if n["class_type"] == "IDVSampler")
        assert (sampler["inputs"]["width"], sampler["inputs"]["num_frames"]) == (64, 5)   # Wan: 4k+1, snapped
        assert concat["inputs"]["width"] == 64
        loader = next(n for n in prompt.values() if n["class_type"] == "IDVWanModelLoader")
        assert loader["inputs"]["family"] in ("Concat-ID-Wan", "Phantom-Wan")
        assert all(f.status == "ok" for f in plan.model_files)
    finally:
        paths.clear_search_folders()


def test_lossless_formats_decode_to_the_exact_frames(tmp_path):
    from idvideo_core.video import frames_to_uint8, read_frames, write_video

    rng = np.random.default_rng(0)
    frames = torch.from_numpy(rng.random((6, 37, 50, 3), dtype=np.float32))      # odd sizes, off-grid values
    expected = frames_to_uint8(frames)
    for fmt in ("ffv1-mkv", "png-sequence"):
        saved = write_video(frames, fps=8, format=fmt, output_dir=tmp_path, filename_prefix="v/x", progress=False,
                            metadata={"prompt": {"1": {"class_type": "X"}}})
        back = read_frames(saved.path)
        assert back.shape == expected.shape
        assert int(np.abs(back.astype(np.int16) - expected.astype(np.int16)).max()) == 0, fmt
    # h264 (4:2:0, crf 19) is not lossless: the test would notice if it were claimed to be
    lossy = read_frames(write_video(frames, fps=8, format="h264-mp4", output_dir=tmp_path, progress=False).path)
    assert int(np.abs(lossy[:, :37, :50].astype(np.int16) - expected.astype(np.int16)).max()) > 0


def test_generate_end_to_end_lossless_outputs_latents_and_summary(consisid_folder, tmp_path, monkeypatch, capsys,
                                                                  caplog):
    from safetensors import safe_open

    from idvideo_core.video import read_frames

    import logging

    caplog.set_level(logging.INFO, logger="idvideo")
    monkeypatch.setenv("IDVIDEO_MODELS_DIR", str(tmp_path / "no_models"))
    argv = base_args(consisid_folder, tmp_path / "out") + [
        "--format", "ffv1-mkv", "--format", "png-sequence", "--format", "h264-mp4", "--save-latents",
        "--seed", "5", "--summary", str(tmp_path / "summary.json"), "--memory-mode", "gpu"]
    try:
        code, out, err = run(argv, capsys)
    finally:
        paths.clear_search_folders()
    assert code == 0, err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["seed"] == 5 and summary["family"] == "consisid"
    mkv, png, mp4, lat = (Path(p) for p in summary["outputs"])
    assert (mkv.suffix, png.name.endswith("_frames"), mp4.suffix, lat.name.endswith("_latents.safetensors")) == \
        (".mkv", True, ".mp4", True)
    a, b = read_frames(mkv), read_frames(png)
    assert a.shape == (TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH, 3) and np.array_equal(a, b)
    assert read_frames(mp4).shape[0] == TINY_FRAMES
    with safe_open(str(lat), "pt") as f:
        latents = f.get_tensor("latents")
        assert f.metadata()["seed"] == "5"
    assert latents.ndim == 5 and latents.shape[0] == 1
    assert {"checks", "IDVideo DiT Sampler", "IDVideo Face Loader", "IDVideo ConsisID Model Loader"} <= \
        set(summary["timings_s"])
    sizes = {f["what"]: f["size_bytes"] for f in summary["model_files"]}
    assert all(s and s > 0 for s in sizes.values()) and any("ConsisID model folder" in k for k in sizes)
    sampler = next(v for k, v in summary["settings"].items() if "Sampler" in k)
    assert (sampler["seed"], sampler["steps"], sampler["width"]) == (5, 2, TINY_WIDTH)
    for p in (mkv, png, mp4, lat):
        assert f"Saved {p}" in out
    # one header, one memory-plan header, one progress line per stage (stderr is not a terminal here)
    assert out.count("IDVideo consisid (template single_identity_consisid)") == 1
    assert "\n".join(r.getMessage() for r in caplog.records).count("IDVideo memory plan") == 1
    for stage in ("sampling:", "decoding:", "Analysing faces:"):
        assert sum(line.startswith(stage) for line in err.splitlines()) == 1, (stage, err)


def test_seeds_load_the_models_once_and_sample_each_seed(consisid_folder, tmp_path, monkeypatch, capsys):
    """generate --seeds: the graph's unchanged part (model, face models, faces, text, identity) runs once, as in
    ComfyUI's cache; the sampler and the combiner run per seed, each with its own seed."""
    import importlib

    from idvideo_core import runtime

    loads, seeds_sampled = [], []
    consisid_loading = importlib.import_module("idvideo_core.backbones.consisid.loading")
    real_load, real_generate = consisid_loading.load_consisid, runtime.generate

    def counting_load(*a, **k):
        loads.append(1)
        return real_load(*a, **k)

    def counting_generate(*a, **k):
        seeds_sampled.append(k["seed"])
        return real_generate(*a, **k)

    monkeypatch.setattr(consisid_loading, "load_consisid", counting_load)
    monkeypatch.setattr(runtime, "generate", counting_generate)
    monkeypatch.setenv("IDVIDEO_MODELS_DIR", str(tmp_path / "no_models"))
    try:
        code, out, err = run(base_args(consisid_folder, tmp_path / "out") + ["--seeds", "3,4", "--memory-mode", "gpu"],
                             capsys)
    finally:
        paths.clear_search_folders()
    assert code == 0, err
    assert len(loads) == 1 and seeds_sampled == [3, 4]
    assert len(list((tmp_path / "out").rglob("*.mp4"))) == 2 and list((tmp_path / "out").rglob("*contact_sheet.png"))
