"""Defaults that work (issue 14, item 3): every loader runs as freshly added when the tiny models sit in the
documented folders; the Wan loader's dit list follows the chosen family (read from the files' keys, cached); a DiT
of another family is refused with a clear error at queue time; ONNX Runtime's provider defaults to the best one."""
from __future__ import annotations

import logging
import shutil

import pytest

from idvideo_core import errors as E


def fresh_arguments(cls) -> dict:
    """What a node has when just added to the graph: each widget's default, else the first entry of its list."""
    args = {}
    for name, spec in cls.INPUT_TYPES()["required"].items():
        kind, opts = spec[0], (spec[1] if len(spec) > 1 else {})
        if isinstance(kind, (list, tuple)):
            args[name] = opts.get("default", kind[0])
            assert args[name] in kind, f"{cls.__name__}.{name}: default {args[name]!r} is not in its list"
        elif "default" in opts:
            args[name] = opts["default"]
    return args


@pytest.fixture(scope="module")
def all_models(consisid_folder, tmp_path_factory):
    from idvideo_core.testing import build_wan_models
    from idvideo_core.testing.tiny_concatid_cog import build_concatid_cog_models

    root = tmp_path_factory.mktemp("fresh_models")
    (root / "consisid").mkdir()
    (root / "consisid" / "ConsisID-preview").symlink_to(consisid_folder, target_is_directory=True)
    build_concatid_cog_models(root)
    return build_wan_models(root)


def test_every_loader_works_as_freshly_added(pack, all_models, monkeypatch):
    monkeypatch.setenv("IDVIDEO_MODELS_DIR", str(all_models))
    def standalone(cls):          # a loader a creator adds on its own (the LoRA loader needs a model first)
        return all(isinstance(s[0], (list, tuple)) or s[0] in ("INT", "FLOAT", "BOOLEAN", "STRING")
                   for s in cls.INPUT_TYPES()["required"].values())

    loaders = {n: c for n, c in pack.NODE_CLASS_MAPPINGS.items() if c.CATEGORY.endswith("/loaders") and standalone(c)}
    assert {"IDVConsisIDModelLoader", "IDVWanModelLoader", "IDVFaceModelsLoader",
            "IDVConcatIDCogVideoXLoader"} <= set(loaders)
    for name, cls in loaders.items():
        args = fresh_arguments(cls)
        out = getattr(cls(), cls.FUNCTION)(**args)
        assert out[0] is not None, name
        if name == "IDVWanModelLoader":
            assert args["dit"] == "second_stage_adaln.pt" and args["base_folder"] == "Wan2.1-T2V-1.3B-Diffusers"
            assert out[0].family == "concatid_wan" and out[0].options["adaln"]
        if name == "IDVFaceModelsLoader":
            assert args["provider"] == "auto (best available)" and out[0].provider == "CPU"


def test_wan_loader_fresh_with_single_files_only(pack, all_models, tmp_path, monkeypatch):
    """No diffusers base folder: the fresh loader picks the VAE and UMT5 single files by their keys."""
    root = tmp_path / "models"
    shutil.copytree(all_models, root, symlinks=True, ignore=shutil.ignore_patterns("wan", "consisid"))
    monkeypatch.setenv("IDVIDEO_MODELS_DIR", str(root))
    cls = pack.NODE_CLASS_MAPPINGS["IDVWanModelLoader"]
    args = fresh_arguments(cls)
    assert args["base_folder"] == "(none)"
    assert (args["vae"], args["text_encoder"]) == ("wan_2.1_vae.safetensors", "umt5_xxl_fp16.safetensors")
    model, = cls().load(**args)
    assert model.family == "concatid_wan"


def test_wan_loader_without_models_names_the_folders(pack, tmp_path, monkeypatch):
    monkeypatch.setenv("IDVIDEO_MODELS_DIR", str(tmp_path / "models"))
    cls = pack.NODE_CLASS_MAPPINGS["IDVWanModelLoader"]
    with pytest.raises(E.MissingModelError) as err:
        cls().load(**fresh_arguments(cls))
    text = str(err.value)
    assert "no search locations" not in text
    assert str(tmp_path / "models" / "wan") in text and str(tmp_path / "models" / "diffusion_models") in text


