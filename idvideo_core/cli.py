"""Command line: ``python -m idvideo_core generate --image photo.jpg --prompt "..." --model /path/to/ConsisID-preview``
(:mod:`idvideo_core.cli_generate`), ``python -m idvideo_core models`` (:mod:`idvideo_core.setup_check`).

``python -m idvideo_core run-workflow workflows/x.json --server http://127.0.0.1:8188`` queues a workflow on a running
ComfyUI and shows its progress (see :mod:`idvideo_core.remote`).

The same core the nodes call, with a console progress bar. ``--smoke`` writes a tiny random ConsisID checkpoint in
the real layout and runs it end to end (a labelled noise video) to prove an install works.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .cli_generate import SMOKE_LABEL, load_image as _load_image, lora_arg, render  # noqa: F401 - generate lives there


def add_comfyui_arguments(p: argparse.ArgumentParser) -> None:
    """Which ComfyUI install's model folders to search (also found by itself when the pack is in its custom_nodes)."""
    p.add_argument("--comfyui", type=Path, help="A ComfyUI folder: search its models/ folders and its "
                   "extra_model_paths.yaml before IDVIDEO_MODELS_DIR (default: the ComfyUI this pack is installed in).")
    p.add_argument("--extra-model-paths-config", type=Path, action="append", metavar="YAML",
                   help="Another extra_model_paths.yaml to read, as ComfyUI's flag of that name. Repeatable.")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="idvideo", description="Identity-preserving video generation (IDVideo).")
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="Make a video from a photo and a prompt (ConsisID, Concat-ID, Phantom): "
                                        "every input, option and model file is checked before any weights load.")
    from .cli_generate import add_arguments as add_generate_arguments

    add_generate_arguments(g)
    add_comfyui_arguments(g)
    from .evaluate.cli import add_best_of_args, add_score_parser

    add_best_of_args(g)
    add_score_parser(sub)
    m = sub.add_parser("models", help="What each template and model family needs, where IDVideo looks for it and "
                                      "what is there (exit 0 only when the named one can run).")
    m.add_argument("--json", action="store_true", help="Machine-readable report.")
    pick = m.add_mutually_exclusive_group()
    pick.add_argument("--template", help="Only this template (a name from workflows/, e.g. single_identity_consisid).")
    pick.add_argument("--model", help="Only this model family (consisid, concatid_wan, phantom_wan, wan).")
    add_comfyui_arguments(m)
    r = sub.add_parser("run-workflow", help="Queue a workflow on a running ComfyUI and follow its progress.")
    r.add_argument("workflow", type=Path, help="Workflow JSON (UI format as saved by ComfyUI, or API format).")
    r.add_argument("--server", default="http://127.0.0.1:8188", help="ComfyUI's address.")
    r.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="Set every node input NAME (not a link) to VALUE, e.g. --set steps=20. Repeatable.")
    r.add_argument("--timeout", type=float, default=3600.0, help="Seconds to wait for the prompt to finish.")
    return p


def main(argv=None) -> int:
    from .errors import IDVideoError

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = build_parser().parse_args(argv)
    if args.command == "run-workflow":
        from .remote import main as run_workflow_main

        try:
            return run_workflow_main(args)
        except IDVideoError as err:
            print("\n" + render(err), file=sys.stderr)
            return 2
    if args.command == "models":
        from .setup_check import main as models_main

        try:
            return models_main(args)
        except IDVideoError as err:
            print("\n" + render(err), file=sys.stderr)
            return 2
    if args.command == "score":
        from .evaluate.cli import score_main

        try:
            return score_main(args)
        except IDVideoError as err:
            print("\n" + render(err), file=sys.stderr)
            return 2
    from .cli_generate import main as generate_main

    return generate_main(args)
