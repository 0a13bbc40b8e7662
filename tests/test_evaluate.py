"""The identity scorer (idvideo_core.evaluate) against the published protocols, on tiny models in the real layouts.

The reference side of the parity tests is written here from the two scripts (OpenS2V-Eval ``eval/get_facesim.py``,
ConsisID ``eval/get_facesim_fid.py``): insightface's own ``FaceAnalysis`` on the same ``buffalo_l`` folder at
320×320, the largest face by sorted area, the grey-padded retry with the key points shifted back,
``face_align.norm_crop(…, 224)`` for CurricularFace, torch ``cosine_similarity`` clamped at 0, and each script's
frame sampling and zero rule. The detector is planted (``idvideo_core.testing.tiny_eval``) so that frames have one
face, a face only after padding, two faces, a small and a large face, or none.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from idvideo_core.testing import tiny_eval as te

IMAGES = Path(__import__("importlib").util.find_spec("insightface").origin).parent / "data" / "images"


def _rgb(name: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(IMAGES / name)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def photos():
    return {"tom": _rgb("Tom_Hanks_54745.png"), "other": _rgb("mask_white.jpg")}


@pytest.fixture(scope="module")
def models_root(tmp_path_factory):
    return te.write_tiny_scoring_models(tmp_path_factory.mktemp("score_models"))


@pytest.fixture()
def score_models(models_root, monkeypatch):
    monkeypatch.setenv("IDVIDEO_MODELS_DIR", str(models_root))
    from idvideo_core.evaluate.models import load_score_models

    return load_score_models("CPU", clip=False)


def _noisy(img: np.ndarray, rng, amp: int = 6) -> np.ndarray:
    out = img.astype(np.int16) + rng.integers(-amp, amp + 1, img.shape)
    out[:te.CODE, :te.CODE] = img[:te.CODE, :te.CODE]  # keep the detector's colour code exact
    return np.clip(out, 0, 255).astype(np.uint8)


def mixed_video(photos, n: int = 21, seed: int = 0) -> np.ndarray:
    """Frames of every kind: a face (the reference or another person), a face only after the grey padding, two
    faces of different sizes, and no face."""
    rng = np.random.default_rng(seed)
    kinds = [te.CODE_FACE, te.CODE_FACE, te.CODE_PAD_ONLY, te.CODE_FACE, te.CODE_NONE, te.CODE_SMALL_AND_FACE,
             te.CODE_FACE]
    frames = []
    for t in range(n):
        code = kinds[t % len(kinds)]
        who = photos["other"] if t % 5 == 3 else photos["tom"]
        img = te.code_image(who, code)
        if code == te.CODE_SMALL_AND_FACE:
            x1, y1, x2, y2 = te.SMALL_FACE
            img[y1:y2, x1:x2] = cv2.resize(photos["other"], (x2 - x1, y2 - y1), interpolation=cv2.INTER_AREA)
        frames.append(_noisy(img, rng))
    return np.stack(frames)


# ----------------------------------------------------------------------------------- reference (the scripts' steps)
def ref_app(models_root):
    from insightface.app import FaceAnalysis

    app = FaceAnalysis(root=str(models_root / "insightface"), providers=["CPUExecutionProvider"])  # default: buffalo_l
    app.prepare(ctx_id=0, det_size=(320, 320))
    return app


def ref_largest(face_info):
    return sorted(face_info, key=lambda x: (x["bbox"][2] - x["bbox"][0]) * (x["bbox"][3] - x["bbox"][1]))[-1] \
        if len(face_info) > 0 else None


def ref_process_image(app, rgb):
    from insightface.utils import face_align

    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    info = ref_largest(app.get(bgr))
    if info is None:
        h, w = bgr.shape[:2]
        top, left = int(h * 0.25), int(w * 0.25)
        padded = cv2.copyMakeBorder(bgr, top, top, left, left, cv2.BORDER_CONSTANT, value=(128, 128, 128))
        info = ref_largest(app.get(padded))
        if info is None:
            return None, None
        kps = info["kps"]
        kps -= np.array((left, top))
    else:
        kps = info["kps"]
    aligned = cv2.cvtColor(face_align.norm_crop(bgr, landmark=kps, image_size=224), cv2.COLOR_BGR2RGB)
    return aligned, info["embedding"]


@torch.no_grad()
def ref_cur_embedding(model, img):
    img = cv2.resize(img, (112, 112))
    x = torch.from_numpy(np.transpose(img, (2, 0, 1))).unsqueeze(0).float()
    x.div_(255).sub_(0.5).div_(0.5)
    e = model(x).numpy()[0]
    return e / np.linalg.norm(e)


def ref_cos(a, b):
    return max(0.0, torch.nn.functional.cosine_similarity(torch.tensor(a), torch.tensor(b), dim=-1).item())


def ref_protocol(app, cur_model, ref_rgb, frames, num_frames, drop_zero_cur):
    aligned, arc_ref = ref_process_image(app, ref_rgb)
    cur_ref = ref_cur_embedding(cur_model, aligned)
    arcs, curs, per_frame = [], [], {}
    for t in np.linspace(0, len(frames) - 1, num_frames, dtype=int):
        aligned, arc = ref_process_image(app, frames[t])
        if aligned is None:
            per_frame.setdefault(int(t), None)
            continue
        cur = ref_cos(cur_ref, ref_cur_embedding(cur_model, aligned))
        a = ref_cos(arc_ref, arc)
        per_frame[int(t)] = (a, cur)
        if not (drop_zero_cur and cur == 0.0):
            curs.append(cur)
        arcs.append(a)
    return (float(np.mean(arcs)) if arcs else 0.0), (float(np.mean(curs)) if curs else 0.0), per_frame


# ------------------------------------------------------------------------------------------------- parity tests
@pytest.mark.parametrize("protocol", ["OpenS2V-Eval", "ConsisID"])
def test_facesim_matches_the_protocol_scripts(protocol, photos, score_models, models_root):
    from idvideo_core.evaluate.protocols import get_protocol
    from idvideo_core.evaluate.score import Reference, score_frames

    p = get_protocol(protocol)
    video = mixed_video(photos)
    ref_rgb = te.code_image(photos["tom"], te.CODE_FACE)
    rep = score_frames(score_models, video, [Reference("tom", ref_rgb)], p)
    arc_want, cur_want, per_frame = ref_protocol(ref_app(models_root), score_models.cur, ref_rgb, video,
                                                 p.num_frames, p.drop_zero_cur)
    ident = rep.identities[0]
    assert abs(ident.facesim_arc - arc_want) <= 1e-6
    assert abs(ident.facesim_cur - cur_want) <= 1e-6
    got = {}
    for f in ident.frames:
        got.setdefault(f.frame, None if f.missing else (f.arc, f.cur))
    assert got.keys() == per_frame.keys()
    for t, want in per_frame.items():
        if want is None:
            assert got[t] is None, t
        else:
            assert np.allclose(got[t], want, atol=1e-6, rtol=0), (t, got[t], want)
    # the video exercises every branch: padded retries, no-face frames, and the largest of two faces
    kinds = {int(video[t, 5, 5, 0]) for t in rep.sampled_frames}
    assert {te.CODE_PAD_ONLY, te.CODE_NONE, te.CODE_SMALL_AND_FACE, te.CODE_FACE} <= kinds
    padded = [f.frame for f in ident.frames if f.padded]
    assert padded and all(video[t, 5, 5, 0] == te.CODE_PAD_ONLY for t in padded)
    missing = ident.missing_frames
    assert missing and all(video[t, 5, 5, 0] == te.CODE_NONE for t in missing)
    assert len(rep.sampled_frames) == p.num_frames
    # missing frames are reported, not averaged in as zeros
    scored = [f.arc for f in ident.frames if not f.missing]
    assert ident.facesim_arc == pytest.approx(np.mean(scored), abs=1e-12)
    assert any(str(len(missing)) in n and "no matching face" in n for n in rep.notes)


def test_zero_rule_differs_between_protocols():
    from idvideo_core.evaluate.protocols import CONSISID, OPENS2V, protocol_mean

    vals = [0.5, 0.0, 0.7]
    assert protocol_mean(vals, OPENS2V.drop_zero_cur) == pytest.approx(0.6)
    assert protocol_mean(vals, CONSISID.drop_zero_cur) == pytest.approx(0.4)
    assert protocol_mean(vals, OPENS2V.drop_zero_arc) == pytest.approx(0.4)
    assert protocol_mean([], False) is None


def test_sampling_follows_linspace():
    from idvideo_core.evaluate.protocols import clip_indices, sample_indices

    assert sample_indices(49, 16).tolist() == np.linspace(0, 48, 16, dtype=int).tolist()
    assert sample_indices(10, 32).tolist()[:4] == [0, 0, 0, 0]
    assert sample_indices(7, 0).tolist() == list(range(7))
    assert clip_indices(49).tolist() == [int(i * 49 / 16) for i in range(16)]


# ------------------------------------------------------------------------------------------------- CurricularFace
def published_ir101_keys() -> set[str]:
    """The key names of glint360k_curricular_face_r101_backbone.bin, written out from TFace's IR-101 layout."""
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys = {"input_layer.0.weight", "input_layer.2.weight"} | {f"input_layer.1.{s}" for s in bn}
    unit, cin = 0, 64
    for cout, n in zip((64, 128, 256, 512), (3, 13, 30, 3)):
        for j in range(n):
            pre = f"body.{unit}"
            keys |= {f"{pre}.res_layer.{i}.{s}" for i in (0, 2, 5) for s in bn}
            keys |= {f"{pre}.res_layer.1.weight", f"{pre}.res_layer.3.weight", f"{pre}.res_layer.4.weight"}
            if j == 0 and cin != cout:
                keys |= {f"{pre}.shortcut_layer.0.weight"} | {f"{pre}.shortcut_layer.1.{s}" for s in bn}
            unit, cin = unit + 1, cout
    keys |= {f"output_layer.0.{s}" for s in bn} | {"output_layer.3.weight", "output_layer.3.bias"}
    keys |= {f"output_layer.4.{s}" for s in bn[2:]}          # BatchNorm1d(512, affine=False)
    return keys


