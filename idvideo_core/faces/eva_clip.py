"""EVA02-CLIP vision tower, in plain torch: ConsisID's source of local identity features.

ConsisID keeps only the visual half of ``EVA02-CLIP-L-14-336`` and reads two things from it for a face crop: the
projected CLS embedding (``[B, 768]``, half of ``id_cond``) and the residual stream entering blocks 4, 8, 12, 16 and
20 (five ``[B, 577, 1024]`` tensors, the Local Facial Extractor's input). This module rebuilds that tower without
xformers/apex/timm so it runs wherever torch does, in any dtype, and with the fast fused attention of
``F.scaled_dot_product_attention``.

Architecture (EVA02 with sub-LN, as the published checkpoint was trained):
patch conv → prepend CLS → add absolute position embedding → ``depth`` pre-norm blocks → LayerNorm → CLS → linear head.
Each block: LN → attention (separate q/k/v projections, bias on q and v only, 2D rotary embedding on the patch
tokens only, LayerNorm on the attention output before the out-projection) → residual; LN → SwiGLU
(``silu(w1 x) * w2 x`` → LayerNorm → ``w3``) → residual. Every LayerNorm uses eps 1e-6.

Parameter names follow the checkpoint's ``visual.*`` keys, so a state dict loads without renaming.
"""
from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CorruptFileError, InputError, MissingModelError, WrongModelError

log = logging.getLogger(__name__)

# OpenAI CLIP normalisation: what ConsisID uses for EVA (the tower's image_mean/std fall back to these).
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)

EVA_FILENAME = "EVA02_CLIP_L_336_psz14_s6B.pt"


# --------------------------------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvaVisionConfig:
    """Shape of an EVA02 vision tower. The defaults are EVA02-CLIP-L-14-336; ``replace(...)`` gives any smaller one.

    ``mlp_hidden`` is stored as the integer the checkpoint holds (``int(1024 * 2.6667) == 2730``) rather than the
    ratio, so a config inferred from a state dict round-trips exactly.
    """

    image_size: int = 336
    patch_size: int = 14
    width: int = 1024
    depth: int = 24
    head_dim: int = 64
    mlp_hidden: int = 2730
    embed_dim: int = 768
    pt_hw_seq_len: int = 16        # RoPE grid of pretraining (224 / 14); positions are rescaled onto it
    rope_interpolate: bool = True  # EVA02 "intp_freq": stretch the fine-tune grid onto the pretraining grid
    rope_theta: float = 10000.0
    norm_eps: float = 1e-6

    def __post_init__(self):
        problems = []
        if self.image_size % self.patch_size:
            problems.append(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.width % self.head_dim:
            problems.append(f"width {self.width} is not a multiple of head_dim {self.head_dim}")
        if self.head_dim % 4:
            problems.append(f"head_dim {self.head_dim} must be a multiple of 4 for the 2D rotary embedding")
        if problems:
            raise ValueError("invalid EVA vision config: " + "; ".join(problems))

    @classmethod
    def l14_336(cls) -> "EvaVisionConfig":
        """The published EVA02-CLIP-L-14-336 visual tower ConsisID uses."""
        return cls()

    def replace(self, **changes) -> "EvaVisionConfig":
        return replace(self, **changes)

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid * self.grid

    @property
    def num_tokens(self) -> int:
        return self.num_patches + 1

    @property
    def num_heads(self) -> int:
        return self.width // self.head_dim

    @property
    def hidden_taps(self) -> tuple[int, ...]:
        """Block indices whose *input* is returned: ``0 < idx <= 20 and idx % 4 == 0`` (ConsisID / PuLID rule)."""
        return tuple(i for i in range(self.depth) if 0 < i <= 20 and i % 4 == 0)


# --------------------------------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------------------------------
def rope_tables(cfg: EvaVisionConfig, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """2D rotary tables ``(cos, sin)`` of shape ``[num_patches, head_dim]`` (row-major over the patch grid).

    The first half of each head rotates by the patch's row, the second by its column; within each half, channel pairs
    (0,1), (2,3), … share one frequency. Positions ``0..grid-1`` are rescaled onto the pretraining grid so a 336 px
    model keeps the 224 px model's frequencies. Computed in float32, as the checkpoint's own tables were.
    """
    quarter = cfg.head_dim // 4
    half = cfg.head_dim // 2
    inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, half, 2, device=device)[:quarter].float() / half))
    ft = cfg.grid if cfg.rope_interpolate else cfg.pt_hw_seq_len
    pos = torch.arange(ft, device=device) / ft * cfg.pt_hw_seq_len
    angles = (pos[:, None] * inv_freq[None, :]).repeat_interleave(2, dim=-1)  # [ft, half]
    rows = angles[:, None, :].expand(ft, ft, half)
    cols = angles[None, :, :].expand(ft, ft, half)
    table = torch.cat([rows, cols], dim=-1).reshape(ft * ft, cfg.head_dim)
    return table.cos(), table.sin()


