"""``python -m idvideo_core generate``: the model family's template graph, run with the command line's values.

How it works, so the command line can never drift from the nodes:

* **flags come from the node schemas.** Every widget input of every pack node is a flag (``num_frames`` →
  ``--frames``, ``on_no_face`` → ``--on-no-face``, see :data:`FLAG_NAMES`), with the node's type, choices, range and
  tooltip. Unset flags keep the family template's value (``workflows/*.json``), i.e. what the node would run with.
* **one graph.** The family's template is converted to an API prompt (``workflow.ui_to_api``), its Load Image nodes
  are replaced by ``--image`` (the face photo(s), repeated = a batch of references) and ``--subject`` (garments,
  objects: the concatenator's subject inputs in order), the flags overwrite widget values, and the nodes run in
  dependency order exactly as ComfyUI would call them. Wan / Phantom / Concat-ID are reached with ``--family`` or
  detected from ``--model``.
* **everything is checked before any model weights are read**: every option's range and choices (the workflow
  checker's rule), output formats, crf, frame rate, file prefix and a test write in the output folder, that every
  image opens, that every model file is present and complete (``setup_check``: the loaders' header checks), the size
  and frame count against the model's own config, and then the faces (the face models are small: they load and
  detect before the big model is read).
* errors name flags here and widget names inside ComfyUI (one :class:`~idvideo_core.errors.IDVideoError`, two
  renderings); one header, one progress bar per stage, and at the end the written files and a JSON summary
  (settings, seed, model files with sizes, time per stage, warnings).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .errors import IDVideoError, InputError, MissingModelError, option

log = logging.getLogger("idvideo")

#: node input name → flag (without --) where the flag reads better than the widget name. Others: ``a_b`` → ``--a-b``.
FLAG_NAMES = {"num_frames": "frames", "use_dynamic_cfg": "dynamic_cfg", "frame_rate": "fps",
              "filename_prefix": "prefix", "index": "face_index", "canvas": "kps_canvas", "base_folder": "model",
              "image": "image"}
#: node inputs with no flag of their own, and why (the schema test checks every other widget input has one).
NOT_FLAGS = {"save_output": "the command line always writes into --output"}
#: inputs whose value is a model name or path (their combos list files on disk, so any name or path is accepted).
FILE_INPUTS = ("model", "base_folder", "dit", "vae", "text_encoder", "weights")
#: flags that are not node inputs.
OWN_FLAGS = ("image", "subject", "family", "smoke", "output", "save_latents", "summary", "check_only", "comfyui",
             "extra_model_paths_config", "lora")
SMOKE_LABEL = "IDVideo smoke test: random weights"
IMAGE_NODE = "IDV_CLI_IMAGE"


# ------------------------------------------------------------------------------------------------ flags ↔ widgets
def flag_of(name: str) -> str:
    return "--" + FLAG_NAMES.get(name, name).replace("_", "-")


def render(err: IDVideoError) -> str:
    """The command line's rendering of an error: options read as flags."""
    text = err.render(flag_of)
    return text if text.startswith("IDVideo") else f"IDVideo: {text}"


@dataclass
class Option:
    """One flag and the node inputs it sets (``width`` sets the sampler's, the extractor's and the concatenator's)."""

    name: str                                  # the argparse dest (the first node input's name)
    specs: list = field(default_factory=list)  # (node type, InputSpec)

    @property
    def flag(self) -> str:
        return flag_of(self.name)

    @property
    def type(self) -> str:
        return self.specs[0][1].type

    @property
    def choices(self) -> Optional[list]:
        if self.name in FILE_INPUTS or self.type != "COMBO":
            return None
        out: list = []
        for _, spec in self.specs:
            out += [c for c in (spec.choices or ()) if c not in out]
        return out


def generate_node_types() -> set[str]:
    """The pack nodes of the templates ``generate`` runs (each family's plainest one; scoring nodes have the ``score``
    command and ``--seeds``/``--score-protocol``)."""
    from .setup_check import family_templates

    types: set[str] = set()
    for p in family_templates().values():
        if p is not None:
            types |= {n.get("type") for n in json.loads(p.read_text(encoding="utf-8")).get("nodes", [])}
    return types


def node_options(classes=None) -> dict[str, Option]:
    """Every widget input of every pack node the templates use, grouped by flag."""
    from .setup_check import pack_node_classes
    from .workflow.schema import node_schemas

    schemas = node_schemas(classes or pack_node_classes())
    used = generate_node_types()
    out: dict[str, Option] = {}
    for node_type, schema in schemas.items():
        if node_type not in used:
            continue
        for spec in schema.inputs:
            if not spec.is_widget or spec.name in NOT_FLAGS:
                continue
            dest = FLAG_NAMES.get(spec.name, spec.name)
            out.setdefault(dest, Option(dest)).specs.append((node_type, spec))
    return out


