"""Convert a Concat-ID-CogVideoX SAT checkpoint to safetensors, so it never has to be unpickled again.

    python -m idvideo_core.backbones.concatid_cogvideox.convert models/concatid/two-identities out.safetensors \
        [--names sat|diffusers] [--dtype keep|fp32|fp16|bf16]

The input is a SAT folder (``latest`` + ``<iteration>/mp_rank_00_model_states.pt``), an iteration folder or the
``.pt`` itself, read with ``weights_only=True`` (checkpoint.py). Only the DiT is written (``module``; the DeepSpeed
bookkeeping and SAT's unused position tables are dropped). ``--names sat`` (default) keeps the published key names
(``model.diffusion_model.…``), ``--names diffusers`` writes ``CogVideoXTransformer3DModel`` names; IDVideo loads both.
"""
from __future__ import annotations

from pathlib import Path

from ...errors import WrongModelError
from ..convert_common import DTYPES, check_output, converter_main, save_converted  # noqa: F401  (DTYPES re-exported)
from . import keys as K
from .checkpoint import load_dit_weights


def convert(src: str | Path, dst: str | Path, names: str = "sat", dtype: str = "keep") -> dict:
    dst = check_output(dst, "concatid_cogvideox_two_identities.safetensors")
    sd, path = load_dit_weights(src)
    if K.detect_names(sd.keys()) == "unknown":
        raise WrongModelError(f"{path} is not a CogVideoX DiT.", "Give a Concat-ID-CogVideoX SAT checkpoint folder.")
    try:
        dsd = K.sat_to_diffusers(sd) if K.detect_names(sd.keys()) == "sat" else dict(sd)
        out = dsd if names == "diffusers" else K.diffusers_to_sat(dsd)
    except K.UnknownKeysError as exc:
        raise WrongModelError(f"{path} has keys IDVideo does not know: {exc.keys[:5]}",
                              "Give a Concat-ID-CogVideoX (CogVideoX-5B T2V) SAT checkpoint.") from exc
    return save_converted(out, dst, Path(src).name, names, dtype)


def main(argv=None) -> int:
    return converter_main(
        argv, prog="python -m idvideo_core.backbones.concatid_cogvideox.convert",
        description=__doc__.split("\n")[0], convert=convert, names=("sat", "diffusers"),
        src_help="SAT folder (with 'latest'), iteration folder or mp_rank_00_model_states.pt")


if __name__ == "__main__":
    raise SystemExit(main())
