"""Command-line side of the scorer, wired from :mod:`idvideo_core.cli`.

``python -m idvideo_core score VIDEO --face PHOTO [--face PHOTO2] [--prompt …] [--json out.json] [--plot out.png]``
scores any video PyAV can read against one or more reference photos (one identity per photo: its largest face).

``python -m idvideo_core generate … --seeds 1,2,3 | --num-seeds N [--keep-best]`` makes one video per seed, scores
each against the ``--image`` photo, writes a contact sheet (first / middle / last frame and the scores of every seed)
and, with ``--keep-best``, deletes the other videos so only the best one stays.

``--smoke`` (both commands) writes tiny random scoring models (buffalo_l layout + CurricularFace IR-101) to a
temporary folder and uses them: it proves the command runs end to end, the numbers mean nothing.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from ..errors import InputError
from .protocols import PROTOCOLS

log = logging.getLogger("idvideo")


def read_video_frames(path: Path | str) -> tuple[np.ndarray, float]:
    """Every frame of the first video stream as (N, H, W, 3) uint8 RGB, and the frame rate."""
    import av

    path = Path(path)
    if not path.is_file():
        raise InputError(f"The video {path} does not exist.", "Give the path of a video file.")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path} has no video stream.", "Give a video file (mp4, webm, mkv, gif …).")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0) or 8.0
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    except av.error.FFmpegError as exc:
        raise InputError(f"Cannot read the video {path}: {exc}", "Give a video PyAV/FFmpeg can decode.") from exc
    if not frames:
        raise InputError(f"{path} holds no decodable frames.", "Give a complete video file.")
    return np.stack(frames), fps


def read_photo(path: Path) -> np.ndarray:
    from ..cli import _load_image

    return np.clip(np.rint(_load_image(Path(path))[0].numpy() * 255), 0, 255).astype(np.uint8)


def add_score_parser(sub) -> argparse.ArgumentParser:
    s = sub.add_parser("score", help="Score how well a video keeps the identity of reference photos "
                                     "(FaceSim-Arc, FaceSim-Cur, CLIPScore).")
    s.add_argument("video", type=Path, help="Any video PyAV reads.")
    s.add_argument("--face", type=Path, action="append", required=True,
                   help="Reference photo (repeat for several identities; each photo's largest face).")
    s.add_argument("--prompt", default=None, help="Prompt for the CLIPScore (needs a clip-vit-base-patch32 folder).")
    s.add_argument("--protocol", default="OpenS2V-Eval", choices=list(PROTOCOLS),
                   help="OpenS2V-Eval (32 frames, default) or ConsisID (16 frames).")
    s.add_argument("--frames", type=int, default=None, help="Frames to sample (default: the protocol's; 0 = all).")
    s.add_argument("--json", type=Path, default=None, help="Write the full report (per identity, per frame) here.")
    s.add_argument("--plot", type=Path, default=None, help="Write the per-frame similarity plot (PNG) here.")
    s.add_argument("--model", default=None, help="A ConsisID-preview folder to search for face_encoder/ models.")
    s.add_argument("--provider", default="auto", choices=["auto", "CPU", "CUDA", "ROCm", "CoreML"],
                   help="ONNX Runtime provider for the face models; auto = the best one available (logged).")
    s.add_argument("--smoke", action="store_true", help="Use tiny random scoring models (install check).")
    return s


def add_best_of_args(g: argparse.ArgumentParser) -> None:
    g.add_argument("--seeds", default=None, help="Comma-separated seeds (or ranges), one video each, e.g. 1,2,3 or 10-13 (best of N).")
    g.add_argument("--num-seeds", type=int, default=None, help="N videos with seeds --seed, --seed+1, …")
    g.add_argument("--keep-best", action="store_true", help="With several seeds: keep only the best-scoring video.")
    g.add_argument("--score-protocol", default="OpenS2V-Eval", choices=list(PROTOCOLS))


def seeds_of(args) -> list[int] | None:
    if getattr(args, "seeds", None):
        from .seeds import parse_seeds

        return parse_seeds(args.seeds)
    if getattr(args, "num_seeds", None):
        if args.num_seeds < 1:
            raise InputError("--num-seeds must be at least 1.", "Write e.g. --num-seeds 4")
        return [args.seed + k for k in range(args.num_seeds)]
    if getattr(args, "keep_best", False):
        raise InputError("--keep-best needs several seeds.", "Add --seeds 1,2,3 or --num-seeds N.")
    return None


def _smoke_models() -> Path:
    from ..testing.tiny_eval import write_tiny_scoring_models

    root = Path(tempfile.mkdtemp(prefix="idvideo-score-smoke-"))
    print(f"Writing tiny random scoring models to {root} (smoke test: the scores mean nothing) ...")
    write_tiny_scoring_models(root, always_face=True)
    os.environ["IDVIDEO_MODELS_DIR"] = str(root)
    return root


def _load(args, consisid_folder=None):
    from .models import load_score_models

    if getattr(args, "smoke", False):
        _smoke_models()
        consisid_folder = None
    from ..bridge import torch_device

    return load_score_models(args.provider, consisid_folder=consisid_folder, device=torch_device(), clip=True)


def _print_report(report, label: str = "") -> None:
    fmt = (lambda v: "n/a" if v is None else f"{v:.4f}")
    print(f"{label}FaceSim-Arc {fmt(report.facesim_arc)}  FaceSim-Cur {fmt(report.facesim_cur)}"
          + (f"  CLIPScore {report.clip_score:.2f}" if report.clip_score is not None else "")
          + f"  ({report.protocol}: {len(report.sampled_frames)} samples of {report.total_frames} frames)")
    for ident in report.identities:
        print(f"  {ident.label}: Arc {fmt(ident.facesim_arc)}  Cur {fmt(ident.facesim_cur)}  "
              f"missing frames {ident.missing_frames}")
    for n in report.notes:
        print(f"  note: {n}")


def score_main(args) -> int:
    from PIL import Image

    from .plot import plot_report
    from .protocols import get_protocol
    from .score import Reference, score_frames

    video, _fps = read_video_frames(args.video)
    refs = [Reference(Path(p).stem, read_photo(p)) for p in args.face]
    models = _load(args, args.model)
    report = score_frames(models, video, refs, get_protocol(args.protocol), args.frames, args.prompt)
    _print_report(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report.to_dict(), indent=1) + "\n")
        print(f"Wrote {args.json}")
    if args.plot:
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(plot_report(report)).save(args.plot)
        print(f"Wrote {args.plot}")
    return 0


def best_of_main(args, generate, seeds: list[int]) -> Path:
    """Run ``generate(args)`` once per seed, score each video against ``args.image``, write the contact sheet and
    (``--keep-best``) keep only the best video. Returns the best video's path."""
    from PIL import Image

    from .plot import contact_sheet
    from .protocols import get_protocol
    from .score import Reference, best_index, score_frames

    paths = []
    for s in seeds:
        args.seed = s
        print(f"--- seed {s} ({len(paths) + 1} of {len(seeds)})")
        paths.append(Path(generate(args)))
    image = args.image[0] if isinstance(args.image, list) and args.image else args.image or None
    if image is None:  # --smoke picks the bundled photo
        import insightface

        image = Path(insightface.__file__).parent / "data" / "images" / "Tom_Hanks_54745.png"
    refs = [Reference(Path(image).stem, read_photo(Path(image)))]
    model_dir = Path(args.model).expanduser() if args.model and not args.smoke else None
    models = _load(args, model_dir)
    videos, reports = [], []
    for s, p in zip(seeds, paths):
        video, _ = read_video_frames(p)
        rep = score_frames(models, video, refs, get_protocol(args.score_protocol), prompt=args.prompt)
        _print_report(rep, f"seed {s}: ")
        videos.append(video)
        reports.append(rep)
    best = best_index(reports)
    sheet = contact_sheet(videos, reports, [f"seed {s}" for s in seeds], best)
    sheet_path = paths[best].with_name(paths[best].stem + "_contact_sheet.png")
    Image.fromarray(sheet).save(sheet_path)
    summary = {"seeds": seeds, "best_seed": seeds[best], "best_video": str(paths[best]),
               "videos": [{"seed": s, "path": str(p), **{k: r.to_dict()[k] for k in
                                                        ("facesim_arc", "facesim_cur", "clip_score")}}
                          for s, p, r in zip(seeds, paths, reports)]}
    summary_path = paths[best].with_name(paths[best].stem + "_scores.json")
    summary_path.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"Best: seed {seeds[best]} -> {paths[best]}\nWrote {sheet_path}\nWrote {summary_path}")
    if args.keep_best:
        for k, p in enumerate(paths):
            if k != best and p.exists():
                p.unlink()
                print(f"Removed {p} (seed {seeds[k]})")
    return paths[best]
