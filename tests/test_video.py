"""The video writer: real encodes with PyAV/Pillow on tiny frames, decoded back with PyAV.

Disk-full is tested twice: for real on a 256 KiB tmpfs (needs root / mount rights, skipped otherwise) and by
injecting a file object that fails with ENOSPC at the PyAV/Pillow boundary (always runs).
"""
from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import av
import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from idvideo_core import bridge, video  # noqa: E402
from idvideo_core.errors import InputError, OutputWriteError  # noqa: E402
from idvideo_core.video_formats import load_formats, parse_format  # noqa: E402

FORMATS = ["h264-mp4", "vp9-webm", "gif"]
META = {"prompt": {"3": {"class_type": "IDVideoCombine", "inputs": {"frame_rate": 8}}},
        "workflow": {"nodes": [{"id": 3, "type": "IDVideoCombine"}], "links": [], "version": 0.4}}


def smooth_frames(n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Gradients that drift per frame: compressible, so lossy codecs stay close and errors are meaningful."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    phase = torch.rand(3, generator=g)
    frames = [torch.stack([(xx * 0.8 + phase[c] * 0.2 + t * 0.02) % 1.0 * 0.5 + yy * 0.4 for c in range(3)], -1)
              for t in range(n)]
    return torch.stack(frames).clamp(0, 1)


def decode(path: Path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    return frames, rate


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------------------------------- round trip
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("size", [(24, 32), (21, 33)], ids=["even", "odd"])
def test_round_trip(tmp_path, fmt, size):
    h, w = size
    frames = smooth_frames(7, h, w)
    saved = video.write_video(frames, fps=10, format=fmt, filename_prefix="rt", output_dir=tmp_path,
                              progress=False)
    assert saved.path.is_file() and saved.path.parent == tmp_path
    assert saved.filename == f"rt_00001.{load_formats()[fmt].extension}"
    decoded, rate = decode(saved.path)
    assert len(decoded) == 7 == saved.frame_count
    pad = fmt == "h264-mp4"
    exp_h, exp_w = (h + h % 2, w + w % 2) if pad else (h, w)
    assert decoded[0].shape == (exp_h, exp_w, 3)
    assert (saved.height, saved.width) == (exp_h, exp_w)
    assert saved.padded == (pad and (h % 2 == 1 or w % 2 == 1))
    assert float(rate) == pytest.approx(10.0, rel=1e-3)
    # Content survives: compare the unpadded region (padding repeats the edge pixel).
    ref = video.frames_to_uint8(frames).astype(np.float32)
    err = np.mean([np.abs(d[:h, :w].astype(np.float32) - r).mean() for d, r in zip(decoded, ref)])
    assert err < 6.0, err
    if pad and saved.padded:
        assert np.abs(decoded[0][:h, w:].astype(int) - decoded[0][:h, w - 1:w].astype(int)).mean() < 8


def test_fractional_fps_and_single_frame(tmp_path):
    saved = video.write_video(smooth_frames(1, 16, 16)[0], fps=23.976, output_dir=tmp_path, progress=False)
    decoded, rate = decode(saved.path)
    assert len(decoded) == 1
    assert float(rate) == pytest.approx(23.976, rel=1e-4)


# ------------------------------------------------------------------------------------------------------ metadata
@pytest.mark.parametrize("fmt", FORMATS)
def test_metadata_round_trip(tmp_path, fmt):
    saved = video.write_video(smooth_frames(3, 16, 16), format=fmt, output_dir=tmp_path, metadata=META,
                              progress=False)
    meta = video.read_video_metadata(saved.path)
    assert meta["prompt"] == META["prompt"]
    assert meta["workflow"] == META["workflow"]


def test_mp4_tags_are_plain_json_like_core_savevideo(tmp_path):
    """The frontend reads the raw tag strings; they must be plain JSON text under 'prompt' and 'workflow'."""
    saved = video.write_video(smooth_frames(2, 16, 16), output_dir=tmp_path, metadata=META, progress=False)
    with av.open(str(saved.path)) as c:
        assert json.loads(c.metadata["prompt"]) == META["prompt"]
        assert json.loads(c.metadata["workflow"]) == META["workflow"]


def test_no_metadata_means_no_tags(tmp_path):
    saved = video.write_video(smooth_frames(2, 16, 16), output_dir=tmp_path, progress=False)
    meta = video.read_video_metadata(saved.path)
    assert "prompt" not in meta and "workflow" not in meta


# ------------------------------------------------------------------------------------------------------ counters
def test_counter_never_overwrites(tmp_path):
    (tmp_path / "IDVideo_00001.mp4").write_bytes(b"keep me")
    (tmp_path / "IDVideo_00007.png").write_bytes(b"companion")
    (tmp_path / "IDVideoX_00099.mp4").write_bytes(b"other prefix")
    first = video.write_video(smooth_frames(2, 16, 16), output_dir=tmp_path, progress=False)
    second = video.write_video(smooth_frames(2, 16, 16), format="gif", output_dir=tmp_path, progress=False)
    assert first.filename == "IDVideo_00008.mp4"
    assert second.filename == "IDVideo_00009.gif"
    assert (tmp_path / "IDVideo_00001.mp4").read_bytes() == b"keep me"
    assert not [n for n in files_in(tmp_path) if n.endswith(".part")]


def test_publish_race_takes_next_number(tmp_path, monkeypatch):
    """Another writer grabs the chosen name between the scan and the publish: we must not replace its file."""
    monkeypatch.setattr(video, "next_counter", lambda folder, name: 1)
    (tmp_path / "IDVideo_00001.mp4").write_bytes(b"theirs")
    (tmp_path / "IDVideo_00002.mp4").write_bytes(b"theirs too")
    saved = video.write_video(smooth_frames(2, 16, 16), output_dir=tmp_path, progress=False)
    assert saved.filename == "IDVideo_00003.mp4"
    assert (tmp_path / "IDVideo_00001.mp4").read_bytes() == b"theirs"
    assert (tmp_path / "IDVideo_00002.mp4").read_bytes() == b"theirs too"


def test_subfolder_prefix_and_variables(tmp_path):
    saved = video.write_video(smooth_frames(2, 16, 24), filename_prefix="video/%width%x%height%/clip",
                              output_dir=tmp_path, progress=False)
    assert saved.subfolder == "video/24x16"
    assert saved.path == tmp_path / "video" / "24x16" / "clip_00001.mp4"
    assert saved.ui_entry()["subfolder"] == "video/24x16"


# ------------------------------------------------------------------------------------------------------ traversal
@pytest.mark.parametrize("prefix", ["../escape", "a/../../escape", "video/../../../etc/x", "/tmp/abs/x",
                                    "..\\escape", "C:\\Windows\\x", "\\\\server\\share\\x", "ok\x00bad"])
def test_traversal_prefixes_refused(tmp_path, prefix):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InputError) as info:
        video.write_video(smooth_frames(2, 16, 16), filename_prefix=prefix, output_dir=out, progress=False)
    assert "output folder" in str(info.value)
    assert files_in(tmp_path) == []


def test_symlink_escape_refused(tmp_path):
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (out / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InputError):
        video.write_video(smooth_frames(2, 16, 16), filename_prefix="link/x", output_dir=out, progress=False)
    assert files_in(outside) == []


def test_symlink_inside_output_allowed(tmp_path):
    out = tmp_path / "out"
    (out / "real").mkdir(parents=True)
    (out / "alias").symlink_to(out / "real", target_is_directory=True)
    saved = video.write_video(smooth_frames(2, 16, 16), filename_prefix="alias/x", output_dir=out, progress=False)
    assert (out / "real" / saved.filename).is_file()


# ------------------------------------------------------------------------------------------------- unwritable / full
def test_output_dir_is_a_file(tmp_path):
    blocker = tmp_path / "output"
    blocker.write_text("not a folder")
    with pytest.raises(OutputWriteError) as info:
        video.write_video(smooth_frames(2, 16, 16), output_dir=blocker, progress=False)
    msg = str(info.value)
    assert str(blocker) in msg and "Fix:" in msg and "--output-directory" in msg


def _mount_tmpfs(path: Path, options: str) -> bool:
    if os.geteuid() != 0:
        return False
    path.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    return res.returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", str(path)], capture_output=True)


def test_unwritable_output_folder(tmp_path):
    folder = tmp_path / "ro"
    if _mount_tmpfs(folder, "ro,size=64k"):           # root ignores permission bits: use a read-only mount
        cleanup = lambda: _umount(folder)  # noqa: E731
    elif os.geteuid() != 0:
        folder.mkdir()
        folder.chmod(0o500)
        cleanup = lambda: folder.chmod(0o700)  # noqa: E731
    else:
        pytest.skip("running as root without mount rights: no way to make a folder unwritable")
    try:
        with pytest.raises(OutputWriteError) as info:
            video.write_video(smooth_frames(2, 16, 16), output_dir=folder, progress=False)
        msg = str(info.value)
        assert str(folder) in msg and "writable" in msg and "--output-directory" in msg
        assert files_in(folder) == []
    finally:
        cleanup()


@pytest.mark.parametrize("fmt", ["h264-mp4", "vp9-webm", "gif"])
def test_disk_full_for_real_on_tiny_tmpfs(tmp_path, fmt):
    folder = tmp_path / "tiny"
    if not _mount_tmpfs(folder, "size=256k"):
        pytest.skip("needs root and tmpfs mount rights")
    try:
        noise = torch.rand(24, 96, 96, 3, generator=torch.Generator().manual_seed(1))  # incompressible: ~MBs
        with pytest.raises(OutputWriteError) as info:
            video.write_video(noise, format=fmt, output_dir=folder, crf=0 if fmt != "gif" else None,
                              progress=False)
        msg = str(info.value)
        assert "disk" in msg and "full" in msg.replace("filled up", "full") and "partial file was removed" in msg
        assert files_in(folder) == []           # no partial temp file, no final file
    finally:
        _umount(folder)


class _FillingFile:
    """A real file that raises ENOSPC once ``limit`` bytes were written, like a disk filling mid-encode."""

    def __init__(self, path: Path, limit: int):
        self._f = open(path, "xb")
        self._limit = limit
        self._written = 0
        self.closed = False

    def write(self, data):
        if self._written + len(data) > self._limit:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._written += len(data)
        return self._f.write(data)

    def seek(self, *args):
        return self._f.seek(*args)

    def tell(self):
        return self._f.tell()

    def flush(self):
        self._f.flush()

    def close(self):
        self.closed = True
        self._f.close()


@pytest.mark.parametrize("fmt", FORMATS)
def test_disk_full_injected_partial_removed(tmp_path, monkeypatch, fmt):
    opened = []

    def failing_open(path):
        opened.append(path)
        return _FillingFile(path, limit=2048)

    monkeypatch.setattr(video, "_open_output_file", failing_open)
    noise = torch.rand(8, 64, 64, 3, generator=torch.Generator().manual_seed(2))
    with pytest.raises(OutputWriteError) as info:
        video.write_video(noise, format=fmt, output_dir=tmp_path, metadata=META, progress=False)
    msg = str(info.value)
    assert "disk filled up" in msg and "partial file was removed" in msg and str(tmp_path) in msg
    assert opened and not opened[0].exists()
    assert files_in(tmp_path) == []


def test_cancel_mid_write_removes_partial(tmp_path):
    bridge.request_cancel()
    try:
        with pytest.raises(bridge.GenerationCancelled):
            video.write_video(smooth_frames(4, 16, 16), output_dir=tmp_path, progress=True)
    finally:
        bridge.clear_cancel()
    assert files_in(tmp_path) == []


# ---------------------------------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("kwargs, needle", [
    ({"fps": 0}, "Frame rate"), ({"fps": float("nan")}, "Frame rate"), ({"format": "avi"}, "Unknown video format"),
    ({"format": "h264-mp4", "crf": 70}, "crf"), ({"frames": torch.rand(2, 8, 8)}, "Expected video frames"),
    ({"frames": torch.rand(0, 8, 8, 3)}, "Expected video frames"),
])
def test_bad_inputs(tmp_path, kwargs, needle):
    frames = kwargs.pop("frames", smooth_frames(2, 8, 8))
    with pytest.raises(InputError) as info:
        video.write_video(frames, output_dir=tmp_path, progress=False, **kwargs)
    assert needle in str(info.value) and "Fix:" in str(info.value)
    assert files_in(tmp_path) == []