def _key(text: str) -> str:
    return re.sub(r"[\s_\-]+", " ", str(text).strip().lower())


def choice_type(opt: Option):
    """Accept a choice as written in the node, or in any case with - or _ for spaces, or without its "(...)" note."""
    choices = opt.choices

    def convert(value: str):
        for c in choices:
            if _key(c) == _key(value) or _key(str(c).split(" (")[0]) == _key(value):
                return c
        return value      # validated later, with the flag named in the message
    return convert


def add_arguments(g: argparse.ArgumentParser, classes=None) -> None:
    """The ``generate`` flags: inputs, model choice, outputs, then one flag per node widget input."""
    from .setup_check import family_templates

    g.add_argument("--image", type=Path, action="append", default=[],
                   help="Photo of the person. Repeat for several people/references (Concat-ID, Phantom).")
    g.add_argument("--subject", type=Path, action="append", default=[],
                   help="A subject reference (garment, object) for Phantom / Concat-ID, in order. Repeatable.")
    g.add_argument("--family", help="Model family: " + ", ".join(family_templates()) +
                   " (default: read from --model).")
    g.add_argument("--smoke", action="store_true", help="Run a tiny random checkpoint end to end (install check).")
    g.add_argument("--output", type=Path, default=Path("output"), help="Output folder (default ./output).")
    g.add_argument("--save-latents", action="store_true",
                   help="Also save the final latents (before decoding) as <prefix>_NNNNN_latents.safetensors.")
    g.add_argument("--summary", type=Path, help="Also write the JSON summary to this file.")
    g.add_argument("--check-only", action="store_true",
                   help="Check every input, option and model file, then stop before loading any weights.")
    g.add_argument("--no-tiling", dest="vae_tiling", action="store_const", const=False,
                   help="Same as --no-vae-tiling.")
    g.add_argument("--lora", action="append", default=[], metavar="FILE[:STRENGTH]",
                   help="A LoRA .safetensors to merge for this run (repeatable; strength 1 if omitted).")
    for dest, opt in node_options(classes).items():
        if dest in OWN_FLAGS:
            continue                     # --family: the Wan loader's labels plus every other family
        spec = opt.specs[0][1]
        tip = spec.options.get("tooltip", "")
        nodes = ", ".join(sorted({t for t, _ in opt.specs}))
        helptext = f"{tip} [{nodes}.{spec.name}]".replace("%", "%%")
        kwargs: dict[str, Any] = {"dest": dest, "default": None, "help": helptext}
        if dest == "format":
            kwargs.update(action="append", help=helptext + " Repeat to write several formats (e.g. h264-mp4 and "
                          "ffv1-mkv, png-sequence for lossless frames).")
        elif opt.type == "BOOLEAN":
            kwargs["action"] = argparse.BooleanOptionalAction
        elif opt.type == "INT":
            kwargs["type"] = int
        elif opt.type == "FLOAT":
            kwargs["type"] = float
        elif opt.choices is not None:
            kwargs["type"] = choice_type(opt)
            kwargs["metavar"] = "{" + ",".join(str(c) for c in opt.choices) + "}"
        if opt.type == "COMBO" and dest in FILE_INPUTS:
            kwargs["help"] = {"model": "ConsisID-preview or Wan2.1-T2V-1.3B-Diffusers folder (a path, or a name "
                                       "under models/consisid or models/wan).",
                              "dit": "DiT weights for Wan families: Concat-ID .pt, Phantom .pth, Wan .safetensors "
                                     "(a path or a name under models/concatid, models/diffusion_models).",
                              "weights": "Concat-ID-CogVideoX weights: a SAT folder (single-identity, two-identities) "
                                         "or a converted .safetensors (a path or a name under models/concatid).",
                              "vae": "VAE file (default: the base folder's vae/).",
                              "text_encoder": "Text encoder file (default: the base folder's text_encoder/)."}.get(dest,
                                                                                                        helptext)
        g.add_argument(flag_of(dest), **kwargs)


# ------------------------------------------------------------------------------------------------ the graph
class CliImage:
    """A stand-in for ComfyUI's Load Image in the template: the images given on the command line."""

    RETURN_TYPES = ("IMAGE", "MASK")
    FUNCTION = "load"
    images: dict = {}

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": (["example.png"], {"image_upload": True})}}

    def load(self, image, role="image", index=0):
        import torch

        img = self.images[(role, index)]
        return img, torch.zeros(img.shape[0], img.shape[1], img.shape[2])


