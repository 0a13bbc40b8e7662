"""Command line: ``python -m idvideo_core generate --image photo.jpg --prompt "..." --model /path/to/ConsisID-preview``.

``python -m idvideo_core run-workflow workflows/x.json --server http://127.0.0.1:8188`` queues a workflow on a running
ComfyUI and shows its progress (see :mod:`idvideo_core.remote`).

The same core the nodes call, with a console progress bar. ``--smoke`` writes a tiny random ConsisID checkpoint in
the real layout and runs it end to end (a labelled noise video) to prove an install works.
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

SMOKE_LABEL = "IDVideo smoke test: random weights"


def _console_progress(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc or "IDVideo", unit="step", leave=True)


def _load_image(path: Path):
    import numpy as np
    import torch
    from PIL import Image, ImageOps

    from .errors import InputError

    try:
        img = ImageOps.exif_transpose(Image.open(path))
        if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            # 16-bit / 32-bit gray: PIL's convert("RGB") clips to 255 (a white image); scale to 8 bit instead.
            arr = np.asarray(img, dtype=np.float32)
            top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
            logging.getLogger("idvideo").warning("IDVideo: %s is a %s-bit gray image; converted to RGB.",
                                                 path, 16 if top > 255 else 8)
            arr = np.clip(arr / top, 0, 1)
            return torch.from_numpy(np.repeat(arr[:, :, None], 3, axis=2))[None]
        img = img.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(f"Cannot read the image {path}: {exc}", "Give a JPEG or PNG photo.") from exc
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)[None]


def _label(frames, text: str):
    import cv2
    import numpy as np
    import torch

    out = []
    for f in frames.numpy():
        img = np.ascontiguousarray((f * 255).astype(np.uint8))
        scale = max(img.shape[1] / 640, 0.25)
        cv2.putText(img, text, (4, max(int(14 * scale), 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.45 * scale,
                    (255, 255, 255), 1, cv2.LINE_AA)
        out.append(img.astype(np.float32) / 255)
    return torch.from_numpy(np.stack(out))


def lora_arg(item: str) -> tuple[str, float]:
    """``FILE[:STRENGTH]`` → (file, strength); a colon not followed by a number is part of the path."""
    file, sep, tail = item.rpartition(":")
    if sep:
        try:
            return file, float(tail)
        except ValueError:
            pass
    return item, 1.0


def generate(args) -> Path:
    from . import runtime
    from .backbones.consisid.loading import load_consisid
    from .video import write_video

    model_dir = Path(args.model).expanduser() if args.model else None
    if model_dir is not None and model_dir.is_dir():
        model_dir = model_dir.resolve()   # a folder given on the command line may use '..' (node names may not)
    image = args.image
    if args.smoke:
        from .testing import build_consisid_folder
        from .testing.tiny_consisid import TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH

        model_dir = Path(tempfile.mkdtemp(prefix="idvideo-smoke-")) / "ConsisID-smoke"
        print(f"Writing a tiny random ConsisID checkpoint to {model_dir} ...")
        build_consisid_folder(model_dir)
        args.width, args.height, args.frames = TINY_WIDTH, TINY_HEIGHT, TINY_FRAMES
        args.steps = min(args.steps, 4)
        if image is None:
            import insightface

            image = Path(insightface.__file__).parent / "data" / "images" / "Tom_Hanks_54745.png"
    if model_dir is None:
        from .paths import PUBLISHED, search_dirs
        from .errors import MissingModelError

        raise MissingModelError("a ConsisID model folder (pass --model)",
                                [str(p) for p in search_dirs("consisid")], PUBLISHED["consisid"])
    if image is None:
        from .errors import InputError

        raise InputError("No photo given.", "Pass --image path/to/photo.jpg")
    model = load_consisid(model_dir, args.precision)
    model = runtime.attach_memory(model, args.memory_mode)
    for item in args.lora or ():
        from .lora import with_lora_file

        file, strength = lora_arg(item)
        model, report = with_lora_file(model, Path(file).expanduser(), strength)
        print(report)
    face_models = runtime.load_face_models(args.provider, "fp32", consisid_folder=model_dir)
    faces, _, _ = runtime.find_faces(face_models, _load_image(Path(image)), args.selection, 0,
                                     "use whole image" if args.smoke else "error")
    local = runtime.local_identity(face_models, faces)
    ident = runtime.global_identity(model, faces, args.width, args.height)
    text = runtime.encode_prompt(model, args.prompt, args.negative_prompt)
    frames = runtime.generate(model, text, width=args.width, height=args.height, num_frames=args.frames,
                              steps=args.steps, cfg=args.cfg, seed=args.seed, global_identity=ident,
                              local_identity=local, vae_tiling=not args.no_tiling)
    if args.smoke:
        frames = _label(frames, SMOKE_LABEL)
    saved = write_video(frames, fps=args.fps, format=args.format, filename_prefix=args.prefix,
                        output_dir=args.output, metadata={"prompt": args.prompt, "idvideo": vars_for_meta(args)})
    return saved.path


def vars_for_meta(args) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="idvideo", description="Identity-preserving video generation (IDVideo).")
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="Make a ConsisID video from a photo and a prompt.")
    g.add_argument("--image", type=Path, help="Photo of the person.")
    g.add_argument("--prompt", default="A person smiles and looks around, cinematic light.")
    g.add_argument("--negative-prompt", default="")
    g.add_argument("--model", help="ConsisID-preview folder (diffusers layout) or its name under models/consisid.")
    g.add_argument("--smoke", action="store_true", help="Run a tiny random checkpoint end to end (install check).")
    g.add_argument("--width", type=int, default=720)
    g.add_argument("--height", type=int, default=480)
    g.add_argument("--frames", type=int, default=49)
    g.add_argument("--steps", type=int, default=50)
    g.add_argument("--cfg", type=float, default=6.0)
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--fps", type=float, default=8)
    g.add_argument("--format", default="h264-mp4")
    g.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp16", "fp32"])
    g.add_argument("--memory-mode", default="auto",
                   choices=["auto", "gpu", "model_offload", "block_swap", "sequential"])
    g.add_argument("--provider", default="CPU", choices=["CPU", "CUDA", "ROCm", "CoreML"])
    g.add_argument("--selection", default="largest", choices=["largest", "center", "index", "all"])
    g.add_argument("--no-tiling", action="store_true")
    g.add_argument("--lora", action="append", metavar="FILE[:STRENGTH]",
                   help="A LoRA .safetensors to merge for this run (repeatable; strength 1 if omitted).")
    g.add_argument("--output", type=Path, default=Path("output"))
    g.add_argument("--prefix", default="IDVideo")
    from .evaluate.cli import add_best_of_args, add_score_parser

    add_best_of_args(g)
    add_score_parser(sub)
    r = sub.add_parser("run-workflow", help="Queue a workflow on a running ComfyUI and follow its progress.")
    r.add_argument("workflow", type=Path, help="Workflow JSON (UI format as saved by ComfyUI, or API format).")
    r.add_argument("--server", default="http://127.0.0.1:8188", help="ComfyUI's address.")
    r.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="Set every node input NAME (not a link) to VALUE, e.g. --set steps=20. Repeatable.")
    r.add_argument("--timeout", type=float, default=3600.0, help="Seconds to wait for the prompt to finish.")
    return p


def main(argv=None) -> int:
    from . import bridge
    from .errors import IDVideoError

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = build_parser().parse_args(argv)
    if args.command == "run-workflow":
        from .remote import main as run_workflow_main

        try:
            return run_workflow_main(args)
        except IDVideoError as err:
            print(f"\nIDVideo: {err}", file=sys.stderr)
            return 2
    bridge.set_console_progress(_console_progress)
    try:
        if args.command == "score":
            from .evaluate.cli import score_main

            return score_main(args)
        from .evaluate.cli import best_of_main, seeds_of

        seeds = seeds_of(args)
        path = best_of_main(args, generate, seeds) if seeds else generate(args)
    except IDVideoError as err:
        print(f"\nIDVideo: {err}", file=sys.stderr)
        return 2
    except bridge.GenerationCancelled:
        print("\nIDVideo: cancelled.", file=sys.stderr)
        return 130
    print(f"Saved {path}")
    return 0
