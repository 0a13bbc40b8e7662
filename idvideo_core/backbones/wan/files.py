"""What a weight file in the Wan loader's folders holds, read from its header, cached (issue 14).

The loader's ``dit`` list shows only the files the chosen family can load, and a file of the wrong family is refused
with a clear error before the weights are read. Families are told apart by their keys, never by file names:

* ``wan_dit``: a Wan2.1 DiT (original, diffusers or ComfyUI names). Plain Wan2.1 T2V, Phantom-Wan and Concat-ID-Wan
  stage 1 share this architecture and key set, so a header cannot tell them apart;
* ``wan_dit_adaln``: a Wan2.1 DiT with Concat-ID's AdaLN extras (``time_projection_ref`` / ``modulation_ref``):
  Concat-ID-Wan only;
* ``consisid`` / ``cogvideox``: a CogVideoX-family transformer (wrong loader);
* ``wan_vae``, ``umt5``: other Wan components that sit in the same folders;
* ``unknown``: anything else (or a file that cannot be read: the loader reports the damage when it is chosen).

Safetensors headers are read directly (all shards' headers for one shard of a sharded checkpoint); pickles (``.pt`` / ``.pth``) are opened with ``torch.load(mmap=True,
weights_only=True)``, which maps the tensors without reading them. Results are cached per (path, size, mtime).
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path

log = logging.getLogger("idvideo")

WAN_DIT, WAN_DIT_ADALN = "wan_dit", "wan_dit_adaln"
# which file kinds each Wan-based family loads as its DiT
ACCEPTS = {"concatid_wan": (WAN_DIT, WAN_DIT_ADALN), "phantom_wan": (WAN_DIT,), "wan": (WAN_DIT,)}
KIND_WORDS = {WAN_DIT: "a Wan2.1 DiT", WAN_DIT_ADALN: "a Concat-ID-Wan DiT with AdaLN extras (Concat-ID only)",
              "consisid": "a ConsisID checkpoint", "cogvideox": "a CogVideoX checkpoint",
              "wan_vae": "the Wan VAE", "umt5": "a UMT5 text encoder", "unknown": "not a Wan DiT IDVideo knows"}

_CACHE: dict[tuple[str, int, int], str] = {}
_LOCK = threading.Lock()


def _keys(path: Path) -> list[str]:
    """Every tensor name of the checkpoint ``path`` belongs to: one shard of a sharded checkpoint stands for all."""
    from ...safeload import safetensors_keys, weight_keys
    from .loading import shard_files

    shards = shard_files(path) if path.suffix == ".safetensors" else None
    if shards:
        return [k for shard in shards for k in safetensors_keys(shard)]
    return weight_keys(path)


def kind_from_keys(keys) -> str:
    from ..detect import family_from_keys
    from . import keys as K

    keys = list(keys)
    fam = family_from_keys(keys)
    if fam in ("consisid", "cogvideox"):
        return fam
    _, strip = K.strip_prefix(keys)
    ks = set(strip)
    if K.detect_transformer_format(ks) != "unknown" or fam == "wan":
        adaln = any(k.startswith(("time_projection_ref.", "ref_time_proj.")) or k.endswith(
            (".modulation_ref", ".ref_scale_shift_table")) for k in ks)
        return WAN_DIT_ADALN if adaln else WAN_DIT
    if any(k.startswith(("encoder.downsamples.", "decoder.upsamples.", "encoder.conv1.", "decoder.conv_in."))
           for k in ks):
        return "wan_vae"
    if any(k.startswith(("encoder.block.0.layer.0.SelfAttention", "shared.", "spiece_model")) or
           ".SelfAttention." in k for k in ks):
        return "umt5"
    return "unknown"


def file_kind(path: Path | str) -> str:
    """The kind of a weight file (see the module docstring), from its header; cached."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        return "unknown"
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _LOCK:
        hit = _CACHE.get(key)
    if hit is not None:
        return hit
    try:
        kind = kind_from_keys(_keys(path))
    except Exception as exc:  # noqa: BLE001 - unreadable: listed as unknown; choosing it reports the damage
        log.debug("IDVideo: could not read the keys of %s (%s)", path, exc)
        kind = "unknown"
    with _LOCK:
        _CACHE[key] = kind
    return kind


def accepts(family: str, kind: str) -> bool:
    return kind in ACCEPTS.get(family, ())


def check_dit_file(family: str, path: Path | str, label: str) -> None:
    """Refuse a DiT file whose header says it belongs to another family (before its weights are read)."""
    from ...errors import WrongModelError

    kind = file_kind(path)
    if kind == "unknown" or accepts(family, kind):
        return
    fits = [f for f, kinds in ACCEPTS.items() if kind in kinds]
    if kind == WAN_DIT_ADALN:
        fix = ("Choose Concat-ID-Wan as the family, or pick a DiT without AdaLN extras (Phantom-Wan-1.3B.pth, a "
               "Wan2.1 T2V file, Concat-ID's first_stage.pt).")
    elif fits:
        fix = "Pick a DiT file from the list for this family (the list shows only the files it can load)."
    else:
        fix = ("Load ConsisID / CogVideoX models with 'IDVideo ConsisID Model Loader'." if kind in ("consisid",
               "cogvideox") else "Pick a Wan2.1 / Concat-ID-Wan / Phantom-Wan DiT file.")
    raise WrongModelError(f"{Path(path).name} is {KIND_WORDS[kind]} (detected from its keys); the loader's family is "
                          f"{label}, which cannot load it.", fix)


def forget() -> None:
    with _LOCK:
        _CACHE.clear()