def load_image(path: Path, flag: str = "image"):
    """One photo as a ComfyUI IMAGE [1, H, W, 3] float (EXIF orientation applied; 16-bit gray scaled to 8 bit)."""
    import numpy as np
    import torch
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as raw:
            img = ImageOps.exif_transpose(raw)
            img.load()
        if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            # PIL's convert("RGB") clips 16/32-bit gray to 255 (a white image); scale to 8 bit instead.
            arr = np.asarray(img, dtype=np.float32)
            top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
            log.warning("IDVideo: %s is a %s-bit gray image; converted to RGB.", path, 16 if top > 255 else 8)
            arr = np.clip(arr / top, 0, 1)
            return torch.from_numpy(np.repeat(arr[:, :, None], 3, axis=2))[None]
        img = img.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(f"Cannot read the image {path} ({option(flag)}): {exc}", "Give a JPEG or PNG photo.") \
            from exc
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)[None]


def _batch(images: list):
    """Several photos as one IMAGE batch; different sizes are padded (bottom/right, black) to the largest."""
    import torch

    if len(images) == 1:
        return images[0]
    h = max(i.shape[1] for i in images)
    w = max(i.shape[2] for i in images)
    if any(i.shape[1:3] != (h, w) for i in images):
        log.info("IDVideo: the --image photos differ in size; padded to %dx%d to batch them.", w, h)
    out = torch.zeros(len(images), h, w, 3)
    for n, i in enumerate(images):
        out[n, :i.shape[1], :i.shape[2]] = i[0]
    return out


@dataclass
class Plan:
    family: str
    template: str
    workflow: dict
    prompt: dict
    classes: dict
    model_files: list = field(default_factory=list)     # setup_check.FileReport
    warnings: list = field(default_factory=list)
    formats: list = field(default_factory=list)


def _links_to(prompt: dict, target: str) -> list[tuple[str, str]]:
    return [(nid, name) for nid, n in prompt.items() for name, v in n["inputs"].items()
            if isinstance(v, list) and len(v) == 2 and v[0] == target]


def _detect_family(args) -> str:
    from .setup_check import family_templates

    families = family_templates()
    if args.family:
        labels = _wan_labels()
        fam = labels.get(args.family, args.family)
        if fam not in families:
            raise InputError(f"Unknown model family ({option('family')}) '{args.family}'.",
                             f"Choose one of: {', '.join(families)}.")
        return fam
    if args.model is None:
        from . import paths

        raise MissingModelError(f"a model folder ({option('model')})",
                                [str(p) for p in paths.search_dirs("consisid") + paths.search_dirs("wan")],
                                paths.PUBLISHED["consisid"] + "; " + paths.PUBLISHED["wan"],
                                f"Pass {option('model')} path/to/ConsisID-preview (or a Wan2.1 folder with "
                                f"{option('family')}).")
    from .backbones.detect import family_of_path

    path = _model_path(args.model, ("consisid", "wan"))
    fam = family_of_path(path) if path is not None else "unknown"
    if fam in families:
        return fam
    if fam == "unknown":
        return "consisid"          # the ConsisID loader's own check names what is wrong with the folder
    raise InputError(f"{args.model} is a {fam} model folder; say which method's weights to run on it with "
                     f"{option('family')}.", f"Add {option('family')} " + " or ".join(
                         f for f in families if f != "consisid") + f" (and {option('dit')} for its DiT file).")


def _wan_labels() -> dict:
    from .setup_check import _module_attr

    return _module_attr("IDVWanModelLoader", "FAMILY_LABELS", {})


def _model_path(value: str, keys) -> Optional[Path]:
    from . import paths

    p = Path(value).expanduser()
    if p.exists():
        return p.resolve()
    for key in keys:
        for c in paths.model_folder_candidates(key, value):
            if c.exists():
                return c
    return None


def _file_value(name: str, value: str) -> str:
    """A file flag given as a path: its folder joins the search for that loader input, the name is passed on."""
    from . import paths
    from .runtime import WAN_FILE_KEYS

    p = Path(value).expanduser()
    if name in WAN_FILE_KEYS and (p.is_absolute() or len(p.parts) > 1 or p.exists()):
        paths.add_search_folder(WAN_FILE_KEYS[name][0], p.resolve().parent, flag_of(name))
        return p.name
    return value


