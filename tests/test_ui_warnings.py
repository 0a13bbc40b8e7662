"""Warnings reach the creator (issue 14, item 1): what the pack logs while a node runs is sent to the browser for
that node, put in the ui output of nodes that return one, and listed in the video's metadata by the Combiner.

Driven through the pack's nodes on tiny checkpoints; ComfyUI's server is stood in for by recording what the bridge
would send on its websocket (tests/comfyui runs the same path in a real ComfyUI)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from node_graphs import TOM


def _photo():
    from PIL import Image

    return torch.from_numpy(np.asarray(Image.open(TOM).convert("RGB"), np.float32) / 255.0)[None]


@pytest.fixture()
def browser(monkeypatch):
    """Stand-in for ComfyUI's server: the running node's id, and the messages sent to the browser."""
    from idvideo_core import bridge, notices

    notices.forget()
    state = {"node": None, "sent": []}
    monkeypatch.setattr(bridge, "executing_node_id", lambda: state["node"])
    monkeypatch.setattr(bridge, "send_ui_event", lambda event, data: state["sent"].append((event, data)) or True)
    yield state
    notices.forget()


def test_gif_frames_as_faces_warn_on_the_nodes_and_in_the_video(pack, models_env, browser, tmp_path, monkeypatch):
    """An animated GIF arrives as a batch of 3 images: 3 faces. ConsisID's identity nodes use the first one, and
    the creator sees it on both nodes and in the video's metadata."""
    from idvideo_core.testing.tiny_consisid import TINY_HEIGHT, TINY_WIDTH
    from idvideo_core.video import read_video_metadata

    monkeypatch.setenv("IDVIDEO_OUTPUT_DIR", str(tmp_path / "out"))
    M = pack.NODE_CLASS_MAPPINGS
    browser["node"] = "2"
    fm, = M["IDVFaceModelsLoader"]().load("CPU", "fp32")
    browser["node"] = "3"
    gif = _photo().repeat(3, 1, 1, 1)
    out = M["IDVFaceLoader"]().load(fm, gif, "largest", 0, "error")
    faces = out["result"][0]
    assert len(faces) == 3
    # the tiny detector's faces are small: the loader's own warnings are in its ui output, once per image
    assert [w for w in out["ui"]["idv_warnings"] if "px wide" in w] == [
        f"the face in image {i} is only 27 px wide (under 40 px); identity will be poor. Use a closer or "
        "higher-resolution photo." for i in range(3)]
    browser["node"] = "4"
    M["IDVLocalIdentity"]().extract(fm, faces)
    browser["node"] = "1"
    model, = M["IDVConsisIDModelLoader"]().load("ConsisID-preview", "fp32", "auto", 0)
    browser["node"] = "5"
    M["IDVGlobalIdentity"]().extract(model, faces, TINY_WIDTH, TINY_HEIGHT)

    sent = {data["node"]: data["warnings"] for event, data in browser["sent"] if event == "idvideo.warnings"}
    assert set(sent) == {"3", "4", "5"}, browser["sent"]
    assert sent["3"] == out["ui"]["idv_warnings"]
    assert sent["4"] == ["3 faces given (one per image of the batch, or several in one photo); ConsisID's local "
                         "identity uses the first."]
    assert "global identity uses the first" in sent["5"][0]

    # The Combiner (node 9) lists the warnings of the nodes that fed it: 4 and 5 feed the sampler (8), which feeds 9.
    prompt = {"1": {"class_type": "IDVConsisIDModelLoader", "inputs": {}},
              "2": {"class_type": "IDVFaceModelsLoader", "inputs": {}},
              "3": {"class_type": "IDVFaceLoader", "inputs": {"face_models": ["2", 0]}},
              "4": {"class_type": "IDVLocalIdentity", "inputs": {"face_models": ["2", 0], "faces": ["3", 0]}},
              "5": {"class_type": "IDVGlobalIdentity", "inputs": {"model": ["1", 0], "faces": ["3", 0]}},
              "8": {"class_type": "IDVSampler", "inputs": {"model": ["1", 0], "global_identity": ["5", 0],
                                                           "local_identity": ["4", 0]}},
              "9": {"class_type": "IDVideoCombine", "inputs": {"images": ["8", 0]}},
              "10": {"class_type": "IDVideoCombine", "inputs": {"images": ["11", 0]}},
              "11": {"class_type": "LoadImage", "inputs": {}}}
    frames = torch.rand(3, 16, 16, 3, generator=torch.Generator().manual_seed(0))
    browser["node"] = "9"
    res = M["IDVideoCombine"]().combine(frames, 8.0, "IDVideo/warned", "h264-mp4", True, prompt=prompt,
                                        extra_pnginfo={"workflow": {}}, unique_id="9")
    meta = read_video_metadata(res["result"][2])
    listed = meta["idvideo_warnings"]
    assert [(w["node"], w["class_type"], w["message"]) for w in listed] == \
        [("3", "IDVFaceLoader", m) for m in sent["3"]] + [("4", "IDVLocalIdentity", sent["4"][0]),
                                                          ("5", "IDVGlobalIdentity", sent["5"][0])]
    # A Combiner fed by other nodes lists none of them.
    res = M["IDVideoCombine"]().combine(frames, 8.0, "IDVideo/clean", "h264-mp4", True, prompt=prompt,
                                        extra_pnginfo={"workflow": {}}, unique_id="10")
    assert "idvideo_warnings" not in read_video_metadata(res["result"][2])


def test_face_loader_warnings_are_in_its_ui(pack, models_env, browser):
    """A node that returns a ui (the Face Loader shows its crops) also carries its warnings there (the tiny
    detector finds a small face in any picture, which the loader warns about)."""
    M = pack.NODE_CLASS_MAPPINGS
    fm, = M["IDVFaceModelsLoader"]().load("CPU", "fp32")
    browser["node"] = "3"
    blank = torch.full((1, 96, 96, 3), 0.5)
    out = M["IDVFaceLoader"]().load(fm, blank, "largest", 0, "use whole image")
    assert any("px wide (under 40 px)" in w for w in out["ui"]["idv_warnings"])
    assert browser["sent"][-1] == ("idvideo.warnings", {"node": "3", "warnings": out["ui"]["idv_warnings"]})


def test_warnings_of_other_threads_and_failed_runs(pack, browser):
    """Only the running node's thread is captured; warnings logged before a node fails still reach the node."""
    import logging
    import threading

    from idvideo_core import notices
    from idvideo_core.errors import InputError

    log = logging.getLogger("idvideo")
    with notices.capture("7", "X") as caught:
        t = threading.Thread(target=lambda: log.warning("IDVideo: from another prompt's thread"))
        t.start()
        t.join()
        log.warning("IDVideo: %d frames is not 4k+1; using %d frames.", 50, 49)
        log.info("IDVideo: an info line is not a warning")
    assert caught.messages == ["50 frames is not 4k+1; using 49 frames."]
    assert notices.last("7").messages == caught.messages

    browser["node"] = "6"
    with pytest.raises(InputError):
        pack.NODE_CLASS_MAPPINGS["IDVLocalIdentity"]().extract(None, [])
    assert browser["sent"] == []     # no warning logged: nothing sent