def test_frames_to_uint8():
    x = torch.tensor([[[[0.0, 0.5, 1.0], [1.2, -0.1, float("nan")]]]])
    out = video.frames_to_uint8(x)
    assert out.dtype == np.uint8 and out.shape == (1, 1, 2, 3)
    assert out.tolist() == [[[[0, 128, 255], [255, 0, 0]]]]
    assert video.frames_to_uint8(torch.rand(2, 4, 4, 4)).shape == (2, 4, 4, 3)   # RGBA: alpha dropped
    assert video.frames_to_uint8(torch.rand(4, 4, 1)).shape == (1, 4, 4, 3)      # gray, single frame


# ------------------------------------------------------------------------------------------------------- formats
def test_format_files_are_data(tmp_path):
    formats = load_formats()
    assert list(formats)[0] == "h264-mp4" and set(FORMATS) <= set(formats)
    for fmt in formats.values():
        assert Path(fmt.source).suffix == ".json" and fmt.extension and fmt.mime
    custom = tmp_path / "h264-mkv.json"
    custom.write_text(json.dumps({"name": "h264-mkv", "encoder": "pyav", "container": "matroska",
                                  "extension": "mkv", "mime": "video/x-matroska", "codec": "libx264",
                                  "pix_fmt": "yuv420p", "even_dimensions": True,
                                  "crf": {"option": "crf", "default": 20, "min": 0, "max": 51}}))
    assert load_formats(tmp_path)["h264-mkv"].crf.default == 20
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"name": "broken", "encoder": "ffmpeg-binary"}))
    with pytest.raises(OutputWriteError) as info:
        parse_format(broken)
    assert str(broken) in str(info.value)