def test_ir101_has_the_published_size_and_keys():
    from idvideo_core.evaluate.curricularface import (
        PUBLISHED_PARAMS,
        CurricularFaceIR101,
    )

    net = CurricularFaceIR101()
    assert sum(p.numel() for p in net.parameters()) == PUBLISHED_PARAMS == 65_150_912
    sd = net.state_dict()
    assert set(sd) == published_ir101_keys()
    assert len([k for k in sd if k.endswith("res_layer.1.weight")]) == 49
    # fp32 tensors of the state dict ≈ the 261 MB published file
    nbytes = sum(v.numel() * v.element_size() for v in sd.values())
    assert abs(nbytes - 261e6) / 261e6 < 0.005
    with torch.no_grad():
        assert net.eval()(torch.zeros(2, 3, 112, 112)).shape == (2, 512)


def test_ir101_tiny_file_loads_safely_and_strictly(tmp_path):
    from idvideo_core.errors import UnsafeFileError, WrongModelError
    from idvideo_core.evaluate.curricularface import load_curricularface

    path = te.write_tiny_curricularface(tmp_path)
    sd = torch.load(path, weights_only=True)
    assert set(sd) == published_ir101_keys()
    model = load_curricularface(path)
    assert not model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd[k]), k
    bad = dict(sd)
    bad["body.0.res_layer.9.weight"] = bad.pop("body.0.res_layer.4.weight")
    torch.save(bad, tmp_path / "bad.bin")
    with pytest.raises(WrongModelError):
        load_curricularface(tmp_path / "bad.bin")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Evil()}, tmp_path / "evil.bin")
    with pytest.raises(UnsafeFileError):
        load_curricularface(tmp_path / "evil.bin")


