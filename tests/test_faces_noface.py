"""No face, tiny faces, the whole-image fallback and the batch API with progress."""
from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from faces_fixtures import *

from idvideo_core.bridge import Progress
from idvideo_core.errors import InputError, NoFaceError
from idvideo_core.faces.analyze import analyze_image, analyze_images
from idvideo_core.faces.facexlib_nets import load_retinaface
from idvideo_core.faces.identity import face_image_for_vae, local_identity
from idvideo_core.testing.tiny_faces import PlantedFace


@pytest.fixture(scope="module")
def blind(face_parts, t1_models, tmp_path_factory):
    """Models whose RetinaFace never fires; SCRFD plants: nothing, or one 30-px face."""
    retina = load_retinaface(face_parts.parent / "silent_retinaface.pth")
    tmp = tmp_path_factory.mktemp("blind")
    empty = make_consisid_root(face_parts, tmp / "empty", (112, 112), [])
    small = make_consisid_root(face_parts, tmp / "small", (112, 112), [PlantedFace((40, 40, 70, 72))])
    base = dataclasses.replace(t1_models, retinaface=retina)
    return with_scrfd(base, empty), with_scrfd(base, small)


def test_no_face_raises_with_the_fix(blind):
    with pytest.raises(NoFaceError) as err:
        analyze_image(blind[0], read_rgb(TOM))
    msg = str(err.value)
    assert "No face was found in image 0" in msg and "Fix:" in msg
    assert "'use whole image'" in msg and "whole_image" not in msg   # the label the Face Loader shows


def test_whole_image_fallback_warns_and_still_gives_an_identity(blind, caplog):
    with caplog.at_level(logging.WARNING, logger="idvideo"):
        faces = analyze_image(blind[0], read_rgb(TOM), on_no_face="whole_image")
    assert "whole image" in caplog.text
    f = faces[0]
    assert f.whole_image_fallback and f.embedding.shape == (512,)
    assert face_image_for_vae(f).shape == (512, 512, 3)
    lid = local_identity(blind[0], f)
    assert lid.id_cond.shape == (1, 512 + 32) and len(lid.id_vit_hidden) == 5
    with pytest.raises(InputError):
        analyze_image(blind[0], read_rgb(TOM), on_no_face="skip")


def test_small_face_warns_and_aligns_on_scrfd_points(blind, caplog):
    with caplog.at_level(logging.WARNING, logger="idvideo"):
        faces = analyze_image(blind[1], read_rgb(TOM))
    f = faces[0]
    assert f.meta["small_face"] and f.meta["landmarks"] == "scrfd"
    assert "under 40 px" in caplog.text and "RetinaFace did not confirm" in caplog.text
    assert f.face_rgb_white.shape == (512, 512, 3)


def test_batch_api_float_images_and_progress(t1_models, tom_setup):
    root, _planted, rgb = tom_setup
    models = with_scrfd(t1_models, root)
    batch = torch.from_numpy(np.stack([rgb, rgb[:, ::-1]]).astype(np.float32) / 255.0)  # ComfyUI IMAGE
    bar = Progress(2, "faces")
    faces = analyze_images(models, batch, progress=bar)
    assert bar.value == 2
    assert [f.image_index for f in faces] == [0, 1]
    single = analyze_image(models, rgb)[0]
    # Float input holding uint8/255 values is read back exactly.
    np.testing.assert_array_equal(faces[0].face_rgb_white, single.face_rgb_white)
    np.testing.assert_array_equal(faces[0].embedding, single.embedding)
    lid = local_identity(models, faces[0])
    assert lid.id_cond.dtype == torch.float32 and lid.id_vit_hidden[0].shape == (1, 577, 32)
    # The embedding half is raw ArcFace, the EVA half has unit norm.
    np.testing.assert_allclose(lid.id_cond[0, :512].numpy(), faces[0].embedding, atol=1e-6)
    assert abs(float(lid.id_cond[0, 512:].norm()) - 1.0) < 1e-5