# ---------------------------------------------------------------------------------------------------------- node
def test_node_structure():
    from nodes.video import IDVideoCombine, NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

    assert NODE_CLASS_MAPPINGS == {"IDVideoCombine": IDVideoCombine}
    assert NODE_DISPLAY_NAME_MAPPINGS["IDVideoCombine"] == "IDVideo Video Combiner"
    spec = IDVideoCombine.INPUT_TYPES()
    for group in ("required", "optional"):
        for name, (kind, opts) in spec[group].items():
            assert opts.get("tooltip"), f"{name} has no tooltip"
    assert spec["required"]["format"][0][0] == "h264-mp4"
    assert spec["hidden"]["prompt"] == "PROMPT" and spec["hidden"]["extra_pnginfo"] == "EXTRA_PNGINFO"
    assert IDVideoCombine.RETURN_TYPES == ("IMAGE", "VIDEO", "STRING")
    assert len(IDVideoCombine.OUTPUT_TOOLTIPS) == 3 and IDVideoCombine.OUTPUT_NODE is True
    assert IDVideoCombine.CATEGORY == "IDVideo/output" and IDVideoCombine.DESCRIPTION and IDVideoCombine.SEARCH_ALIASES


def test_node_call(tmp_path, monkeypatch):
    from nodes.video import IDVideoCombine

    monkeypatch.setenv("IDVIDEO_OUTPUT_DIR", str(tmp_path / "output"))
    frames = smooth_frames(5, 20, 28)
    out = IDVideoCombine().combine(frames, frame_rate=8.0, filename_prefix="IDVideo/IDVideo", format="h264-mp4",
                                   save_output=True, crf=-1, prompt=META["prompt"],
                                   extra_pnginfo={"workflow": META["workflow"]}, unique_id="7")
    images, vid, path = out["result"]
    assert images is frames and vid is None          # no comfy_api outside ComfyUI
    assert Path(path) == tmp_path / "output" / "IDVideo" / "IDVideo_00001.mp4" and Path(path).is_file()
    assert out["ui"]["animated"] == (True,)
    assert out["ui"]["images"] == [{"filename": "IDVideo_00001.mp4", "subfolder": "IDVideo", "type": "output",
                                    "format": "video/mp4", "frame_rate": 8.0, "frame_count": 5}]
    meta = video.read_video_metadata(path)
    assert meta["prompt"] == META["prompt"] and meta["workflow"] == META["workflow"]

    preview = IDVideoCombine().combine(frames, 8.0, "IDVideo/IDVideo", "gif", False)
    entry = preview["ui"]["images"][0]
    assert entry["type"] == "temp" and entry["filename"] == "IDVideo_00001.gif"
    assert Path(preview["result"][2]).parent == tmp_path / "output" / "temp" / "IDVideo"


