"""Whole generations through the pack's nodes, as a ComfyUI graph would run them.

- ConsisID: the node chain (face models → face loader → local/global identity → model → text → sampler) equals
  diffusers' ConsisIDPipeline fed the same components, the nodes' face image and features, prompt embeddings and
  seed (max|Δ| ≤ 1e-4 on the frames in fp32). The face features themselves are proven equal to diffusers'
  consisid_utils in tests/test_faces_parity.py.
- Wan: one seed gives the same video through the nodes and through the core API.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

TOL = 1e-4


def _photo():
    import insightface
    from PIL import Image

    p = Path(insightface.__file__).parent / "data" / "images" / "Tom_Hanks_54745.png"
    return torch.from_numpy(np.asarray(Image.open(p).convert("RGB"), np.float32) / 255.0)[None]


def _pipeline_frames(model, whitened, text, local, steps, seed, **extra):
    """diffusers' ConsisIDPipeline on the model's own components, fed the nodes' face image and features."""
    import PIL.Image
    from diffusers import CogVideoXDPMScheduler, ConsisIDPipeline

    from idvideo_core.testing.tiny_consisid import TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH

    pipe = ConsisIDPipeline(tokenizer=model.tokenizer, text_encoder=model.text_encoder, vae=model.vae,
                            transformer=model.transformer,
                            scheduler=CogVideoXDPMScheduler.from_config(model.scheduler_config))
    pipe.set_progress_bar_config(disable=True)
    face_pil = PIL.Image.fromarray((whitened[0].numpy() * 255).round().astype(np.uint8))
    out = pipe(image=face_pil, prompt_embeds=text.prompt_embeds, negative_prompt_embeds=text.negative_embeds,
               height=TINY_HEIGHT, width=TINY_WIDTH, num_frames=TINY_FRAMES, num_inference_steps=steps,
               guidance_scale=6.0, generator=torch.Generator("cpu").manual_seed(seed),
               id_vit_hidden=local.id_vit_hidden, id_cond=local.id_cond, output_type="pt", **extra).frames[0]
    return out.permute(0, 2, 3, 1)


@pytest.fixture(scope="module")
def all_models(tmp_path_factory):
    from idvideo_core.testing import build_all

    return build_all(tmp_path_factory.mktemp("allmodels"))


@pytest.fixture()
def env(all_models, monkeypatch):
    monkeypatch.setenv("IDVIDEO_MODELS_DIR", str(all_models))
    return all_models


def test_consisid_nodes_match_diffusers_pipeline(pack, env):

    from idvideo_core.testing.tiny_consisid import TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH

    M = pack.NODE_CLASS_MAPPINGS
    assert "ConsisID-preview" in M["IDVConsisIDModelLoader"].INPUT_TYPES()["required"]["model"][0]
    model, = M["IDVConsisIDModelLoader"]().load("ConsisID-preview", "fp32", "auto", 0)
    fm, = M["IDVFaceModelsLoader"]().load("CPU", "fp32")
    faces, aligned, whitened = M["IDVFaceLoader"]().load(fm, _photo(), "largest", 0, "error")["result"]
    assert aligned.shape == whitened.shape == (1, 512, 512, 3)
    kps, = M["IDVKeypointRenderer"]().render(faces, "reference (aligned face size)")
    local, = M["IDVLocalIdentity"]().extract(fm, faces)
    ident, vae_in = M["IDVGlobalIdentity"]().extract(model, faces, TINY_WIDTH, TINY_HEIGHT, kps)
    text, = M["IDVTextEncode"]().encode(model, "a man smiles in a sunny park", "")
    frames, = M["IDVSampler"]().sample(model, text, TINY_WIDTH, TINY_HEIGHT, TINY_FRAMES, 3, 6.0, 123,
                                        vae_tiling=False, global_identity=ident, local_identity=local)

    ref = _pipeline_frames(model, whitened, text, local, steps=3, seed=123)
    assert frames.shape == ref.shape
    assert ref.std() > 0.01
    assert (frames - ref).abs().max().item() <= TOL


@pytest.mark.parametrize("family,dit", [("Concat-ID-Wan", "second_stage_adaln.pt"),
                                        ("Phantom-Wan", "Phantom-Wan-1.3B.pth")])