def build_plan(args) -> Plan:
    """Everything checked, nothing loaded: the family's template with the command line applied."""
    from .setup_check import family_template_table, family_templates, pack_node_classes
    from .workflow import ui_to_api

    classes = {**pack_node_classes(), "LoadImage": CliImage, IMAGE_NODE: CliImage}
    family = _detect_family(args)
    entry = family_template_table()[family]
    tpl = entry.path
    if tpl is None:
        raise InputError(f"No template runs the '{family}' family from the command line yet.",
                         f"Use {option('family')} " + " or ".join(f for f, t in family_templates().items() if t))
    if entry.borrowed and not getattr(args, "dit", None):
        raise InputError(f"No template is made for the {family} family, so its DiT file must be named.",
                         f"Add {option('dit')} (e.g. second_stage_adaln.pt for Concat-ID-Wan) and check "
                         f"{option('face_mode')}.")
    workflow = json.loads(tpl.read_text(encoding="utf-8"))
    prompt = ui_to_api(workflow, classes)
    plan = Plan(family, tpl.stem, workflow, prompt, classes)
    opts = node_options()
    _apply_flags(plan, args, opts)
    _wire_images(plan, args)
    check_values(plan, opts, args)
    check_outputs(plan, args)
    check_model_files(plan)
    check_clip(plan)
    return plan


def _apply_flags(plan: Plan, args, opts: dict[str, Option]) -> None:
    for node in plan.prompt.values():
        ins = node["inputs"]
        for name in list(ins):
            if isinstance(ins[name], list):
                continue
            dest = FLAG_NAMES.get(name, name)
            value = getattr(args, dest, None)
            if value is None or dest == "format":
                continue
            if name in ("model", "base_folder"):
                key = "consisid" if name == "model" else "wan"
                found = _model_path(value, (key,))
                if found is not None:     # its folder is searched like a models/<key> folder (face_encoder/ too)
                    from . import paths

                    paths.add_search_folder(key, found.parent, flag_of(name))
                    value = str(found)
            elif name in FILE_INPUTS:
                value = _file_value(name, value)
            ins[name] = value
        if node["class_type"] == "IDVideoCombine":
            ins["save_output"] = True
    if args.format:
        plan.formats = list(dict.fromkeys(args.format))
    else:
        plan.formats = [n["inputs"].get("format") for n in plan.prompt.values()
                        if n["class_type"] == "IDVideoCombine"][:1] or ["h264-mp4"]
    # the family template picks the Wan loader's family: keep it in step with --family
    label = {v: k for k, v in _wan_labels().items()}.get(plan.family)
    for node in plan.prompt.values():
        if label is not None and "family" in node["inputs"]:
            node["inputs"]["family"] = label


def _wire_images(plan: Plan, args) -> None:
    """--image photos feed the face loader (one batch); --subject photos feed the concatenator's subject inputs."""
    prompt = plan.prompt
    loads = [nid for nid, n in prompt.items() if n["class_type"] == "LoadImage"]
    subject_slots: list[tuple[str, str]] = []
    for nid, n in prompt.items():
        subject_slots += [(nid, name) for name in sorted(_input_names(plan, n["class_type"]))
                          if re.fullmatch(r"subject_\d+", name)]
    if not args.image:
        raise InputError(f"No photo given ({option('image')}).", f"Pass {option('image')} path/to/photo.jpg")
    if args.subject and not subject_slots:
        raise InputError(f"The {plan.family} family takes no subject images ({option('subject')}).",
                         f"Drop {option('subject')}, or use {option('family')} phantom_wan for garments/objects.")
    if len(args.subject) > len(subject_slots):
        raise InputError(f"{len(args.subject)} subject images given ({option('subject')}); the concatenator takes "
                         f"{len(subject_slots)}.", f"Give at most {len(subject_slots)}.")
    for nid in loads:
        for target, name in _links_to(prompt, nid):
            if not re.fullmatch(r"subject_\d+", name):
                prompt[target]["inputs"][name] = ["cli_image", 0]
            else:
                del prompt[target]["inputs"][name]
        del prompt[nid]
    images = {}
    batch = [load_image(p, "image") for p in args.image]
    images[("image", 0)] = _batch(batch)
    prompt["cli_image"] = {"class_type": IMAGE_NODE, "inputs": {"image": "cli", "role": "image", "index": 0}}
    for k, path in enumerate(args.subject):
        images[("subject", k)] = load_image(path, "subject")
        nid, name = subject_slots[k]
        prompt[f"cli_subject_{k}"] = {"class_type": IMAGE_NODE,
                                      "inputs": {"image": "cli", "role": "subject", "index": k}}
        prompt[nid]["inputs"][name] = [f"cli_subject_{k}", 0]
    CliImage.images = images


def _input_names(plan: Plan, class_type: str) -> list[str]:
    cls = plan.classes[class_type]
    spec = cls.INPUT_TYPES()
    return [n for group in ("required", "optional") for n in spec.get(group, {})]


