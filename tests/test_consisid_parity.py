"""ConsisID sampling parity with diffusers' ConsisIDPipeline on the same tiny random weights (fp32, max|Δ| ≤ 1e-4).

Both sides load the same tiny checkpoint written in the ConsisID-preview layout; ours goes through the pack's
loader, text encoder, global identity, shared loop and decoder.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

TOL = 1e-4


@pytest.fixture(scope="module")
def base_model(consisid_folder):
    from idvideo_core.backbones.consisid.loading import load_consisid

    return load_consisid(consisid_folder, "fp32", torch.device("cpu"))


def _reference(model, face, text, local, steps, cfg, seed, dynamic=False):
    import PIL.Image
    from diffusers import CogVideoXDPMScheduler, ConsisIDPipeline

    from idvideo_core.testing.tiny_consisid import TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH

    pipe = ConsisIDPipeline(tokenizer=model.tokenizer, text_encoder=model.text_encoder, vae=model.vae,
                            transformer=model.transformer,
                            scheduler=CogVideoXDPMScheduler.from_config(model.scheduler_config))
    pipe.set_progress_bar_config(disable=True)
    out = pipe(image=PIL.Image.fromarray(face), prompt_embeds=text.prompt_embeds,
               negative_prompt_embeds=text.negative_embeds, height=TINY_HEIGHT, width=TINY_WIDTH,
               num_frames=TINY_FRAMES, num_inference_steps=steps, guidance_scale=cfg, use_dynamic_cfg=dynamic,
               generator=torch.Generator("cpu").manual_seed(seed), id_vit_hidden=local.id_vit_hidden,
               id_cond=local.id_cond, output_type="pt").frames
    return out[0].permute(0, 2, 3, 1)


def _random_identity(seed=0):
    from idvideo_core.testing.tiny_eva import tiny_eva_config
    from idvideo_core.types import LocalIdentity

    cfg = tiny_eva_config()
    g = torch.Generator().manual_seed(seed)
    return LocalIdentity(id_cond=torch.randn(1, 512 + cfg.embed_dim, generator=g),
                         id_vit_hidden=[torch.randn(1, 577, cfg.width, generator=g) for _ in range(5)])


@pytest.mark.parametrize("steps,cfg,dynamic", [(4, 6.0, False), (3, 1.0, False), (3, 6.0, True)])
def test_core_sampler_matches_diffusers_pipeline(base_model, steps, cfg, dynamic):
    from idvideo_core import runtime
    from idvideo_core.backbones.consisid.generate import encode_global_identity
    from idvideo_core.testing.tiny_consisid import TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH

    face = np.random.default_rng(1).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    local = _random_identity()
    text = runtime.encode_prompt(base_model, "a woman walks through the city at night", "")
    ident = encode_global_identity(base_model, face, TINY_WIDTH, TINY_HEIGHT)
    ours = runtime.generate(base_model, text, width=TINY_WIDTH, height=TINY_HEIGHT, num_frames=TINY_FRAMES,
                            steps=steps, cfg=cfg, seed=7, use_dynamic_cfg=dynamic, global_identity=ident,
                            local_identity=local, vae_tiling=False, progress=False)
    ref = _reference(base_model, face, text, local, steps, cfg, seed=7, dynamic=dynamic)
    assert ours.shape == ref.shape == (TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH, 3)
    assert ref.std() > 0.01  # a real video, not a constant
    diff = (ours - ref).abs().max().item()
    print(f"max|Δ| frames {diff:.2e}")  # shown with -s
    assert diff <= TOL


def test_text_encoding_matches_pipeline(base_model):
    from diffusers import CogVideoXDPMScheduler, ConsisIDPipeline

    from idvideo_core import runtime

    pipe = ConsisIDPipeline(tokenizer=base_model.tokenizer, text_encoder=base_model.text_encoder,
                            vae=base_model.vae, transformer=base_model.transformer,
                            scheduler=CogVideoXDPMScheduler.from_config(base_model.scheduler_config))
    pos, neg = pipe.encode_prompt("a man in a red jacket", "blurry", device="cpu")
    ours = runtime.encode_prompt(base_model, "a man in a red jacket", "blurry")
    assert ours.prompt_embeds.shape == (1, 226, base_model.text_encoder.config.d_model)
    assert torch.equal(ours.prompt_embeds, pos) and torch.equal(ours.negative_embeds, neg)


def test_long_prompt_is_truncated_with_warning(base_model, caplog):
    from idvideo_core import runtime

    words = " ".join(["person walking in the city"] * 120)
    with caplog.at_level("WARNING", logger="idvideo"):
        emb = runtime.encode_prompt(base_model, words, "")
    assert emb.truncated and "cut off" in caplog.text


def test_lfe_runs_once_per_generation(base_model, monkeypatch):
    from idvideo_core import runtime
    from idvideo_core.backbones.consisid.generate import encode_global_identity
    from idvideo_core.testing.tiny_consisid import TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH

    calls = []
    lfe = base_model.transformer.local_facial_extractor
    handle = lfe.register_forward_hook(lambda *a: calls.append(1))
    try:
        face = np.full((512, 512, 3), 200, np.uint8)
        text = runtime.encode_prompt(base_model, "a person", "")
        ident = encode_global_identity(base_model, face, TINY_WIDTH, TINY_HEIGHT)
        runtime.generate(base_model, text, width=TINY_WIDTH, height=TINY_HEIGHT, num_frames=TINY_FRAMES, steps=3,
                         cfg=6.0, seed=1, global_identity=ident, local_identity=_random_identity(),
                         vae_tiling=False, progress=False)
    finally:
        handle.remove()
    assert len(calls) == 1


def test_trained_size_is_enforced(base_model):
    from idvideo_core import runtime
    from idvideo_core.backbones.consisid.generate import encode_global_identity
    from idvideo_core.errors import InputError
    from idvideo_core.testing.tiny_consisid import TINY_HEIGHT, TINY_WIDTH

    face = np.full((512, 512, 3), 200, np.uint8)
    text = runtime.encode_prompt(base_model, "a person", "")
    ident = encode_global_identity(base_model, face, TINY_WIDTH + 16, TINY_HEIGHT)
    with pytest.raises(InputError, match=f"only generates {TINY_WIDTH}×{TINY_HEIGHT}"):
        runtime.generate(base_model, text, width=TINY_WIDTH + 16, height=TINY_HEIGHT, num_frames=9, steps=1,
                         cfg=6.0, seed=1, global_identity=ident, local_identity=_random_identity(), progress=False)


def test_tiled_decode_keeps_the_frame_size(base_model):
    """The sampler's default (tiling on) must give the asked size: explicit CogVideoX tiles, not the VAE's
    sample-size-derived default (which mis-sized small videos)."""
    from idvideo_core.backbones.consisid.generate import decode_consisid
    from idvideo_core.testing.tiny_consisid import TINY_HEIGHT, TINY_WIDTH

    lat = torch.randn(1, 3, 4, TINY_HEIGHT // 8, TINY_WIDTH // 8, generator=torch.Generator().manual_seed(0))
    tiled = decode_consisid(base_model, lat, tiling=True)
    plain = decode_consisid(base_model, lat, tiling=False)
    assert tiled.shape == plain.shape == (9, TINY_HEIGHT, TINY_WIDTH, 3)
    assert not base_model.vae.use_tiling  # the shared VAE is left as found


def test_without_onednn_linears_the_sampler_is_bit_exact(base_model, monkeypatch):
    """The only numerical difference from diffusers is the CPU GEMM backend (idvideo_core.cpu_kernels): with it
    switched off, the whole generation equals the pipeline's bit for bit."""
    from idvideo_core import runtime
    from idvideo_core.backbones.consisid.generate import encode_global_identity
    from idvideo_core.testing.tiny_consisid import TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH

    monkeypatch.setenv("IDVIDEO_ONEDNN", "0")
    face = np.random.default_rng(1).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    local = _random_identity()
    text = runtime.encode_prompt(base_model, "a woman walks through the city at night", "")
    ident = encode_global_identity(base_model, face, TINY_WIDTH, TINY_HEIGHT)
    ours = runtime.generate(base_model, text, width=TINY_WIDTH, height=TINY_HEIGHT, num_frames=TINY_FRAMES,
                            steps=3, cfg=6.0, seed=7, global_identity=ident, local_identity=local,
                            vae_tiling=False, progress=False)
    ref = _reference(base_model, face, text, local, 3, 6.0, seed=7, dynamic=False)
    assert torch.equal(ours, ref)
