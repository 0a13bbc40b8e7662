"""Convert a Concat-ID-CogVideoX SAT checkpoint to safetensors, so it never has to be unpickled again.

    python -m idvideo_core.backbones.concatid_cogvideox.convert models/concatid/two-identities out.safetensors \
        [--names sat|diffusers] [--dtype keep|fp32|fp16|bf16]

The input is a SAT folder (``latest`` + ``<iteration>/mp_rank_00_model_states.pt``), an iteration folder or the
``.pt`` itself, read with ``weights_only=True`` (checkpoint.py). Only the DiT is written (``module``; the DeepSpeed
bookkeeping and SAT's unused position tables are dropped). ``--names sat`` (default) keeps the published key names
(``model.diffusion_model.…``), ``--names diffusers`` writes ``CogVideoXTransformer3DModel`` names; IDVideo loads both.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ...errors import IDVideoError, InputError, WrongModelError
from . import keys as K
from .checkpoint import load_dit_weights

DTYPES = {"keep": None, "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def convert(src: str | Path, dst: str | Path, names: str = "sat", dtype: str = "keep") -> dict:
    from safetensors.torch import save_file

    dst = Path(dst)
    if dst.suffix != ".safetensors":
        raise InputError(f"The output must end in .safetensors (got {dst.name}).",
                         "Name it e.g. concatid_cogvideox_two_identities.safetensors.")
    sd, path = load_dit_weights(src)
    if K.detect_names(sd.keys()) == "unknown":
        raise WrongModelError(f"{path} is not a CogVideoX DiT.", "Give a Concat-ID-CogVideoX SAT checkpoint folder.")
    try:
        dsd = K.sat_to_diffusers(sd) if K.detect_names(sd.keys()) == "sat" else dict(sd)
        out = dsd if names == "diffusers" else K.diffusers_to_sat(dsd)
    except K.UnknownKeysError as exc:
        raise WrongModelError(f"{path} has keys IDVideo does not know: {exc.keys[:5]}",
                              "Give a Concat-ID-CogVideoX (CogVideoX-5B T2V) SAT checkpoint.") from exc
    cast = DTYPES[dtype]
    out = {k: (v.to(cast) if cast is not None and v.is_floating_point() else v).contiguous() for k, v in out.items()}
    dst.parent.mkdir(parents=True, exist_ok=True)
    save_file(out, str(dst), metadata={"format": "pt", "idvideo_source": Path(src).name, "key_names": names})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m idvideo_core.backbones.concatid_cogvideox.convert",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("src", help="SAT folder (with 'latest'), iteration folder or mp_rank_00_model_states.pt")
    ap.add_argument("dst", help="output .safetensors")
    ap.add_argument("--names", choices=("sat", "diffusers"), default="sat")
    ap.add_argument("--dtype", choices=tuple(DTYPES), default="keep")
    args = ap.parse_args(argv)
    try:
        out = convert(args.src, args.dst, args.names, args.dtype)
    except IDVideoError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(f"wrote {args.dst}: {len(out)} tensors, {args.names} key names")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
