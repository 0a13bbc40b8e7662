"""Convert a pickled Wan DiT (Concat-ID ``first_stage.pt`` / ``second_stage_adaln.pt``, ``Phantom-Wan-1.3B.pth``) to
safetensors, so it never has to be unpickled again.

    python -m idvideo_core.backbones.wan.convert in.pt out.safetensors [--names original|diffusers] [--dtype bf16]

The pickle is read with ``weights_only=True``. By default key names stay ORIGINAL (the file then looks like any
ComfyUI Wan DiT and the AdaLN extras keep their published names); ``--names diffusers`` writes diffusers names
(extras as ``ref_time_proj.*`` / ``blocks.N.ref_scale_shift_table``). Both load in IDVideo: the format is read from
the keys.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ...errors import IDVideoError, InputError, MissingModelError, WrongModelError
from ...safeload import load_weights
from . import keys as K

DTYPES = {"keep": None, "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def convert(src: str | Path, dst: str | Path, names: str = "original", dtype: str = "keep") -> dict:
    from safetensors.torch import save_file

    src, dst = Path(src), Path(dst)
    if dst.suffix != ".safetensors":
        raise InputError(f"The output must end in .safetensors (got {dst.name}).", "Name it e.g. first_stage.safetensors.")
    if not src.is_file():
        raise MissingModelError(f"the checkpoint {src.name}", [src])
    sd = load_weights(src)
    fmt = K.detect_transformer_format(sd.keys())
    if fmt == "unknown":
        raise WrongModelError(f"{src} is not a Wan2.1 DiT.", "Give a Concat-ID-Wan or Phantom-Wan checkpoint.")
    try:
        dsd = K.original_to_diffusers(sd) if fmt == "original" else {s: sd[o] for s, o in K.strip_prefix(sd)[1].items()}
        out = dsd if names == "diffusers" else K.diffusers_to_original(dsd)
    except K.UnknownKeysError as exc:
        raise WrongModelError(f"{src} has keys IDVideo does not know: {exc.keys[:5]}",
                              "Give a Wan2.1 / Concat-ID-Wan / Phantom-Wan DiT checkpoint.") from exc
    cast = DTYPES[dtype]
    out = {k: (v.to(cast) if cast is not None and v.is_floating_point() else v).contiguous() for k, v in out.items()}
    dst.parent.mkdir(parents=True, exist_ok=True)
    save_file(out, str(dst), metadata={"format": "pt", "idvideo_source": src.name, "key_names": names})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m idvideo_core.backbones.wan.convert", description=__doc__.split("\n")[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--names", choices=("original", "diffusers"), default="original")
    ap.add_argument("--dtype", choices=tuple(DTYPES), default="keep")
    args = ap.parse_args(argv)
    try:
        out = convert(args.src, args.dst, args.names, args.dtype)
    except IDVideoError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    extras = sum(1 for k in out if "_ref" in k or "ref_" in k)
    print(f"wrote {args.dst}: {len(out)} tensors ({extras} Concat-ID AdaLN extras), {args.names} key names")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
