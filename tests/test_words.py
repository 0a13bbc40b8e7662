"""Words a creator reads (issue 14, item 4): node names in tooltips, help pages and error texts exist; messages use
the labels the UI shows; log lines have no formatting glitches."""
from __future__ import annotations

import ast
import logging
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

QUOTED = re.compile(r"['\"‘“`]((?:IDVideo|IDV) [^'\"’”`\n]+)['\"’”`]")
UNQUOTED = re.compile(r"\bIDVideo ((?:[A-Z][\w-]*|DiT)(?: (?:[A-Z][\w-]*|DiT|\(Concat-ID / Phantom\)))*)")
LOWER_NODE = re.compile(r"\bIDVideo (decoder|encoder|sampler|loader|combiner|extractor|concatenator|renderer)\b")
CLASS_NAME = re.compile(r"\b(IDV[A-Z][A-Za-z]+|IDVideoCombine)\b")


def _names(pack):
    display = set(pack.NODE_DISPLAY_NAME_MAPPINGS.values())
    short = {d.split(" (")[0] for d in display}
    return display | short, set(pack.NODE_CLASS_MAPPINGS)


def _tooltips(pack):
    for name, cls in pack.NODE_CLASS_MAPPINGS.items():
        yield f"{name}.DESCRIPTION", getattr(cls, "DESCRIPTION", "")
        for i, tip in enumerate(getattr(cls, "OUTPUT_TOOLTIPS", ()) or ()):
            yield f"{name} output {i}", tip
        for group in cls.INPUT_TYPES().values():
            for inp, spec in group.items():
                if isinstance(spec, tuple) and len(spec) > 1 and isinstance(spec[1], dict):
                    yield f"{name}.{inp}", str(spec[1].get("tooltip", ""))


def _help_pages():
    for page in sorted((ROOT / "web" / "docs").glob("*.md")):
        yield str(page.relative_to(ROOT)), page.read_text(encoding="utf-8")


def _source_strings():
    """Every string literal of the core and the nodes (error texts, log lines, fixes); f-strings by their parts."""
    files = sorted((ROOT / "idvideo_core").rglob("*.py")) + sorted((ROOT / "nodes").glob("*.py"))
    for f in files:
        if "testing" in f.parts:
            continue
        tree = ast.parse(f.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):
                text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
                yield f"{f.relative_to(ROOT)}:{node.lineno}", text
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                yield f"{f.relative_to(ROOT)}:{node.lineno}", node.value


def unknown_node_mentions(texts, display_names, class_names):
    """Mentions of nodes that do not exist. Unquoted ``IDVideo X Y`` phrases count as node names when they end in a
    node-kind word (Loader, Sampler, …: the last words of the registered names, plus Decoder/Encoder/Node), so log
    headers such as "IDVideo Wan DiT:" are not node names."""
    nouns = {d.split(" (")[0].split()[-1] for d in display_names} | {"Decoder", "Encoder", "Node"}
    bad = []
    for where, text in texts:
        for m in QUOTED.finditer(text):
            mention = m.group(1).rstrip(".")
            if not mention.startswith("IDVideo ") or "{" in mention:
                continue
            if not any(d == mention or d.startswith(mention + " (") for d in display_names):
                bad.append((where, mention))
        for m in UNQUOTED.finditer(text):
            phrase = "IDVideo " + m.group(1)
            if not any(w in nouns for w in phrase.split()[1:]):
                continue
            if not any(d.startswith(phrase) or phrase.startswith(d) for d in display_names):
                bad.append((where, phrase))
        bad += [(where, "IDVideo " + m.group(1)) for m in LOWER_NODE.finditer(text)]
        bad += [(where, m.group(1)) for m in CLASS_NAME.finditer(text) if m.group(1) not in class_names]
    return bad


def test_node_names_in_tooltips_help_and_errors_exist(pack):
    display, classes = _names(pack)
    texts = list(_tooltips(pack)) + list(_help_pages()) + list(_source_strings())
    assert len(texts) > 500
    assert unknown_node_mentions(texts, display, classes) == []


