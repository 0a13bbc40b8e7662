"""ConsisID adapter for the shared loop.

Runs diffusers' ``ConsisIDTransformer3DModel`` modules with our own forward so that
- the local facial extractor (LFE) runs once per generation, not once per step (its output does not depend on t);
- both CFG branches go through one batched forward, the face embedding broadcast over both (reference behaviour:
  the unconditional branch also sees the face, CFG contrasts text only);
- transformer blocks can be streamed by a block swapper.
Numerically it is the reference forward: same modules, same order of operations.
"""
from __future__ import annotations

from typing import Optional

from ...sampling.guidance import dynamic_cfg_scale, two_pass
from ...types import LocalIdentity


def resize_crop_region(src_hw: tuple[int, int], base_w: int, base_h: int):
    """Fit a (h, w) grid inside the base grid keeping its aspect ratio, centred; return the crop corners."""
    h, w = src_hw
    if h / w > base_h / base_w:
        rh, rw = base_h, int(round(base_h / h * w))
    else:
        rw, rh = base_w, int(round(base_w / w * h))
    top, left = int(round((base_h - rh) / 2.0)), int(round((base_w - rw) / 2.0))
    return (top, left), (top + rh, left + rw)


def rotary_embedding(config, latent_h: int, latent_w: int, latent_frames: int, device):
    """CogVideoX 3D RoPE for the video grid, cropped against the model's base grid."""
    from diffusers.models.embeddings import get_3d_rotary_pos_embed

    p = config.patch_size
    gh, gw = latent_h // p, latent_w // p
    crops = resize_crop_region((gh, gw), config.sample_width // p, config.sample_height // p)
    return get_3d_rotary_pos_embed(embed_dim=config.attention_head_dim, crops_coords=crops, grid_size=(gh, gw),
                                   temporal_size=latent_frames, device=device)


class ConsisIDAdapter:
    def __init__(self, transformer, stepper, prompt_embeds, negative_embeds, image_latents,
                 local: Optional[LocalIdentity], guidance_scale: float = 6.0, use_dynamic_cfg: bool = False,
                 num_steps: int = 50, face_scale: Optional[float] = None, cache=None):
        import torch

        self.tf = transformer
        self.cache = cache          # optional sampling.cache.StepCache (None: every step computed, exact)
        self.stepper = stepper
        self.cfg = guidance_scale
        self.do_cfg = guidance_scale > 1.0
        self.dynamic = use_dynamic_cfg
        self.num_steps = num_steps
        dtype = prompt_embeds.dtype
        self.dtype = dtype
        self.text = torch.cat([negative_embeds, prompt_embeds]) if self.do_cfg else prompt_embeds
        self.image_latents = torch.cat([image_latents] * 2) if self.do_cfg else image_latents
        cfg = transformer.config
        self.face_scale = cfg.local_face_scale if face_scale is None else face_scale
        self.face_emb = None
        if getattr(transformer, "is_train_face", False):
            if local is None:
                from ...errors import InputError

                raise InputError("This ConsisID model needs the local identity (face features).",
                                 "Connect 'IDVideo Local Identity Extractor' to the sampler's local_identity input.")
            self.face_emb = self.local_face_embedding(local, image_latents.device, dtype)
        _, frames, _, lh, lw = image_latents.shape
        self.rope = (rotary_embedding(cfg, lh, lw, frames, image_latents.device)
                     if cfg.use_rotary_positional_embeddings else None)

    def local_face_embedding(self, local: LocalIdentity, device, dtype):
        """The LFE output [1, queries, kv_dim]; computed once per generation."""
        import torch

        with torch.no_grad():
            id_cond = local.id_cond.to(device=device, dtype=dtype)
            hidden = [h.to(device=device, dtype=dtype) for h in local.id_vit_hidden]
            return self.tf.local_facial_extractor(id_cond, hidden)

    # ------------------------------------------------------------------------------------------------ forward
    def _block_stack(self, hs, enc, emb):
        """Every transformer block, with the face cross-attention after every ``cross_attn_interval``-th one."""
        tf = self.tf
        ca = 0
        interval = getattr(tf, "cross_attn_interval", 2)
        # Block swap streams these through forward hooks installed by the memory manager.
        for i, block in enumerate(tf.transformer_blocks):
            hs, enc = block(hidden_states=hs, encoder_hidden_states=enc, temb=emb, image_rotary_emb=self.rope)
            if self.face_emb is not None and i % interval == 0:
                hs = hs + self.face_scale * tf.perceiver_cross_attention[ca](self.face_emb, hs)
                ca += 1
        return hs, enc

    def forward(self, x, timestep):
        import torch

        tf = self.tf
        b, f, _, h, w = x.shape
        t_emb = tf.time_proj(timestep).to(dtype=x.dtype)
        emb = tf.time_embedding(t_emb, None)
        hs = tf.patch_embed(self.text, x)
        hs = tf.embedding_dropout(hs)
        n_text = self.text.shape[1]
        enc, hs = hs[:, :n_text], hs[:, n_text:]
        if self.cache is None:
            hs, enc = self._block_stack(hs, enc, emb)
        else:
            # The text stream leaves the stack only to be dropped after the per-token final norm, so the cached
            # residual of the video stream (face cross-attentions included) stands for the whole stack.
            hs = self.cache.run(emb, hs, lambda h: self._block_stack(h, enc, emb)[0])
        hs = torch.cat([enc, hs], dim=1)
        hs = tf.norm_final(hs)[:, n_text:]
        hs = tf.norm_out(hs, temb=emb)
        hs = tf.proj_out(hs)
        p = tf.config.patch_size
        out = hs.reshape(b, f, h // p, w // p, -1, p, p)
        return out.permute(0, 1, 4, 2, 5, 3, 6).flatten(5, 6).flatten(3, 4)

    def model_output(self, latents, t, i: int):
        import torch

        x = torch.cat([latents] * 2) if self.do_cfg else latents
        x = self.stepper.scale_input(x, t)
        x = torch.cat([x, self.image_latents], dim=2)
        out = self.forward(x, t.expand(x.shape[0])).float()
        if not self.do_cfg:
            return out
        scale = self.cfg
        if self.dynamic:
            scale = dynamic_cfg_scale(self.cfg, float(self.stepper.timesteps[i].item()), self.num_steps)
        return two_pass(out, scale)