# ------------------------------------------------------------------------------------------- several identities
def test_assignment_is_one_to_one_and_optimal():
    from idvideo_core.evaluate.score import assign

    rng = np.random.default_rng(0)
    for n_ids, n_faces in itertools.product(range(1, 5), range(5)):
        sim = rng.uniform(-0.2, 1.0, (n_ids, n_faces))
        pairs = assign(sim)
        assert len(pairs) == min(n_ids, n_faces)
        assert len(set(pairs.values())) == len(pairs)           # never two identities on one face
        if n_faces:
            best = max(sum(sim[i, p[i]] for i in range(n_ids) if p[i] is not None)
                       for p in _assignments(n_ids, n_faces))
            assert sum(sim[i, j] for i, j in pairs.items()) == pytest.approx(best)


def _assignments(n_ids, n_faces):
    slots = list(range(n_faces)) + [None] * max(0, n_ids - n_faces)
    for perm in itertools.permutations(slots, n_ids):
        yield perm


def test_two_identities_get_their_own_faces_and_missing_when_fewer(photos, score_models):
    from idvideo_core.evaluate.score import Reference, score_frames

    rng = np.random.default_rng(1)
    two = te.two_face_image(photos["other"], photos["tom"])             # other on the left, tom on the right
    swapped = te.two_face_image(photos["tom"], photos["other"])
    one = te.code_image(photos["tom"], te.CODE_FACE)                   # a single face for two identities
    video = np.stack([_noisy(two, rng), _noisy(swapped, rng), _noisy(one, rng), _noisy(two, rng)])
    refs = [Reference("tom", te.code_image(photos["tom"], te.CODE_FACE)),
            Reference("other", te.code_image(photos["other"], te.CODE_FACE))]
    rep = score_frames(score_models, video, refs, num_frames=0)
    tom, other = rep.identities
    for a, b in zip(tom.frames, other.frames):
        if not a.missing and not b.missing:
            assert a.bbox != b.bbox
    assert tom.frames[0].bbox == [float(v) for v in te.RIGHT_FACE]
    assert other.frames[0].bbox == [float(v) for v in te.LEFT_FACE]
    assert tom.frames[1].bbox == [float(v) for v in te.LEFT_FACE]
    assert other.frames[1].bbox == [float(v) for v in te.RIGHT_FACE]
    # frame 2 has one face: tom takes it, other is missing (reported), never scored 0
    assert not tom.frames[2].missing and other.frames[2].missing and other.frames[2].arc is None
    assert other.missing_frames == [2]
    assert other.facesim_arc == pytest.approx(np.mean([f.arc for f in other.frames if not f.missing]))