class Rope2D(nn.Module):
    """Holds the rotary tables as non-persistent buffers (they follow ``.to()`` but are not weights)."""

    def __init__(self, cfg: EvaVisionConfig):
        super().__init__()
        self.cfg = cfg
        cos, sin = rope_tables(cfg)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def rebuild(self, device=None, dtype=None) -> None:
        """Recompute the tables (after building on the meta device), in float32 then cast like the weights."""
        cos, sin = rope_tables(self.cfg, device=device)
        self.cos = cos.to(dtype) if dtype is not None else cos
        self.sin = sin.to(dtype) if dtype is not None else sin

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """Rotate ``t`` [..., num_patches, head_dim]: pairs (a, b) → (a cos − b sin, b cos + a sin)."""
        pairs = t.unflatten(-1, (-1, 2))
        swapped = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
        return t * self.cos + swapped * self.sin


class EvaAttention(nn.Module):
    def __init__(self, cfg: EvaVisionConfig):
        super().__init__()
        w = cfg.width
        self.num_heads = cfg.num_heads
        self.q_proj = nn.Linear(w, w, bias=False)
        self.k_proj = nn.Linear(w, w, bias=False)
        self.v_proj = nn.Linear(w, w, bias=False)
        # EVA keeps separate q/v biases and no k bias (a k bias cancels in softmax anyway).
        self.q_bias = nn.Parameter(torch.zeros(w))
        self.v_bias = nn.Parameter(torch.zeros(w))
        self.inner_attn_ln = nn.LayerNorm(w, eps=cfg.norm_eps)
        self.proj = nn.Linear(w, w)

    def forward(self, x: torch.Tensor, rope: Rope2D) -> torch.Tensor:
        b, n, c = x.shape
        heads = lambda t: t.view(b, n, self.num_heads, -1).transpose(1, 2)  # noqa: E731  [B, H, N, D]
        q = heads(F.linear(x, self.q_proj.weight, self.q_bias))
        k = heads(F.linear(x, self.k_proj.weight))
        v = heads(F.linear(x, self.v_proj.weight, self.v_bias))
        # The CLS token (index 0) has no grid position: only patch tokens are rotated.
        q = torch.cat((q[:, :, :1], rope(q[:, :, 1:]).type_as(v)), dim=2)
        k = torch.cat((k[:, :, :1], rope(k[:, :, 1:]).type_as(v)), dim=2)
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(1, 2).reshape(b, n, c)
        return self.proj(self.inner_attn_ln(out))


