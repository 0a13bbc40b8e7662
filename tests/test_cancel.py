"""Cancel mid-sampling, then run again with the same seed: the rerun succeeds and equals an uninterrupted run.

The cancel comes from the console progress bar's per-step hook (what the CLI's Ctrl-C handler and ComfyUI's Cancel
button reach): it calls ``bridge.request_cancel()`` after a chosen step and the loop stops at the next checkpoint.
Nothing is mocked: the tiny checkpoints go through the real loaders, sampler node and memory manager.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from idvideo_core import bridge

TOM = Path(__import__("importlib").util.find_spec("insightface").origin).parent / "data" / "images" / \
    "Tom_Hanks_54745.png"
STEPS = 3


class CancelAfter:
    """A console progress bar that requests a cancel once ``step`` steps are done (and records how far it got)."""

    def __init__(self, step: int | None):
        self.step, self.seen = step, 0

    def __call__(self, total, desc):
        return self

    def update(self, n=1):
        self.seen += n
        if self.step is not None and self.seen == self.step:
            bridge.request_cancel()

    def close(self):
        pass


@pytest.fixture(scope="module")
def stack(pack, consisid_folder, tmp_path_factory):
    from PIL import Image

    from idvideo_core.testing import build_wan_models
    from idvideo_core.testing.tiny_consisid import TINY_HEIGHT, TINY_WIDTH

    root = tmp_path_factory.mktemp("cancel_models")
    (root / "consisid").mkdir()
    (root / "consisid" / "ConsisID-preview").symlink_to(consisid_folder, target_is_directory=True)
    build_wan_models(root)
    mp = pytest.MonkeyPatch()
    mp.setenv("IDVIDEO_MODELS_DIR", str(root))
    M = pack.NODE_CLASS_MAPPINGS
    model, = M["IDVConsisIDModelLoader"]().load("ConsisID-preview", "fp32", "auto", 0)
    fm, = M["IDVFaceModelsLoader"]().load("CPU", "fp32")
    photo = torch.from_numpy(np.asarray(Image.open(TOM).convert("RGB"), np.float32) / 255.0)[None]
    faces = M["IDVFaceLoader"]().load(fm, photo, "largest", 0, "error")["result"][0]
    local, = M["IDVLocalIdentity"]().extract(fm, faces)
    ident, _ = M["IDVGlobalIdentity"]().extract(model, faces, TINY_WIDTH, TINY_HEIGHT)
    text, = M["IDVTextEncode"]().encode(model, "a man smiles", "")
    wan, = M["IDVWanModelLoader"]().load("Concat-ID-Wan", "Wan2.1-T2V-1.3B-Diffusers", "second_stage_adaln.pt",
                                         "(from base folder)", "(from base folder)", "fp32", "auto", 0)
    wan_text, = M["IDVTextEncode"]().encode(wan, "a person walks", "")
    refs, _ = M["IDVMultiIdentityConcat"]().concat(32, 32, "whole image, black pad", "black pad", subject_1=photo)
    sampler = M["IDVSampler"]()

    def consisid(seed):
        return sampler.sample(model, text, TINY_WIDTH, TINY_HEIGHT, 9, STEPS, 6.0, seed, vae_tiling=False,
                              global_identity=ident, local_identity=local)[0]

    def wan_run(seed):
        return sampler.sample(wan, wan_text, 32, 32, 5, STEPS, 5.0, seed, references=refs)[0]

    yield {"consisid": consisid, "wan": wan_run}
    mp.undo()


@pytest.fixture(autouse=True)
def clean_cancel():
    bridge.clear_cancel()
    yield
    bridge.set_console_progress(None)
    bridge.clear_cancel()


@pytest.mark.parametrize("backbone", ["consisid", "wan"])
@pytest.mark.parametrize("cancel_at", [1, 2])
def test_cancel_then_rerun_equals_uninterrupted(stack, backbone, cancel_at):
    run = stack[backbone]
    bar = CancelAfter(cancel_at)
    bridge.set_console_progress(bar)
    with pytest.raises(bridge.GenerationCancelled):
        run(1234)
    assert bar.seen == cancel_at < STEPS          # it stopped within one step of the request

    bridge.set_console_progress(CancelAfter(None))
    rerun = run(1234)                              # same seed, same loaded models: must just work
    bridge.set_console_progress(None)
    fresh = run(1234)
    assert rerun.shape == fresh.shape and float(fresh.std()) > 0
    assert torch.equal(rerun, fresh)
    assert not torch.equal(fresh, run(1235))       # the comparison is not vacuous


def test_cancel_request_is_consumed_once(stack):
    """A cancel stops exactly one generation: the next one runs to the end."""
    bridge.request_cancel()
    with pytest.raises(bridge.GenerationCancelled):
        stack["wan"](5)
    assert stack["wan"](5).shape == (5, 32, 32, 3)