# ------------------------------------------------------------------------------------------------ behaviour
def test_reference_video_scores_higher_than_another_person(photos, score_models):
    from idvideo_core.evaluate.score import Reference, best_index, score_frames

    rng = np.random.default_rng(2)
    same = np.stack([_noisy(te.code_image(photos["tom"], te.CODE_FACE), rng) for _ in range(6)])
    different = np.stack([_noisy(te.code_image(photos["other"], te.CODE_FACE), rng) for _ in range(6)])
    ref = [Reference("tom", te.code_image(photos["tom"], te.CODE_FACE))]
    r_same, r_diff = (score_frames(score_models, v, ref) for v in (same, different))
    assert r_same.facesim_arc > r_diff.facesim_arc
    assert r_same.facesim_cur > r_diff.facesim_cur
    assert best_index([r_diff, r_same]) == 1


def test_missing_models_are_reported(tmp_path, monkeypatch, photos):
    from idvideo_core.errors import MissingModelError
    from idvideo_core.evaluate.models import ARC_FALLBACK, load_score_models
    from idvideo_core.testing.tiny_faces import write_tiny_arcface, write_tiny_scrfd

    monkeypatch.setenv("IDVIDEO_MODELS_DIR", str(tmp_path))
    with pytest.raises(MissingModelError, match="buffalo_l"):
        load_score_models("CPU", clip=False)
    ante = tmp_path / "insightface" / "models" / "antelopev2"
    write_tiny_scrfd(ante / "scrfd_10g_bnkps.onnx", (160, 160), [])
    write_tiny_arcface(ante / "glintr100.onnx")
    m = load_score_models("CPU", clip=False)
    assert m.arc_pack == ARC_FALLBACK and m.cur is None
    assert any("not comparable" in n for n in m.notes) and any("FaceSim-Cur skipped" in n for n in m.notes)