def test_node_errors_are_idvideo_errors(tmp_path, monkeypatch):
    from nodes.video import IDVideoCombine

    monkeypatch.setenv("IDVIDEO_OUTPUT_DIR", str(tmp_path))
    with pytest.raises(InputError):
        IDVideoCombine().combine(smooth_frames(2, 8, 8), 8.0, "../../etc/evil", "h264-mp4", True)


@pytest.mark.skipif(not os.environ.get("COMFYUI_PATH"),
                    reason="COMFYUI_PATH is not set: point it at a ComfyUI checkout (0.3.64, 0.8.0) to test the core VIDEO "
                           "output (see tools/setup_comfyui.md)")
def test_core_video_output_with_real_comfy_api(tmp_path):
    """Run in a subprocess: importing comfy_api puts ComfyUI modules into sys.modules for the whole session."""
    script = textwrap.dedent(f"""
        import sys, json
        sys.path[:0] = [{str(ROOT)!r}, {os.environ['COMFYUI_PATH']!r}]
        import torch
        from nodes.video import make_core_video
        frames = torch.rand(6, 18, 26, 3)
        v = make_core_video(frames, 12.0)
        comps = v.get_components()
        assert comps.images is frames and float(comps.frame_rate) == 12.0, comps.frame_rate
        assert v.get_dimensions() == (26, 18)
        v.save_to({str(tmp_path / 'core.mp4')!r}, metadata={{"prompt": {{"1": 2}}}})
        print("OK", type(v).__name__)
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "IDVIDEO_OUTPUT_DIR": str(tmp_path)})
    assert res.returncode == 0 and "OK VideoFromComponents" in res.stdout, res.stderr[-3000:]
    assert video.read_video_metadata(tmp_path / "core.mp4")["prompt"] == {"1": 2}


def test_write_speed_smoke(tmp_path):
    """A CogVideoX-sized clip (49 frames) at a reduced 240x160 encodes in well under a few seconds on CPU."""
    import time

    frames = smooth_frames(49, 160, 240)
    t0 = time.perf_counter()
    video.write_video(frames, output_dir=tmp_path, progress=False, filename_prefix=f"speed{uuid.uuid4().hex[:4]}")
    assert time.perf_counter() - t0 < 20