def test_dit_list_follows_the_family_from_the_files_keys(pack, all_models, monkeypatch):
    monkeypatch.setenv("IDVIDEO_MODELS_DIR", str(all_models))
    dit_list, opts = pack.NODE_CLASS_MAPPINGS["IDVWanModelLoader"].INPUT_TYPES()["required"]["dit"]
    fams = opts["idv_families"]
    every = ["Concat-ID-Wan", "Phantom-Wan", "Wan2.1 (plain T2V)"]
    assert fams["second_stage_adaln.pt"] == ["Concat-ID-Wan"]                # AdaLN extras: Concat-ID only
    assert fams["first_stage.pt"] == fams["Phantom-Wan-1.3B.pth"] == every    # same keys: any Wan family
    assert fams["wan2.1_t2v_1.3B_fp16.safetensors"] == every
    assert {"(from base folder)", "first_stage.pt", "second_stage_adaln.pt", "Phantom-Wan-1.3B.pth",
            "wan2.1_t2v_1.3B_fp16.safetensors"} <= set(dit_list)
    # no VAE, UMT5, face-parsing, LoRA or Concat-ID-CogVideoX (SAT) file is offered as a Wan DiT
    others = [n for n in dit_list if n.startswith(("face-parsing", "single-identity", "two-identities",
                                                   "Concat-ID-pre-training")) or "vae" in n or "umt5" in n]
    assert others == [] and all(fams[n] for n in dit_list)


def test_header_reads_are_cached(all_models, monkeypatch):
    from idvideo_core.backbones.wan import files

    files.forget()
    reads = []
    real = files._keys
    monkeypatch.setattr(files, "_keys", lambda p: reads.append(p) or real(p))
    path = all_models / "concatid" / "second_stage_adaln.pt"
    assert files.file_kind(path) == files.file_kind(path) == "wan_dit_adaln"
    assert len(reads) == 1
    path.touch()                                  # a replaced file is read again
    files.file_kind(path)
    assert len(reads) == 2


def test_phantom_with_concatid_weights_is_refused_at_queue_time(pack, all_models, monkeypatch):
    """Phantom-Wan chosen with Concat-ID's AdaLN weights: VALIDATE_INPUTS refuses the prompt, and the node (if run
    without validation) refuses before any weight is loaded."""
    from idvideo_core.backbones.wan import loading

    monkeypatch.setenv("IDVIDEO_MODELS_DIR", str(all_models))
    cls = pack.NODE_CLASS_MAPPINGS["IDVWanModelLoader"]
    verdict = cls.VALIDATE_INPUTS(family="Phantom-Wan", dit="second_stage_adaln.pt")
    assert isinstance(verdict, str) and "Concat-ID" in verdict and "Phantom-Wan" in verdict and "Fix:" in verdict
    assert cls.VALIDATE_INPUTS(family="Concat-ID-Wan", dit="second_stage_adaln.pt") is True
    assert cls.VALIDATE_INPUTS(family="Phantom-Wan", dit="Phantom-Wan-1.3B.pth") is True
    assert "could not find" in cls.VALIDATE_INPUTS(family="Phantom-Wan", dit="gone.pth")   # the list check too
    monkeypatch.setattr(loading, "load_weights", lambda *a, **k: pytest.fail("weights read before the check"))
    args = dict(fresh_arguments(cls), family="Phantom-Wan", dit="second_stage_adaln.pt")
    with pytest.raises(E.WrongModelError, match="Concat-ID"):
        cls().load(**args)


@pytest.mark.parametrize("available, best", [
    (["CUDAExecutionProvider", "CPUExecutionProvider"], ["CUDAExecutionProvider", "CPUExecutionProvider"]),
    (["ROCMExecutionProvider", "CPUExecutionProvider"], ["ROCMExecutionProvider", "CPUExecutionProvider"]),
    (["CoreMLExecutionProvider", "CPUExecutionProvider"], ["CoreMLExecutionProvider", "CPUExecutionProvider"]),
    (["AzureExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"]),
])
def test_auto_provider_takes_the_best_available_and_says_so(available, best, monkeypatch, caplog):
    from idvideo_core.faces import onnx_session

    class FakeOrt:
        @staticmethod
        def get_available_providers():
            return available

    monkeypatch.setattr(onnx_session, "_ort", lambda: FakeOrt)
    monkeypatch.setattr(onnx_session, "_AUTO_SAID", set())
    with caplog.at_level(logging.INFO, logger="idvideo"):
        assert onnx_session.resolve_providers("auto (best available)") == best
        assert onnx_session.resolve_providers("auto") == best
    said = [r.getMessage() for r in caplog.records if "provider auto" in r.getMessage()]
    assert len(said) == 1 and best[0].replace("ExecutionProvider", "") in said[0]


def test_a_sharded_checkpoint_is_classified_from_all_its_shards(tmp_path, monkeypatch):
    """Phantom-Wan-14B ships as shards + an index: every shard is listed as a Wan DiT (its keys are read from all
    the shards' headers), none as unknown."""
    from idvideo_core.backbones.wan import files
    from idvideo_core.testing.tiny_wan import write_phantom14b_shards

    index = write_phantom14b_shards(tmp_path / "models" / "diffusion_models", shards=3)
    shards = sorted(index.parent.glob("Phantom_Wan_14B-*.safetensors"))
    assert len(shards) == 3
    assert [files.file_kind(s) for s in shards] == ["wan_dit"] * 3