def test_plot_and_json_from_the_command(photos, models_root, tmp_path, monkeypatch):
    from PIL import Image

    from idvideo_core.cli import main
    from idvideo_core.video import write_video

    monkeypatch.setenv("IDVIDEO_MODELS_DIR", str(models_root))
    video = torch.from_numpy(mixed_video(photos, n=12).astype(np.float32) / 255)
    saved = write_video(video, fps=8, format="h264-mp4", filename_prefix="scoreme", output_dir=tmp_path)
    photo = tmp_path / "face.png"
    Image.fromarray(te.code_image(photos["tom"], te.CODE_FACE)).save(photo)
    out_json, out_png = tmp_path / "r.json", tmp_path / "r.png"
    rc = main(["score", str(saved.path), "--face", str(photo), "--json", str(out_json), "--plot", str(out_png),
               "--protocol", "ConsisID"])
    assert rc == 0
    data = json.loads(out_json.read_text())
    assert data["protocol"] == "ConsisID" and data["total_frames"] == 12 and len(data["sampled_frames"]) == 16
    ident = data["identities"][0]
    assert ident["frames_missing"] and ident["frames_padded_retry"]
    assert 0.0 < data["facesim_arc"] <= 1.0 and data["facesim_cur"] is not None
    img = np.asarray(Image.open(out_png))
    assert img.shape == (420, 960, 3) and img.std() > 10
    assert (img == (214, 39, 40)).all(axis=-1).any()   # the missing-frame markers are drawn


def test_best_of_seeds_keeps_the_video_of_the_reference(photos, models_root, tmp_path, monkeypatch):
    """generate --seeds: each seed's video is scored against --image; the contact sheet is written and --keep-best
    leaves only the best video. ``generate`` is stood in for by a writer whose seed 2 shows the reference person."""
    from PIL import Image

    from idvideo_core.cli import build_parser
    from idvideo_core.evaluate.cli import best_of_main, seeds_of
    from idvideo_core.video import write_video

    monkeypatch.setenv("IDVIDEO_MODELS_DIR", str(models_root))
    photo = tmp_path / "face.png"
    Image.fromarray(te.code_image(photos["tom"], te.CODE_FACE)).save(photo)

    def fake_generate(args):
        rng = np.random.default_rng(args.seed)
        who = photos["tom"] if args.seed == 2 else photos["other"]
        frames = np.stack([_noisy(te.code_image(who, te.CODE_FACE), rng) for _ in range(5)])
        return write_video(torch.from_numpy(frames.astype(np.float32) / 255), fps=8, filename_prefix="seed",
                           output_dir=tmp_path / "out").path

    args = build_parser().parse_args(["generate", "--image", str(photo), "--seeds", "1,2,3", "--keep-best",
                                      "--prompt", "a person"])
    assert seeds_of(args) == [1, 2, 3]
    best = best_of_main(args, fake_generate, seeds_of(args))
    videos = sorted((tmp_path / "out").glob("seed_*.mp4"))
    assert videos == [best] and best.name == "seed_00002.mp4"
    sheet = np.asarray(Image.open(best.with_name(best.stem + "_contact_sheet.png")))
    assert sheet.shape[0] == 3 * (160 + 16)
    summary = json.loads(best.with_name(best.stem + "_scores.json").read_text())
    assert summary["best_seed"] == 2 and [v["seed"] for v in summary["videos"]] == [1, 2, 3]
    assert summary["videos"][1]["facesim_arc"] > max(summary["videos"][0]["facesim_arc"],
                                                     summary["videos"][2]["facesim_arc"])
    n = build_parser().parse_args(["generate", "--num-seeds", "3", "--seed", "7"])
    assert seeds_of(n) == [7, 8, 9]


def test_seed_list_parsing():
    from idvideo_core.errors import InputError
    from idvideo_core.evaluate.seeds import parse_seeds

    assert parse_seeds("1, 2,3") == [1, 2, 3]
    assert parse_seeds("10-12, 5") == [10, 11, 12, 5]
    for bad in ("", "a", "5-3", "-1"):
        with pytest.raises(InputError):
            parse_seeds(bad)