def check_values(plan: Plan, opts: dict[str, Option], args) -> None:
    """Every widget value against its node's range and choices (the workflow checker's own rule)."""
    from .workflow.check import _value_problem
    from .workflow.schema import node_schemas

    schemas = node_schemas({k: v for k, v in plan.classes.items() if k.startswith("IDV") and k != IMAGE_NODE})
    for node in plan.prompt.values():
        schema = schemas.get(node["class_type"])
        if schema is None:
            continue
        for name, value in node["inputs"].items():
            spec = schema.input(name)
            if spec is None or isinstance(value, list) or name in FILE_INPUTS or not spec.is_widget:
                continue
            if name == "format":
                continue                 # checked for each --format in check_outputs
            why = _value_problem(spec, value)
            if why:
                shown = f"one of {', '.join(map(str, spec.choices))}" if spec.choices else \
                    f"{spec.options.get('min')}..{spec.options.get('max')}"
                raise InputError(f"{option(name)} {why}.", f"Use {shown}.")


def check_outputs(plan: Plan, args) -> None:
    """Formats, crf, frame rate, file prefix and a test write in the output folder, before anything loads."""
    import uuid

    from . import video
    from .errors import OutputWriteError

    combine = next(n["inputs"] for n in plan.prompt.values() if n["class_type"] == "IDVideoCombine")
    for name in plan.formats:
        fmt = video.get_format(name)
        video._check_crf(fmt, combine.get("crf", -1))
    video._check_fps(combine.get("frame_rate"))
    out_dir = Path(args.output).expanduser()
    target = video.resolve_target(combine.get("filename_prefix", "IDVideo"), out_dir)
    try:
        video._prepare_folder(target, out_dir)
        probe = target.folder / f".idvideo-write-test-{uuid.uuid4().hex[:8]}"
        with video._open_output_file(probe) as fh:
            fh.write(b"ok")
        probe.unlink()
    except OutputWriteError as err:
        raise OutputWriteError(f"The output folder ({option('output')}) cannot be written: {err.problem}",
                               err.fix) from err
    except OSError as exc:
        raise video._unwritable(target.folder, exc) from exc


def check_model_files(plan: Plan) -> None:
    """Every file the loaders will open: present, complete, the right kind (setup_check, header checks only)."""
    from .setup_check import evaluate, requirements_of

    nodes = [(n["class_type"], n["inputs"]) for n in plan.prompt.values() if n["class_type"] in plan.classes]
    reqs, _ = requirements_of(nodes)
    bad = []
    for r in reqs:
        rep = evaluate(r, quick=True)
        plan.model_files.append(rep)
        if rep.blocking:
            bad.append(rep)
    if bad:
        lines = []
        for rep in bad:
            lines.append(f"  - {rep.what}: {rep.status}" + (f" ({rep.problem})" if rep.problem else ""))
            if rep.put_at:
                lines.append(f"      put it at: {rep.put_at}")
            lines.append(f"      published at: {rep.published}")
        raise IDVideoError(
            f"The {plan.family} model files are not all usable (nothing was loaded):\n" + "\n".join(lines),
            "Fix the files listed (or choose others with " + ", ".join(
                option(n) for n in sorted({k for _, ins in nodes for k in ins if k in FILE_INPUTS})) +
            f"), then check with: python -m idvideo_core models --model {plan.family}")


def check_clip(plan: Plan) -> None:
    """Size and frame count against the model's own config (read from config.json, not the weights)."""
    from .backbones.preflight import check_clip as family_check

    loader = next((n["inputs"] for n in plan.prompt.values() if n["class_type"].endswith("ModelLoader")
                   and n["class_type"] != "IDVFaceModelsLoader"), {})
    from .backbones.registry import get

    sampler = next(n["inputs"] for n in plan.prompt.values() if n["class_type"] == "IDVSampler")
    d = get(plan.family).defaults             # 0 = auto on the sampler: the family's values (issue 14)
    frames, warnings = family_check(plan.family, loader, sampler["width"], sampler["height"],
                                    sampler["num_frames"] or d.num_frames, sampler["steps"], sampler["cfg"] or d.cfg)
    plan.warnings += warnings
    for w in warnings:
        log.warning("IDVideo: %s", w)
    if sampler["num_frames"]:
        sampler["num_frames"] = frames


# ------------------------------------------------------------------------------------------------ running
def _is_model_loader(plan: Plan, class_type: str) -> bool:
    return "IDV_MODEL" in getattr(plan.classes.get(class_type), "RETURN_TYPES", ())


