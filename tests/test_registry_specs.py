"""The backbone registry: every family is a complete plug-in, and nothing outside backbones/ branches on family."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from idvideo_core.backbones import registry

ROOT = Path(__file__).resolve().parents[1]


def test_every_family_registers_a_complete_spec():
    fams = registry.families()
    assert {"consisid", "concatid_wan", "phantom_wan", "wan"} <= set(fams)
    from idvideo_core import paths

    for spec in registry.specs():
        assert spec.text_family and spec.label and spec.identity in ("face", "references")
        for fn in (spec.generate, spec.encode_prompt, spec.workload, spec.set_attention, spec.cache_rule):
            assert callable(fn), (spec.family, fn)
        assert spec.published in paths.PUBLISHED, spec.family
        assert spec.frame_unit >= 1 and spec.snap_frames(spec.defaults.num_frames) == spec.defaults.num_frames
        assert spec.cache_rule(30).coefficients


@pytest.mark.parametrize("family,asked,made", [("consisid", 50, 49), ("consisid", 53, 57), ("concatid_wan", 80, 81),
                                               ("phantom_wan", 2, 1)])
def test_snap_frames_follows_the_family_rule(family, asked, made):
    assert registry.get(family).snap_frames(asked) == made


def test_unknown_family_is_a_clear_error():
    from idvideo_core.errors import InputError

    with pytest.raises(InputError, match="Unknown model family 'nope'"):
        registry.get("nope")


def test_no_family_branch_outside_backbones():
    pat = re.compile(r"\bfamily\s*(==|!=|in\s)|\.family\s*(==|!=)")
    hits = []
    for folder in ("idvideo_core", "nodes"):
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith(("idvideo_core/backbones/", "idvideo_core/testing/")):
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if pat.search(line):
                    hits.append(f"{rel}:{n}: {line.strip()}")
    assert not hits, "model-family branches outside backbones/:\n" + "\n".join(hits)


def test_backbones_never_import_the_runtime():
    """The runtime dispatches to the backbones; a backbone importing the runtime back was an import circle."""
    offenders = []
    for path in (ROOT / "idvideo_core" / "backbones").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and (
                    node.module.endswith("runtime") and node.level >= 2 or node.module == "idvideo_core.runtime"):
                offenders.append(f"{path.relative_to(ROOT)}: from {'.' * node.level}{node.module}")
    assert not offenders, offenders


def test_wan_methods_live_in_their_family_packages():
    from idvideo_core.backbones.wan.method import get_method

    from idvideo_core.backbones.concatid_wan import method as concat_pkg
    from idvideo_core.backbones.phantom_wan import method as phantom_pkg

    concat, phantom = get_method("concatid"), get_method("phantom")
    assert concat is concat_pkg.METHOD and phantom is phantom_pkg.METHOD
    assert registry.get("phantom_wan").max_references == phantom.max_references == 4
    assert registry.get("concatid_wan").trained_references == concat.trained_references == 1
    assert len(phantom.branches(None, None, None)) == 3 and len(concat.branches(None, None, None)) == 2


def test_a_new_family_is_served_by_the_shared_code_without_edits(monkeypatch):
    """Registering a spec is all it takes for the planner, attention switch and previews to serve a model."""
    import dataclasses

    import torch

    from idvideo_core.attention import block_list, set_attention
    from idvideo_core.memory.estimate import Workload, default_workload
    from idvideo_core.preview import sampler_previewer

    seen = []
    base = registry.get("consisid")
    spec = dataclasses.replace(
        base, family="toy", label="Toy", block_path="layers", latent_rgb=None,
        workload=lambda tf, b, w, h, f, r=None: Workload(1, w * h * f, 8, 16, b),
        set_attention=lambda tf, choice, kernel: seen.append(choice), planned_clip=None)
    monkeypatch.setitem(registry._SPECS, "toy", spec)
    tf = torch.nn.Module()
    tf.layers = torch.nn.ModuleList([torch.nn.Linear(2, 2)])
    assert block_list(tf, "toy") is tf.layers
    set_attention(tf, "toy", "sdpa")
    assert seen == ["sdpa"]
    d = base.defaults
    assert default_workload("toy", tf, 2) == Workload(1, d.width * d.height * d.num_frames, 8, 16, 2)
    assert sampler_previewer("toy") is None
