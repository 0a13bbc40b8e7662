"""No shadowing: the pack imports its own ``idvideo_core`` even when a stale copy comes first on ``sys.path`` or was
imported before the pack, and warns that another copy is installed (issue 14, item 5)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import importlib.util, json, logging, sys
    records = []
    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())
    logging.getLogger("idvideo").addHandler(Keep())
    logging.getLogger("idvideo").setLevel(logging.INFO)
    if {preimport}:
        import idvideo_core            # the stale copy, imported before the pack (e.g. by another tool)
        assert getattr(idvideo_core, "DECOY", False)
    spec = importlib.util.spec_from_file_location("idvideo_pack", {init!r}, submodule_search_locations=[{root!r}])
    pack = importlib.util.module_from_spec(spec)
    sys.modules["idvideo_pack"] = pack
    spec.loader.exec_module(pack)
    import idvideo_core, idvideo_core.paths
    print(json.dumps({{"core": idvideo_core.__file__, "paths": idvideo_core.paths.__file__,
                      "decoy": getattr(idvideo_core, "DECOY", False), "nodes": sorted(pack.NODE_CLASS_MAPPINGS),
                      "log": records}}))
""")


def _decoy(tmp_path: Path) -> Path:
    pkg = tmp_path / "site-packages" / "idvideo_core"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("DECOY = True\n")
    (pkg / "paths.py").write_text("raise ImportError('the stale copy was imported')\n")
    return pkg.parent


@pytest.mark.parametrize("preimport", [False, True], ids=["decoy-first-on-path", "decoy-already-imported"])
def test_pack_imports_its_own_core_and_warns(tmp_path, preimport):
    site = _decoy(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(site), IDVIDEO_NO_COMFY="1", IDVIDEO_MODELS_DIR=str(tmp_path / "models"))
    script = SCRIPT.format(preimport=preimport, init=str(ROOT / "__init__.py"), root=str(ROOT))
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert not out["decoy"]
    assert Path(out["core"]).resolve() == (ROOT / "idvideo_core" / "__init__.py").resolve()
    assert Path(out["paths"]).resolve() == (ROOT / "idvideo_core" / "paths.py").resolve()
    assert "IDVSampler" in out["nodes"]
    warnings = [m for m in out["log"] if "another copy of idvideo_core" in m]
    assert len(warnings) == 1 and str(site / "idvideo_core") in warnings[0], out["log"]


def test_no_warning_without_another_copy(tmp_path):
    """Only the pack's own copy reachable (the venv's editable install hidden by -S-like isolation of site)."""
    env = dict(os.environ, IDVIDEO_NO_COMFY="1", IDVIDEO_MODELS_DIR=str(tmp_path / "models"))
    env.pop("PYTHONPATH", None)
    script = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'Editable' not in getattr(f, '__name__', "
              "type(f).__name__)]\n" + SCRIPT.format(preimport=False, init=str(ROOT / "__init__.py"), root=str(ROOT)))
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert not [m for m in out["log"] if "another copy" in m], out["log"]