def test_wan_nodes_equal_core_api(pack, env, family, dit):
    from idvideo_core import runtime

    M = pack.NODE_CLASS_MAPPINGS
    model, = M["IDVWanModelLoader"]().load(family, "Wan2.1-T2V-1.3B-Diffusers", dit, "(from base folder)",
                                          "(from base folder)", "fp32", "auto", 0)
    garment = torch.rand(1, 40, 30, 3, generator=torch.Generator().manual_seed(0))
    refs, preview = M["IDVMultiIdentityConcat"]().concat(64, 32, "whole image, white pad (Phantom)",
                                                         "white pad (Phantom)", subject_1=garment)
    assert preview.shape == (1, 32, 64, 3)
    text, = M["IDVTextEncode"]().encode(model, "a person wears the shirt", "")
    via_nodes, = M["IDVSampler"]().sample(model, text, 64, 32, 5, 3, 5.0, 77, references=refs)
    via_core = runtime.generate(model, runtime.encode_prompt(model, "a person wears the shirt", ""), width=64,
                                height=32, num_frames=5, steps=3, cfg=5.0, seed=77,
                                references=runtime.concat_references(64, 32, 2, True, None, [garment])[0],
                                progress=False)
    assert via_nodes.shape == (5, 32, 64, 3)
    assert torch.equal(via_nodes, via_core)
    other, = M["IDVSampler"]().sample(model, text, 64, 32, 5, 3, 5.0, 78, references=refs)
    assert not torch.equal(other, via_nodes)


def test_kps_model_puts_keypoints_in_latent_frame_1(pack, env):
    """A model trained with key points (is_kps) gets the key-point image as latent frame 1, as the pipeline does."""

    from idvideo_core.testing.tiny_consisid import TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH

    M = pack.NODE_CLASS_MAPPINGS
    model, = M["IDVConsisIDModelLoader"]().load("ConsisID-preview", "fp32", "auto", 0)
    model.transformer.register_to_config(is_kps=True)
    fm, = M["IDVFaceModelsLoader"]().load("CPU", "fp32")
    faces, _, whitened = M["IDVFaceLoader"]().load(fm, _photo(), "largest", 0, "error")["result"]
    kps, = M["IDVKeypointRenderer"]().render(faces, "reference (aligned face size)")
    local, = M["IDVLocalIdentity"]().extract(fm, faces)
    ident, _ = M["IDVGlobalIdentity"]().extract(model, faces, TINY_WIDTH, TINY_HEIGHT, kps)
    assert ident.kps_mean is not None
    text, = M["IDVTextEncode"]().encode(model, "a man", "")
    frames, = M["IDVSampler"]().sample(model, text, TINY_WIDTH, TINY_HEIGHT, TINY_FRAMES, 2, 6.0, 5,
                                        vae_tiling=False, global_identity=ident, local_identity=local)
    ref = _pipeline_frames(model, whitened, text, local, steps=2, seed=5, kps_cond=faces[0].kps)
    assert (frames - ref).abs().max().item() <= TOL


def test_fp8_weight_storage_generates_close_to_full_precision(pack, env):
    """fp8_e4m3 storage on the loader: every DiT block Linear is stored in fp8, and the video stays close to fp32."""
    from idvideo_core.memory import Fp8Linear
    from idvideo_core.testing.tiny_consisid import TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH

    M = pack.NODE_CLASS_MAPPINGS
    fm, = M["IDVFaceModelsLoader"]().load("CPU", "fp32")
    faces = M["IDVFaceLoader"]().load(fm, _photo(), "largest", 0, "error")["result"][0]
    local, = M["IDVLocalIdentity"]().extract(fm, faces)
    out = {}
    for storage in ("default", "fp8_e4m3"):
        model, = M["IDVConsisIDModelLoader"]().load("ConsisID-preview", "fp32", "auto", 0, storage)
        ident, _ = M["IDVGlobalIdentity"]().extract(model, faces, TINY_WIDTH, TINY_HEIGHT)
        text, = M["IDVTextEncode"]().encode(model, "a man", "")
        out[storage], = M["IDVSampler"]().sample(model, text, TINY_WIDTH, TINY_HEIGHT, TINY_FRAMES, 2, 6.0, 3,
                                                 vae_tiling=False, global_identity=ident, local_identity=local)
        fp8_layers = [m for m in model.transformer.transformer_blocks.modules() if isinstance(m, Fp8Linear)]
        assert bool(fp8_layers) == (storage == "fp8_e4m3")
    a, b = out["default"], out["fp8_e4m3"]
    rel = float((a - b).norm() / a.norm())
    assert 0 < rel < 0.05  # changed (the weights really are fp8) but close: per-weight error ≤ 6.25 %