def run_order(plan: Plan) -> list[str]:
    """Dependency order, with the big model loaders as late as possible: faces are found before any DiT is read."""
    prompt = plan.prompt
    deps = {nid: [v[0] for v in n["inputs"].values() if isinstance(v, list) and len(v) == 2 and v[0] in prompt]
            for nid, n in prompt.items()}
    heavy: dict[str, bool] = {}

    def needs_model(nid):
        if nid not in heavy:
            heavy[nid] = _is_model_loader(plan, prompt[nid]["class_type"]) or any(needs_model(d) for d in deps[nid])
        return heavy[nid]

    order: list[str] = []

    def visit(nid):
        if nid in order:
            return
        for d in deps[nid]:
            visit(d)
        order.append(nid)

    for nid in sorted(prompt, key=needs_model):
        visit(nid)
    return order


def lora_arg(item: str) -> tuple[str, float]:
    """``FILE[:STRENGTH]`` → (file, strength); a colon not followed by a number is part of the path."""
    file, sep, tail = item.rpartition(":")
    if sep:
        try:
            return file, float(tail)
        except ValueError:
            pass
    return item, 1.0


def _with_loras(model, loras: list[str]):
    from .lora import with_lora_file

    for item in loras:
        file, strength = lora_arg(item)
        model, report = with_lora_file(model, Path(file).expanduser(), strength)
        print(report)
    return model


# Node outputs never reused between runs: they write files or carry the run's own images.
UNCACHED = ("IDVideoCombine", IMAGE_NODE)


def execute(plan: Plan, timings: dict, smoke: bool = False, loras: Optional[list] = None,
            cache: Optional[dict] = None) -> dict:
    """Run the graph; each node's time goes to ``timings`` under its display name.

    ``cache`` (kept by the caller across runs of the same command, e.g. one run per seed): a node whose class and
    inputs, followed up the graph, are those of an earlier run gives that run's outputs again instead of running —
    ComfyUI's own rule, so with ``--seeds`` the models load and the identity is encoded once, and only the sampler
    and what follows it run per seed."""
    import copy

    names = _display_names()
    done: dict[str, tuple] = {}
    signature: dict[str, str] = {}
    api_copy = copy.deepcopy({k: v for k, v in plan.prompt.items() if not k.startswith("cli_")})
    for nid in run_order(plan):
        node = plan.prompt[nid]
        ctype = node["class_type"]
        cls = plan.classes[ctype]
        signature[nid] = repr((ctype, sorted(
            (name, ("link", signature.get(v[0], v[0]), v[1]) if isinstance(v, list) and len(v) == 2
             and isinstance(v[0], str) and v[0] in plan.prompt else ("value", repr(v)))
            for name, v in node["inputs"].items())))
        key = signature[nid]
        if cache is not None and ctype not in UNCACHED and key in cache:
            done[nid] = cache[key]
            continue
        kwargs = {}
        for name, value in node["inputs"].items():
            kwargs[name] = done[value[0]][value[1]] if isinstance(value, list) and len(value) == 2 and \
                isinstance(value[0], str) and value[0] in plan.prompt else value
        if ctype == IMAGE_NODE:
            kwargs = {"image": None, "role": node["inputs"]["role"], "index": node["inputs"]["index"]}
        hidden = cls.INPUT_TYPES().get("hidden", {}) if ctype != IMAGE_NODE else {}
        if "unique_id" in hidden:
            kwargs["unique_id"] = nid
        if "prompt" in hidden:
            kwargs["prompt"] = api_copy
        fn = getattr(cls(), cls.FUNCTION)
        start = time.perf_counter()
        if ctype == "IDVideoCombine":
            results = []
            for fmt in plan.formats:
                out = fn(**dict(kwargs, format=fmt))
                results.append(tuple(out["result"]) if isinstance(out, dict) else tuple(out))
            done[nid] = results[0]
            done[nid + ":all"] = tuple(r[2] for r in results)
        else:
            out = fn(**kwargs)
            done[nid] = tuple(out["result"]) if isinstance(out, dict) else tuple(out)
            if loras and _is_model_loader(plan, ctype):
                done[nid] = (_with_loras(done[nid][0], loras),) + done[nid][1:]
            if smoke and ctype == "IDVSampler":
                done[nid] = (_label(done[nid][0], SMOKE_LABEL),) + done[nid][1:]
        if ctype != IMAGE_NODE:
            stage = names.get(ctype, ctype)
            timings[stage] = round(timings.get(stage, 0.0) + time.perf_counter() - start, 3)
        if cache is not None and ctype not in UNCACHED:
            cache[key] = done[nid]
    return done


def _display_names() -> dict:
    from .setup_check import pack_node_classes

    pack_node_classes()
    return getattr(sys.modules.get("idvideo_pack_nodes"), "NODE_DISPLAY_NAME_MAPPINGS", {})


