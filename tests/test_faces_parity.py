"""Parity with diffusers' ConsisID face preprocessing (``consisid_utils``) on tiny models and real photos.

Same files, same photos: ``id_cond``, ``id_vit_hidden``, the EVA input (gray whitened face, 336 bicubic,
normalised), the colour face the VAE sees and the key points must equal the reference's.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from faces_fixtures import *

from idvideo_core.faces.analyze import analyze_image
from idvideo_core.faces.identity import eva_input, face_image_for_vae, local_identity

ATOL = 1e-5


def _compare(ours_models, face, ref_out, ref_eva_in):
    id_cond, id_vit_hidden, image, face_kps = ref_out
    lid = local_identity(ours_models, face)
    assert lid.id_cond.shape == id_cond.shape
    torch.testing.assert_close(lid.id_cond, id_cond, atol=ATOL, rtol=0)
    assert len(lid.id_vit_hidden) == len(id_vit_hidden) == 5
    for a, b in zip(lid.id_vit_hidden, id_vit_hidden):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
    torch.testing.assert_close(eva_input(ours_models, face), ref_eva_in, atol=ATOL, rtol=0)
    vae = face_image_for_vae(face)
    assert vae.shape == (512, 512, 3) and vae.dtype == np.uint8
    np.testing.assert_array_equal(vae, np.asarray(image))
    np.testing.assert_allclose(face.kps, face_kps, atol=ATOL)


def test_parity_t1_six_people(reference, t1_models, t1_setup, t1_rgb):
    """Six people: the largest SCRFD face is also RetinaFace's centre face, so the reference aligns the same face."""
    ref_out, ref_in = run_reference(reference, t1_rgb)
    faces = analyze_image(t1_models, t1_rgb)
    assert len(faces) == 1 and faces[0].meta["landmarks"] == "retinaface"
    np.testing.assert_allclose(faces[0].bbox, t1_setup[1][0].bbox, atol=1e-3)
    # Meaningful whitening: some pixels kept, some whitened.
    assert 0.02 < faces[0].parse_mask.mean() < 0.98
    _compare(t1_models, faces[0], ref_out, ref_in)


def test_parity_tom_hanks(reference, t1_models, tom_setup):
    root, _faces, rgb = tom_setup
    models = with_scrfd(t1_models, root)
    ref_out, ref_in = run_reference(reference, rgb, reference_app(root))
    faces = analyze_image(models, rgb)
    assert len(faces) == 1 and faces[0].embedding is not None
    _compare(models, faces[0], ref_out, ref_in)


def test_parity_arcface_fallback_on_aligned_crop(reference, t1_models, tom_empty_root, caplog):
    """SCRFD finds nothing, RetinaFace does: ArcFace runs on the FFHQ crop (reference behaviour)."""
    rgb = read_rgb(TOM)
    models = with_scrfd(t1_models, tom_empty_root)
    ref_out, ref_in = run_reference(reference, rgb, reference_app(tom_empty_root))
    with caplog.at_level(logging.WARNING, logger="idvideo"):
        faces = analyze_image(models, rgb, mode="center")
    assert faces[0].meta.get("embedding_from_aligned_crop")
    assert "aligned crop" in caplog.text
    _compare(models, faces[0], ref_out, ref_in)


def test_reference_ran_on_cpu_despite_cuda_request(reference):
    """The reference asks for CUDAExecutionProvider; on this machine ONNX Runtime falls back to CPU."""
    _cu, (_h1, helper2, _clip, app, _m, _s) = reference
    assert helper2.session.get_providers()[0] == "CPUExecutionProvider"
    assert app.models["detection"].session.get_providers()[0] == "CPUExecutionProvider"


def test_detector_and_recogniser_equal_insightface_for_every_face(t1_models, t1_setup, t1_rgb):
    """Our SCRFD decode + ArcFace crop/blob vs insightface's FaceAnalysis on all planted t1 faces."""
    from idvideo_core.faces.analyze import downscale_long_side

    bgr = downscale_long_side(t1_rgb)[:, :, ::-1].copy()
    theirs = reference_app(t1_setup[0]).get(bgr)
    dets, kpss = t1_models.detector.detect(bgr)
    assert len(theirs) == len(dets) == len(t1_setup[1]) == 3
    for face, det, kps in zip(theirs, dets, kpss):
        np.testing.assert_array_equal(det[:4], face.bbox)
        assert det[4] == face.det_score
        np.testing.assert_array_equal(kps, face.kps)
        np.testing.assert_allclose(t1_models.recognizer.embed(bgr, kps), face.embedding, atol=ATOL, rtol=0)
        assert np.abs(face.embedding).max() > 0.1