def test_the_checker_catches_a_made_up_node(pack):
    display, classes = _names(pack)
    texts = [("tooltip", "e.g. from the IDVideo decoder."), ("error", "Connect 'IDVideo Face Detector'."),
             ("help", "Use IDVFaceDetector first."), ("ok", "Connect 'IDVideo Face Loader' and IDVSampler."),
             ("unquoted", "then the IDVideo Video Decoder writes it"), ("log", "IDVideo Wan DiT: 30 layers")]
    assert sorted({w for w, _ in unknown_node_mentions(texts, display, classes)}) == ["error", "help", "tooltip", "unquoted"]


def test_no_face_error_names_the_ui_label(pack):
    """The no-face error asks for the option the Face Loader shows ('use whole image'), and that option works."""
    from idvideo_core.errors import NoFaceError
    from idvideo_core.faces.analyze import _no_face

    with pytest.raises(NoFaceError) as err:
        _no_face(None, __import__("numpy").zeros((64, 64, 3), "uint8"), 0, "error")
    options = pack.NODE_CLASS_MAPPINGS["IDVFaceLoader"].INPUT_TYPES()["required"]["on_no_face"][0]
    quoted = re.findall(r"'([^']+)'", str(err.value))
    assert "on_no_face" in quoted and "use whole image" in quoted and "use whole image" in options
    assert "whole_image" not in str(err.value)


def test_log_lines_have_no_format_glitches():
    """A literal '%%' in a message logged without arguments is printed as '%%'; the memory plan's first line is
    not repeated; a CPU plan does not call itself 'gpu on cpu'."""
    hits = []
    for where, text in _source_strings():
        # the bare literal "%%" is the escaping argument of .replace("%", "%%") (argparse help texts), not a message
        if "%%" in text and text != "%%" and not re.search(r"%[-\d.]*[sdfr]", text):
            hits.append(where)
    assert hits == []
    import torch

    from idvideo_core.memory.modes import resolve_mode

    text = resolve_mode("gpu", 10 ** 9, torch.device("cpu"), vram_state="cpu").describe()
    assert "gpu on cpu" not in text and text.count("IDVideo memory plan") == 1


def test_memory_plan_logged_once(caplog):
    """attach_memory logs the summary as is: one 'IDVideo memory plan:' line, not a header plus the summary's own."""
    import torch

    from idvideo_core.backbones.base import LoadedModel
    from idvideo_core.runtime import attach_memory

    model = LoadedModel(family="consisid", transformer=torch.nn.Sequential(torch.nn.Linear(4, 4)),
                        vae=torch.nn.Linear(2, 2), scheduler_config={}, device=torch.device("cpu"),
                        dtype=torch.float32)
    model.transformer.transformer_blocks = torch.nn.ModuleList([torch.nn.Linear(4, 4)])
    with caplog.at_level(logging.INFO, logger="idvideo"):
        attach_memory(model, "auto")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert text.count("IDVideo memory plan") == 1, text


def _combos(pack) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for cls in pack.NODE_CLASS_MAPPINGS.values():
        for group in cls.INPUT_TYPES().values():
            for inp, spec in group.items():
                if isinstance(spec, tuple) and isinstance(spec[0], (list, tuple)):
                    out.setdefault(inp, set()).update(str(v) for v in spec[0])
    return out


SET_TO = re.compile(r"'(\w+)' to '([^'{}]+)'|\b(\w+) ?= ?'([^'{}]+)'|\b(\w+)=([A-Za-z0-9_]+)\b")


def wrong_option_names(texts, combos):
    bad = []
    for where, text in texts:
        for m in SET_TO.finditer(text):
            name, value = next((m.group(i), m.group(i + 1)) for i in (1, 3, 5) if m.group(i))
            if name in combos and value not in combos[name]:
                bad.append((where, f"{name}={value}"))
    return bad


def test_messages_name_options_as_the_ui_shows_them(pack):
    combos = _combos(pack)
    assert "use whole image" in combos["on_no_face"]
    assert wrong_option_names([("x", "set 'on_no_face' to 'whole_image'"), ("y", "memory_mode=blockswap"),
                               ("z", "set 'on_no_face' to 'use whole image' or memory_mode=block_swap")],
                              combos) == [("x", "on_no_face=whole_image"), ("y", "memory_mode=blockswap")]
    texts = list(_tooltips(pack)) + list(_help_pages()) + list(_source_strings())
    assert wrong_option_names(texts, combos) == []
