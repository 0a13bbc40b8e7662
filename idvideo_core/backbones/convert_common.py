"""What the pickle → safetensors converters of every family share: the output check, the optional cast, the save
with provenance metadata, and the command line (``python -m idvideo_core.backbones.<family>.convert``)."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from ..errors import IDVideoError, InputError

DTYPES = {"keep": None, "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def check_output(dst: str | Path, example: str) -> Path:
    dst = Path(dst)
    if dst.suffix != ".safetensors":
        raise InputError(f"The output must end in .safetensors (got {dst.name}).", f"Name it e.g. {example}.")
    return dst


def save_converted(out: dict, dst: Path, source_name: str, names: str, dtype: str) -> dict:
    """Cast floating tensors to ``dtype`` (``keep``: as stored), write ``dst`` and return what was written."""
    from safetensors.torch import save_file

    cast = DTYPES[dtype]
    out = {k: (v.to(cast) if cast is not None and v.is_floating_point() else v).contiguous() for k, v in out.items()}
    dst.parent.mkdir(parents=True, exist_ok=True)
    save_file(out, str(dst), metadata={"format": "pt", "idvideo_source": source_name, "key_names": names})
    return out


def converter_main(argv, *, prog: str, description: str, convert: Callable, names: tuple[str, str],
                   src_help: str = "the checkpoint", summary: Callable[[dict], str] = lambda out: "") -> int:
    """``convert(src, dst, names, dtype)``; ``names``: (default naming, the other one)."""
    ap = argparse.ArgumentParser(prog=prog, description=description)
    ap.add_argument("src", help=src_help)
    ap.add_argument("dst", help="output .safetensors")
    ap.add_argument("--names", choices=names, default=names[0])
    ap.add_argument("--dtype", choices=tuple(DTYPES), default="keep")
    args = ap.parse_args(argv)
    try:
        out = convert(args.src, args.dst, args.names, args.dtype)
    except IDVideoError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(f"wrote {args.dst}: {len(out)} tensors{summary(out)}, {args.names} key names")
    return 0
