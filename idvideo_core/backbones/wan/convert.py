"""Convert a pickled Wan DiT (Concat-ID ``first_stage.pt`` / ``second_stage_adaln.pt``, ``Phantom-Wan-1.3B.pth``) to
safetensors, so it never has to be unpickled again.

    python -m idvideo_core.backbones.wan.convert in.pt out.safetensors [--names original|diffusers] [--dtype bf16]

The pickle is read with ``weights_only=True``. By default key names stay ORIGINAL (the file then looks like any
ComfyUI Wan DiT and the AdaLN extras keep their published names); ``--names diffusers`` writes diffusers names
(extras as ``ref_time_proj.*`` / ``blocks.N.ref_scale_shift_table``). Both load in IDVideo: the format is read from
the keys.
"""
from __future__ import annotations

from pathlib import Path

from ...errors import MissingModelError, WrongModelError
from ...safeload import load_weights
from ..convert_common import DTYPES, check_output, converter_main, save_converted  # noqa: F401  (DTYPES re-exported)
from . import keys as K


def convert(src: str | Path, dst: str | Path, names: str = "original", dtype: str = "keep") -> dict:
    src = Path(src)
    dst = check_output(dst, "first_stage.safetensors")
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
    return save_converted(out, dst, src.name, names, dtype)


def main(argv=None) -> int:
    return converter_main(
        argv, prog="python -m idvideo_core.backbones.wan.convert", description=__doc__.split("\n")[0],
        convert=convert, names=("original", "diffusers"),
        summary=lambda out: f" ({sum(1 for k in out if '_ref' in k or 'ref_' in k)} Concat-ID AdaLN extras)")


if __name__ == "__main__":
    raise SystemExit(main())