def _label(frames, text: str):
    import cv2
    import numpy as np
    import torch

    out = []
    for f in frames.numpy():
        img = np.ascontiguousarray((f * 255).astype(np.uint8))
        scale = max(img.shape[1] / 640, 0.25)
        cv2.putText(img, text, (4, max(int(14 * scale), 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.45 * scale,
                    (255, 255, 255), 1, cv2.LINE_AA)
        out.append(img.astype(np.float32) / 255)
    return torch.from_numpy(np.stack(out))


class _OutsideComfyNotes(logging.Filter):
    """Notes that only matter inside ComfyUI (e.g. the combiner's empty core VIDEO output) stay out of the console."""

    def filter(self, record):
        return "comfy_api is not available" not in record.getMessage()


class _WarningLog(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage().removeprefix("IDVideo: "))


def _save_latents(latents: list, plan: Plan, args) -> Optional[Path]:
    from safetensors.torch import save_file

    from . import video

    if not latents:
        return None
    combine = next(n["inputs"] for n in plan.prompt.values() if n["class_type"] == "IDVideoCombine")
    target = video.resolve_target(combine.get("filename_prefix", "IDVideo"), Path(args.output))
    n = video.next_counter(target.folder, target.name)
    tensors = {"latents" if len(latents) == 1 else f"latents_{i}": t.contiguous() for i, t in enumerate(latents)}
    sampler = next(n_["inputs"] for n_ in plan.prompt.values() if n_["class_type"] == "IDVSampler")
    meta = {"family": plan.family, "seed": str(sampler.get("seed")), "layout": "[batch, channels, frames, h, w]"
            if latents[0].ndim == 5 else str(tuple(latents[0].shape))}
    while True:
        path = target.folder / f"{target.name}_{n:0{video.COUNTER_DIGITS}d}_latents.safetensors"
        if not path.exists():
            break
        n += 1
    save_file(tensors, str(path), metadata=meta)
    return path


def _smoke_setup(args) -> None:
    import tempfile

    if getattr(args, "_smoke_ready", False):
        return
    args._smoke_ready = True

    from .testing import build_consisid_folder
    from .testing.tiny_consisid import TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH

    model_dir = Path(tempfile.mkdtemp(prefix="idvideo-smoke-")) / "ConsisID-smoke"
    print(f"Writing a tiny random ConsisID checkpoint to {model_dir} ...")
    build_consisid_folder(model_dir)
    args.model, args.family = str(model_dir), "consisid"
    args.width, args.height, args.frames = TINY_WIDTH, TINY_HEIGHT, TINY_FRAMES
    args.steps = min(args.steps or 4, 4)
    args.on_no_face = args.on_no_face or "use whole image"
    if not args.image:
        import insightface

        args.image = [Path(insightface.__file__).parent / "data" / "images" / "Tom_Hanks_54745.png"]


def header(plan: Plan) -> str:
    s = next(n["inputs"] for n in plan.prompt.values() if n["class_type"] == "IDVSampler")
    def auto(v):
        return v or "auto"

    return (f"IDVideo {plan.family} (template {plan.template}): {auto(s['width'])}x{auto(s['height'])}, "
            f"{auto(s['num_frames'])} frames, {s['steps']} steps, cfg {auto(s['cfg'])}, seed {s['seed']} -> "
            f"{', '.join(plan.formats)}")


def run(args) -> dict:
    """Check everything, then load and generate; returns the JSON summary (also printed by :func:`main`)."""
    from . import paths, runtime

    paths.use_comfyui(getattr(args, "comfyui", None), getattr(args, "extra_model_paths_config", None) or ())
    paths.clear_search_folders()
    if args.smoke:
        _smoke_setup(args)
    os.environ["IDVIDEO_OUTPUT_DIR"] = str(Path(args.output).expanduser().resolve())
    warn = _WarningLog()
    logging.getLogger("idvideo").addHandler(warn)
    quiet = _OutsideComfyNotes()
    for h in logging.getLogger().handlers:
        h.addFilter(quiet)
    timings: dict[str, float] = {}
    try:
        start = time.perf_counter()
        plan = build_plan(args)
        timings["checks"] = round(time.perf_counter() - start, 3)
        print(header(plan), flush=True)
        if args.check_only:
            outputs, latents_path = [], None
        else:
            with runtime.capture_latents() as latents:
                done = execute(plan, timings, smoke=args.smoke, loras=list(getattr(args, "lora", None) or []),
                               cache=getattr(args, "node_cache", None))
            combine = next(k for k, n in plan.prompt.items() if n["class_type"] == "IDVideoCombine")
            outputs = list(done[combine + ":all"])
            latents_path = _save_latents(latents, plan, args) if args.save_latents else None
    finally:
        logging.getLogger("idvideo").removeHandler(warn)
        for h in logging.getLogger().handlers:
            h.removeFilter(quiet)
    sampler = next(n["inputs"] for n in plan.prompt.values() if n["class_type"] == "IDVSampler")
    settings = {f"{nid} {n.get('_meta', {}).get('title', n['class_type'])}": {
        k: v for k, v in n["inputs"].items() if not isinstance(v, list)}
        for nid, n in plan.prompt.items() if not nid.startswith("cli_")}
    summary = {
        "family": plan.family, "template": plan.template, "seed": sampler.get("seed"),
        "images": [str(p) for p in args.image], "subjects": [str(p) for p in args.subject],
        "outputs": [str(p) for p in outputs] + ([str(latents_path)] if latents_path else []),
        "settings": settings,
        "model_files": [{"what": f.what, "path": f.path, "size_bytes": f.size_bytes, "format": f.format,
                         "dtype": f.dtype} for f in plan.model_files],
        "timings_s": timings,
        "warnings": list(dict.fromkeys(warn.messages)),
    }
    return summary


def console_progress(total: int, desc: str):
    """One bar per stage: tqdm on a terminal; otherwise a single line when the stage ends (no redraw spam)."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(total=total, desc=desc or "IDVideo", unit="step", leave=True, file=sys.stderr)
    return _LineProgress(total, desc)


class _LineProgress:
    def __init__(self, total: int, desc: str):
        self.total, self.desc, self.n, self.t0, self.closed = total, desc or "IDVideo", 0, time.perf_counter(), False

    def update(self, n: int = 1) -> None:
        self.n += n

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            print(f"{self.desc}: {self.n}/{self.total} in {time.perf_counter() - self.t0:.1f} s", file=sys.stderr,
                  flush=True)


def _quiet_library_bars() -> None:
    """diffusers/transformers draw their own loading bars (shards, weights); the CLI shows one bar per stage."""
    import importlib

    for mod in ("diffusers.utils.logging", "transformers.utils.logging"):
        try:
            importlib.import_module(mod).disable_progress_bar()
        except Exception:  # noqa: BLE001 - an older library without the switch just keeps its bar
            pass


def _report(summary: dict, args) -> None:
    text = json.dumps(summary, indent=2, default=str)
    if args.summary:
        Path(args.summary).write_text(text + "\n", encoding="utf-8")
    for p in summary["outputs"]:
        print(f"Saved {p}")
    print(text)


def _generate_and_report(args) -> dict:
    if sys.stderr.isatty():
        from tqdm.contrib.logging import logging_redirect_tqdm

        with logging_redirect_tqdm(loggers=[logging.getLogger("idvideo")]):
            summary = run(args)
    else:
        summary = run(args)
    _report(summary, args)
    return summary


def _best_of(args, seeds: list[int]) -> Path:
    """``--seeds`` / ``--num-seeds`` (idvideo_core.evaluate): one run per seed, scored against the first --image."""
    import copy

    from .evaluate.cli import best_of_main

    images = list(args.image)
    shim = copy.copy(args)
    shim.image = images[0] if images else None
    shim.provider = args.provider or "auto (best available)"   # the node's label; the scorer reads it too
    node_cache: dict = {}          # loaders, faces, text and identity run once; the sampler once per seed

    def generate_one(a) -> Path:
        b = copy.copy(a)
        b.image = images
        b.node_cache = node_cache
        summary = _generate_and_report(b)
        videos = [Path(p) for p in summary["outputs"] if Path(p).is_file() and not p.endswith(".safetensors")]
        if not videos:
            raise InputError(f"Scoring several seeds needs a video output, not only {option('format')} "
                             "png-sequence.", f"Add {option('format')} h264-mp4 (or ffv1-mkv).")
        return videos[0]

    return best_of_main(shim, generate_one, seeds)


def main(args) -> int:
    from . import bridge

    bridge.set_console_progress(console_progress)
    _quiet_library_bars()
    try:
        seeds = None
        if getattr(args, "seeds", None) or getattr(args, "num_seeds", None) or getattr(args, "keep_best", False):
            from .evaluate.cli import seeds_of

            if args.seed is None:      # the node's default seed is where --num-seeds counts from
                args.seed = node_options()["seed"].specs[0][1].options.get("default", 0)
            seeds = seeds_of(args)
        if seeds:
            _best_of(args, seeds)
        else:
            _generate_and_report(args)
    except IDVideoError as err:
        print("\n" + render(err), file=sys.stderr)
        return 2
    except bridge.GenerationCancelled:
        print("\nIDVideo: cancelled.", file=sys.stderr)
        return 130
    finally:
        bridge.set_console_progress(None)
    return 0