class SwiGLU(nn.Module):
    def __init__(self, cfg: EvaVisionConfig):
        super().__init__()
        self.w1 = nn.Linear(cfg.width, cfg.mlp_hidden)
        self.w2 = nn.Linear(cfg.width, cfg.mlp_hidden)
        self.ffn_ln = nn.LayerNorm(cfg.mlp_hidden, eps=cfg.norm_eps)  # EVA02 sub-LN
        self.w3 = nn.Linear(cfg.mlp_hidden, cfg.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w3(self.ffn_ln(F.silu(self.w1(x)) * self.w2(x)))


class EvaBlock(nn.Module):
    def __init__(self, cfg: EvaVisionConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.width, eps=cfg.norm_eps)
        self.attn = EvaAttention(cfg)
        self.norm2 = nn.LayerNorm(cfg.width, eps=cfg.norm_eps)
        self.mlp = SwiGLU(cfg)

    def forward(self, x: torch.Tensor, rope: Rope2D) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), rope)
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, cfg: EvaVisionConfig):
        super().__init__()
        self.proj = nn.Conv2d(3, cfg.width, kernel_size=cfg.patch_size, stride=cfg.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


# --------------------------------------------------------------------------------------------------------------------
# Tower
# --------------------------------------------------------------------------------------------------------------------
class EvaVisionTower(nn.Module):
    """The EVA02-CLIP visual tower. ``forward(pixels) -> (proj [B, embed_dim], hidden list)``.

    ``pixels`` are already resized to ``image_size`` and normalised with ``image_mean/std`` (see :meth:`prepare`).
    ``hidden`` holds the residual stream entering each block of ``cfg.hidden_taps`` (CLS included, before the final
    norm): five ``[B, 577, 1024]`` tensors for the real model.
    """

    image_mean = OPENAI_MEAN
    image_std = OPENAI_STD

    def __init__(self, cfg: EvaVisionConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or EvaVisionConfig()
        self.image_size = cfg.image_size
        self.patch_embed = PatchEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.width))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_tokens, cfg.width))
        self.rope = Rope2D(cfg)  # shared by every block, passed in rather than registered in each
        self.blocks = nn.ModuleList(EvaBlock(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.width, eps=cfg.norm_eps)
        self.head = nn.Linear(cfg.width, cfg.embed_dim)

    @property
    def dtype(self) -> torch.dtype:
        return self.pos_embed.dtype

    @property
    def device(self) -> torch.device:
        return self.pos_embed.device

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        size = self.image_size
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[-2:] != (size, size):
            raise InputError(f"The EVA-CLIP face encoder needs images shaped [B, 3, {size}, {size}], got "
                             f"{list(x.shape)}.",
                             f"Resize the face crop to {size}×{size} first (EvaVisionTower.prepare).")
        x = self.patch_embed(x.to(self.dtype))
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + self.pos_embed
        taps = set(self.cfg.hidden_taps)
        hidden = []
        for idx, block in enumerate(self.blocks):
            if idx in taps:
                hidden.append(x)
            x = block(x, self.rope)
        cls = self.norm(x)[:, 0]
        return self.head(cls), hidden

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` RGB in [0, 1] → resized (bicubic, shorter side to ``image_size``) and normalised pixels.

        Matches ConsisID's ``resize(img, image_size, BICUBIC)`` + ``normalize(mean, std)``.
        """
        from torchvision.transforms.functional import InterpolationMode, normalize, resize

        out = resize(images, self.image_size, InterpolationMode.BICUBIC)
        return normalize(out, list(self.image_mean), list(self.image_std))


# --------------------------------------------------------------------------------------------------------------------
# Checkpoint reading
# --------------------------------------------------------------------------------------------------------------------
_ROPE_KEY = re.compile(r"(^|\.)rope\.freqs_(cos|sin)$")
# Keys that mean "a different EVA/ViT variant than the sub-LN, SwiGLU, RoPE EVA02 this tower implements".
_FOREIGN_VARIANT = re.compile(r"\.attn\.qkv\.|gamma_[12]$|rel_pos_bias|relative_position|^fc_norm\.|\.mlp\.fc[12]\.")


def _strip_prefix(sd: Mapping[str, torch.Tensor], prefix: str) -> dict:
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in sd.items()}


def visual_state_dict(sd: Mapping[str, torch.Tensor], source: str = "the checkpoint") -> dict[str, torch.Tensor]:
    """The EVA visual tower's tensors from a full CLIP state dict, keyed as :class:`EvaVisionTower` names them.

    Accepts the layouts the reference loader does: ``visual.*`` (full CLIP), an optional ``module.`` prefix (DDP), or
    a bare visual state dict. Text-tower keys and the (recomputed) rotary tables are dropped.
    """
    sd = _strip_prefix(sd, "module.")
    if any(k.startswith("visual.") for k in sd):
        vis = {k[len("visual."):]: v for k, v in sd.items() if k.startswith("visual.")}
    else:
        vis = dict(sd)
    if "pos_embed" not in vis or "patch_embed.proj.weight" not in vis:
        hint = ""
        if "conv1.weight" in vis or "positional_embedding" in vis:
            hint = " It looks like an OpenAI/open_clip ViT, not an EVA-CLIP model."
        elif any(k.startswith(("text.", "transformer.", "token_embedding")) for k in sd):
            hint = " It holds a text tower but no EVA vision tower."
        raise WrongModelError(f"{source} is not an EVA02-CLIP checkpoint: it has no EVA vision tower "
                              f"(no 'visual.pos_embed' / 'visual.patch_embed.proj.weight').{hint}",
                              f"Use {EVA_FILENAME} from ConsisID's face_encoder folder.")
    foreign = sorted(k for k in vis if _FOREIGN_VARIANT.search(k))
    if foreign:
        raise WrongModelError(f"{source} is an EVA/ViT variant this loader does not implement (it has e.g. "
                              f"'{foreign[0]}'); ConsisID needs EVA02-CLIP-L-14-336 (sub-LN, SwiGLU, RoPE).",
                              f"Use {EVA_FILENAME} from ConsisID's face_encoder folder.")
    return vis


def infer_eva_config(vis: Mapping[str, torch.Tensor], source: str = "the checkpoint") -> EvaVisionConfig:
    """Read the tower's shape from its tensors, so the real checkpoint and tiny test ones load with the same code.

    ``head_dim`` comes from the rotary tables when the file carries them (the published one does), else 64 (every
    EVA02-CLIP). ``pt_hw_seq_len`` is not recorded in weights; all EVA02-CLIP models were pretrained on a 16×16 grid.
    """
    try:
        pos = vis["pos_embed"]
        patch_w = vis["patch_embed.proj.weight"]
        width = int(pos.shape[-1])
        patch = int(patch_w.shape[-1])
        grid = math.isqrt(int(pos.shape[-2]) - 1)
        if grid * grid != int(pos.shape[-2]) - 1 or patch_w.shape[0] != width:
            raise ValueError(f"pos_embed {tuple(pos.shape)} / patch_embed {tuple(patch_w.shape)} are not a square grid")
        block_ids = {int(m.group(1)) for k in vis if (m := re.match(r"blocks\.(\d+)\.", k))}
        depth = max(block_ids) + 1 if block_ids else 0
        if not depth:
            raise ValueError("it has no transformer blocks")
        mlp_hidden = int(vis["blocks.0.mlp.w1.weight"].shape[0])
        embed_dim = int(vis["head.weight"].shape[0])
    except KeyError as exc:
        raise CorruptFileError(source, f"the EVA vision tower is missing the tensor 'visual.{exc.args[0]}'") from exc
    except ValueError as exc:
        raise WrongModelError(f"{source} does not hold a usable EVA vision tower: {exc}.",
                              f"Use {EVA_FILENAME} from ConsisID's face_encoder folder.") from exc
    rope = next((v for k, v in vis.items() if k.endswith("rope.freqs_cos")), None)
    head_dim = int(rope.shape[-1]) if rope is not None else 64
    try:
        return EvaVisionConfig(image_size=grid * patch, patch_size=patch, width=width, depth=depth,
                               head_dim=head_dim, mlp_hidden=mlp_hidden, embed_dim=embed_dim)
    except ValueError as exc:
        raise WrongModelError(f"{source} has EVA tensors of inconsistent shapes ({exc}).",
                              f"Use {EVA_FILENAME} from ConsisID's face_encoder folder.") from exc


def tower_from_state_dict(sd: Mapping[str, torch.Tensor], device="cpu", dtype: torch.dtype = torch.float32,
                          source: str = "the checkpoint") -> EvaVisionTower:
    """Build an :class:`EvaVisionTower` straight from a (full CLIP or visual-only) state dict, weights assigned."""
    vis = visual_state_dict(sd, source)
    cfg = infer_eva_config(vis, source)
    weights = {k: v for k, v in vis.items() if not _ROPE_KEY.search(k)}
    with torch.device("meta"):
        tower = EvaVisionTower(cfg)
    expected = tower.state_dict().keys()
    missing = sorted(set(expected) - set(weights))
    if missing:
        shown = ", ".join(f"visual.{k}" for k in missing[:4])
        shown += f" and {len(missing) - 4} more" if len(missing) > 4 else ""
        raise CorruptFileError(source, f"the EVA vision tower is incomplete: missing {shown}")
    extra = sorted(set(weights) - set(expected))
    if extra:
        log.warning("IDVideo: EVA-CLIP ignores %d unused tensors in %s (e.g. visual.%s)", len(extra), source, extra[0])
    shaped = tower.state_dict()
    bad = [k for k in expected if tuple(weights[k].shape) != tuple(shaped[k].shape)]
    if bad:
        k = bad[0]
        raise CorruptFileError(source, f"tensor visual.{k} has shape {tuple(weights[k].shape)}, expected "
                                       f"{tuple(shaped[k].shape)} for the inferred config")
    tower.load_state_dict({k: weights[k].to(device=device, dtype=dtype) for k in expected}, strict=True, assign=True)
    tower.rope.rebuild(device=device, dtype=dtype)
    return tower.requires_grad_(False).eval()


def load_eva_clip(path: Path | str, device="cpu", dtype: torch.dtype = torch.float32) -> EvaVisionTower:
    """Load ConsisID's ``EVA02_CLIP_L_336_psz14_s6B.pt`` (or a ``.safetensors`` with the same keys), visual tower only.

    Loading is ``weights_only`` (a pickle that would run code raises UnsafeFileError); a damaged file or a missing
    tensor raises CorruptFileError; a different model raises WrongModelError. The text tower is dropped at once.
    """
    from ..paths import PUBLISHED
    from ..safeload import load_weights

    path = Path(path)
    if not path.is_file():
        raise MissingModelError(f"the EVA-CLIP face encoder ({EVA_FILENAME})", [path], PUBLISHED["eva_clip"])
    sd = load_weights(path, published=PUBLISHED["eva_clip"])
    vis = visual_state_dict(sd, str(path))
    del sd  # keep only the visual tower in memory
    return tower_from_state_dict({f"visual.{k}": v for k, v in vis.items()}, device, dtype, str(path))
