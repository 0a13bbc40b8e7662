"""The key-point image equals diffusers' ``pipeline_consisid.draw_kps`` pixel for pixel."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from idvideo_core.faces.kps import draw_kps


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_draw_kps_matches_reference(seed, dtype):
    ref = pytest.importorskip("diffusers.pipelines.consisid.pipeline_consisid")
    rng = np.random.default_rng(seed)
    w, h = [(512, 512), (720, 480), (97, 133)][seed % 3]
    base = np.array([[0.35, 0.4], [0.65, 0.4], [0.5, 0.55], [0.38, 0.72], [0.62, 0.72]]) * [w, h]
    kps = (base + rng.normal(0, 0.05 * w, base.shape)).astype(dtype)
    if seed == 5:
        kps[1] = kps[0] + 0.25  # nearly coincident points, and one point off the canvas
        kps[4] = [w + 30.0, -12.0]
    expected = np.asarray(ref.draw_kps(Image.new("RGB", (w, h)), kps))
    ours = draw_kps(w, h, kps)
    assert ours.dtype == np.uint8 and ours.shape == (h, w, 3)
    np.testing.assert_array_equal(ours, expected)
