"""One tiny graph of loaded nodes shared by the cancel and soak tests: a ConsisID branch (face → identities → text)
and a Concat-ID-Wan branch (reference → text), all through the pack's nodes."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

TOM = Path(__import__("importlib").util.find_spec("insightface").origin).parent / "data" / "images" / \
    "Tom_Hanks_54745.png"


def models_tree(root: Path, consisid_folder: Path) -> Path:
    """A models/ tree: the session's tiny ConsisID folder (linked) plus freshly written tiny Wan models."""
    from idvideo_core.testing import build_wan_models

    (root / "consisid").mkdir(parents=True)
    (root / "consisid" / "ConsisID-preview").symlink_to(consisid_folder, target_is_directory=True)
    build_wan_models(root)
    return root


def load_graph(mappings) -> SimpleNamespace:
    """Run every node up to the sampler (IDVIDEO_MODELS_DIR must point at a ``models_tree``)."""
    from PIL import Image

    from idvideo_core.testing.tiny_consisid import TINY_HEIGHT, TINY_WIDTH

    M = mappings
    g = SimpleNamespace()
    g.model, = M["IDVConsisIDModelLoader"]().load("ConsisID-preview", "fp32", "auto", 0)
    fm, = M["IDVFaceModelsLoader"]().load("CPU", "fp32")
    photo = torch.from_numpy(np.asarray(Image.open(TOM).convert("RGB"), np.float32) / 255.0)[None]
    faces = g.faces = M["IDVFaceLoader"]().load(fm, photo, "largest", 0, "error")["result"][0]
    g.local, = M["IDVLocalIdentity"]().extract(fm, faces)
    g.ident, _ = M["IDVGlobalIdentity"]().extract(g.model, faces, TINY_WIDTH, TINY_HEIGHT)
    g.text, = M["IDVTextEncode"]().encode(g.model, "a man smiles", "")
    g.wan, = M["IDVWanModelLoader"]().load("Concat-ID-Wan", "Wan2.1-T2V-1.3B-Diffusers", "second_stage_adaln.pt",
                                           "(from base folder)", "(from base folder)", "fp32", "auto", 0)
    g.wan_text, = M["IDVTextEncode"]().encode(g.wan, "a person walks", "")
    g.refs, _ = M["IDVMultiIdentityConcat"]().concat(32, 32, "whole image, black pad", "black pad", subject_1=photo)
    g.sampler, g.combine = M["IDVSampler"](), M["IDVideoCombine"]()
    return g