def test_clip_score_follows_consisid_script(photos, models_root, tmp_path, monkeypatch):
    """CLIPScore: a transformers CLIPModel folder under models/idvideo/clip-vit-base-patch32 is found; the score is
    ConsisID's get_clipscore: frames int(i·N/16) as OpenCV BGR arrays, padded/truncated prompt, mean logits."""
    from transformers import CLIPModel, CLIPProcessor

    from idvideo_core.evaluate.models import load_score_models
    from idvideo_core.evaluate.score import Reference, score_frames

    root = tmp_path / "models"
    te.write_tiny_scoring_models(root)
    clip_dir = te.write_tiny_clip(root / "idvideo" / "clip-vit-base-patch32")
    monkeypatch.setenv("IDVIDEO_MODELS_DIR", str(root))
    m = load_score_models("CPU")
    assert m.clip is not None and m.clip_path == clip_dir
    video = mixed_video(photos, n=21)
    prompt = "a person smiling at the camera"
    rep = score_frames(m, video, [Reference("tom", te.code_image(photos["tom"], te.CODE_FACE))], prompt=prompt)
    model, proc = CLIPModel.from_pretrained(str(clip_dir)), CLIPProcessor.from_pretrained(str(clip_dir))
    frames = [cv2.cvtColor(video[int(i * len(video) / 16)], cv2.COLOR_RGB2BGR) for i in range(16)]
    with torch.no_grad():
        want = model(**proc(text=prompt, images=frames, return_tensors="pt", padding=True, truncation=True)
                     ).logits_per_image.mean().item()
    assert abs(rep.clip_score - want) <= 1e-6
    no_prompt = score_frames(m, video[:4], [Reference("tom", te.code_image(photos["tom"], te.CODE_FACE))])
    assert no_prompt.clip_score is None and any("no prompt" in n for n in no_prompt.notes)


def test_score_node_takes_a_list_of_videos_and_outputs_the_best(pack, photos, models_root, monkeypatch):
    """IDVIdentityScore as ComfyUI calls it (INPUT_IS_LIST: every input a list): two videos, the second shows the
    reference person, so it is the one passed on; the plot (one chart per video) and the title go to the UI."""
    from types import SimpleNamespace

    from idvideo_core.types import DetectedFace

    monkeypatch.setenv("IDVIDEO_MODELS_DIR", str(models_root))
    cls = pack.NODE_CLASS_MAPPINGS["IDVIdentityScore"]
    assert cls.INPUT_IS_LIST and pack.NODE_CLASS_MAPPINGS["IDVSeedList"].OUTPUT_IS_LIST == (True,)
    assert pack.NODE_CLASS_MAPPINGS["IDVSeedList"]().seeds("4, 5-6")[0] == [4, 5, 6]
    rng = np.random.default_rng(3)

    def video(who):
        return torch.from_numpy(np.stack([_noisy(te.code_image(photos[who], te.CODE_FACE), rng)
                                          for _ in range(4)]).astype(np.float32) / 255)

    videos = [video("other"), video("tom")]
    ref = te.code_image(photos["tom"], te.CODE_FACE)
    face = DetectedFace(image_index=0, bbox=np.array(te.FACE, np.float32), det_score=0.9,
                        kps=np.zeros((5, 2), np.float32), embedding=None, source_rgb=ref)
    out = cls().score(frames=videos, faces=[[face]], face_models=[SimpleNamespace(provider="CPU", files=None)],
                      protocol=["ConsisID (16 frames)"], prompt=[""], sample_frames=[-1])
    arc, cur, clip, plot, report, best_frames, best = out["result"]
    assert best == 1 and torch.equal(best_frames, videos[1])
    data = json.loads(report)
    assert data["best"] == 1 and [v["protocol"] for v in data["videos"]] == ["ConsisID"] * 2
    assert arc == pytest.approx(data["videos"][1]["facesim_arc"])
    assert data["videos"][1]["facesim_arc"] > data["videos"][0]["facesim_arc"]
    assert plot.shape == (2, 420, 960, 3) and clip == 0.0 and cur > 0
    assert "best 2 of 2" in out["ui"]["idv_score"][0]["title"]
