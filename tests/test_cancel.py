"""Cancel mid-sampling, then run again with the same seed: the rerun succeeds and equals an uninterrupted run.

The cancel comes from the console progress bar's per-step hook (what the CLI's Ctrl-C handler and ComfyUI's Cancel
button reach): it calls ``bridge.request_cancel()`` after a chosen step and the loop stops at the next checkpoint.
Nothing is mocked: the tiny checkpoints go through the real loaders, sampler node and memory manager.
"""
from __future__ import annotations


import pytest
import torch

from idvideo_core import bridge

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
    from idvideo_core.testing.tiny_consisid import TINY_HEIGHT, TINY_WIDTH

    from node_graphs import load_graph, models_tree

    root = models_tree(tmp_path_factory.mktemp("cancel_models"), consisid_folder)
    mp = pytest.MonkeyPatch()
    mp.setenv("IDVIDEO_MODELS_DIR", str(root))
    g = load_graph(pack.NODE_CLASS_MAPPINGS)
    sampler, model, text, ident, local = g.sampler, g.model, g.text, g.ident, g.local
    wan, wan_text, refs = g.wan, g.wan_text, g.refs

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
