"""Every registered node describes itself the way ComfyUI shows it: category, display name, tooltips on every input
and output, a description, search aliases and a help page ``web/docs/<NodeClassName>.md`` (served by the frontend's
node help panel from ``/extensions/<pack>/docs/``).

The pack is imported the way ComfyUI imports it (its folder as a package), outside ComfyUI.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "comfyui"))
import idv_comfy_support as support

REPO = support.REPO_ROOT
DOCS = REPO / "web" / "docs"
DOC_SECTIONS = ("## Inputs", "## Outputs", "## Tips", "## Weights")


@pytest.fixture(scope="module")
def pack():
    return support.load_pack()


def _nodes(pack):
    return sorted(pack.NODE_CLASS_MAPPINGS.items())


def _inputs(cls):
    spec = cls.INPUT_TYPES()
    for section in ("required", "optional"):
        for name, value in (spec.get(section) or {}).items():
            yield section, name, value


def test_pack_registers_nodes(pack):
    assert len(pack.NODE_CLASS_MAPPINGS) >= 11
    assert pack.WEB_DIRECTORY == "./web"
    assert set(pack.NODE_DISPLAY_NAME_MAPPINGS) == set(pack.NODE_CLASS_MAPPINGS)


def test_every_node_is_fully_described(pack):
    problems = []
    for name, cls in _nodes(pack):
        if not str(getattr(cls, "CATEGORY", "")).startswith("IDVideo/"):
            problems.append(f"{name}: category {getattr(cls, 'CATEGORY', None)!r} is not under IDVideo/")
        display = pack.NODE_DISPLAY_NAME_MAPPINGS.get(name, "")
        if not display.strip() or display == name:
            problems.append(f"{name}: no display name")
        if len(str(getattr(cls, "DESCRIPTION", "")).strip()) < 40:
            problems.append(f"{name}: DESCRIPTION missing or too short")
        aliases = getattr(cls, "SEARCH_ALIASES", None)
        if not aliases or not all(isinstance(a, str) and a.strip() for a in aliases):
            problems.append(f"{name}: no SEARCH_ALIASES")
        for section, inp, value in _inputs(cls):
            opts = value[1] if len(value) > 1 and isinstance(value[1], dict) else {}
            if not str(opts.get("tooltip", "")).strip():
                problems.append(f"{name}.{inp} ({section}): no tooltip")
        tips = getattr(cls, "OUTPUT_TOOLTIPS", None)
        if tips is None or len(tips) != len(cls.RETURN_TYPES) or not all(str(t).strip() for t in tips):
            problems.append(f"{name}: OUTPUT_TOOLTIPS must give one tooltip per output")
        names = getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)
        if len(names) != len(cls.RETURN_TYPES):
            problems.append(f"{name}: RETURN_NAMES and RETURN_TYPES differ in length")
        if not callable(getattr(cls, cls.FUNCTION, None)):
            problems.append(f"{name}: FUNCTION {cls.FUNCTION!r} is not a method")
    assert not problems, "\n".join(problems)


def test_every_node_has_a_help_page(pack):
    problems = []
    for name, cls in _nodes(pack):
        page = DOCS / f"{name}.md"
        if not page.is_file():
            problems.append(f"{name}: {page.relative_to(REPO)} is missing")
            continue
        text = page.read_text(encoding="utf-8")
        if not text.startswith(f"# {pack.NODE_DISPLAY_NAME_MAPPINGS[name]}"):
            problems.append(f"{name}: the help page does not start with the display name as its title")
        for section in DOC_SECTIONS:
            if section not in text:
                problems.append(f"{name}: help page lacks '{section}'")
        documented = set(re.findall(r"^- \*\*([A-Za-z0-9_]+)\*\*", text, flags=re.MULTILINE))
        wanted = {inp for _, inp, _ in _inputs(cls)} | set(getattr(cls, "RETURN_NAMES", ()))
        if wanted - documented:
            problems.append(f"{name}: help page does not list {sorted(wanted - documented)}")
    assert not problems, "\n".join(problems)


def test_no_stray_help_pages(pack):
    stray = {p.stem for p in DOCS.glob("*.md")} - set(pack.NODE_CLASS_MAPPINGS)
    assert not stray, f"help pages for nodes that do not exist: {sorted(stray)}"
