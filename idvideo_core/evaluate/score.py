"""Score a video against reference faces: FaceSim-Arc, FaceSim-Cur (per identity, per frame) and CLIPScore.

Per sampled frame (:mod:`.protocols`): detect every face with the benchmark detector (grey-padded retry when none),
take each face's ArcFace embedding, then give each reference identity a face:

- one identity: the protocol's face, the largest;
- several: an optimal one-to-one assignment on the ArcFace cosines (``scipy.optimize.linear_sum_assignment``), so two
  identities are never scored against the same face; with fewer faces than identities the unassigned identities are
  *missing* in that frame.

A frame where an identity has no face is recorded as missing (frame index and reason) and is never averaged in as a
zero. Cosines are the protocols' ``max(0, cos)``; the means follow the chosen protocol's zero rule.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np
import torch

from ..errors import InputError, NoFaceError
from .protocols import OPENS2V, Protocol, clip_indices, protocol_mean, sample_indices

log = logging.getLogger("idvideo")


@dataclass
class FoundFace:
    bbox: np.ndarray        # (4,) in the un-padded image
    kps: np.ndarray         # (5, 2) float32 in the un-padded image
    arc: np.ndarray         # raw ArcFace embedding (from the padded image after a padded retry)
    score: float
    padded: bool


@dataclass
class Reference:
    """A reference identity: its photo (RGB uint8) and, when the photo holds several people, which face (a box)."""

    label: str
    rgb: np.ndarray
    bbox: np.ndarray | None = None


@dataclass
class FrameScore:
    frame: int
    arc: float | None = None
    cur: float | None = None
    padded: bool = False
    bbox: list | None = None
    missing: str | None = None      # why this identity has no face in this frame


@dataclass
class IdentityScore:
    label: str
    facesim_arc: float | None
    facesim_cur: float | None
    frames: list = field(default_factory=list)       # FrameScore per sampled frame

    @property
    def missing_frames(self) -> list[int]:
        return [f.frame for f in self.frames if f.missing]


@dataclass
class ScoreReport:
    protocol: str
    protocol_source: str
    arc_model: str
    cur_model: str | None
    clip_model: str | None
    total_frames: int
    sampled_frames: list
    identities: list
    clip_score: float | None = None
    prompt: str | None = None
    notes: list = field(default_factory=list)

    # The headline numbers: the mean over identities of each identity's protocol mean (None when unavailable).
    def _mean(self, attr: str) -> float | None:
        vals = [getattr(i, attr) for i in self.identities if getattr(i, attr) is not None]
        return float(np.mean(vals)) if vals else None

    @property
    def facesim_arc(self) -> float | None:
        return self._mean("facesim_arc")

    @property
    def facesim_cur(self) -> float | None:
        return self._mean("facesim_cur")

    def to_dict(self) -> dict:
        d = {"protocol": self.protocol, "protocol_source": self.protocol_source,
             "models": {"facesim_arc": self.arc_model, "facesim_cur": self.cur_model, "clip": self.clip_model},
             "facesim_arc": self.facesim_arc, "facesim_cur": self.facesim_cur, "clip_score": self.clip_score,
             "prompt": self.prompt, "total_frames": self.total_frames, "sampled_frames": list(self.sampled_frames),
             "identities": [], "notes": list(self.notes)}
        for ident in self.identities:
            d["identities"].append({
                "label": ident.label, "facesim_arc": ident.facesim_arc, "facesim_cur": ident.facesim_cur,
                "frames_scored": sum(1 for f in ident.frames if not f.missing),
                "frames_missing": ident.missing_frames,
                "frames_padded_retry": [f.frame for f in ident.frames if f.padded and not f.missing],
                "per_frame": [asdict(f) for f in ident.frames]})
        return d


# --------------------------------------------------------------------------------------------- per-image analysis
def pad_grey(bgr: np.ndarray, scale: float = 1.25, value: int = 128) -> tuple[np.ndarray, tuple[int, int]]:
    """The protocols' retry image: ``int(h·(scale−1))`` rows above and below, ``int(w·(scale−1))`` columns left and
    right, constant grey. Returns the padded image and the (left, top) offset."""
    h, w = bgr.shape[:2]
    top, left = int(h * (scale - 1.0)), int(w * (scale - 1.0))
    return cv2.copyMakeBorder(bgr, top, top, left, left, cv2.BORDER_CONSTANT, value=(value,) * 3), (left, top)


def find_all_faces(models, rgb: np.ndarray, protocol: Protocol = OPENS2V) -> list[FoundFace]:
    """Every face the benchmark detector finds in an RGB uint8 image, with the protocols' padded retry."""
    bgr = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    dets, kpss = models.detector.detect(bgr)
    padded, src, off = False, bgr, np.zeros(2, np.float32)
    if not len(dets):
        src, (left, top) = pad_grey(bgr, protocol.pad_scale, protocol.pad_value)
        dets, kpss = models.detector.detect(src)
        padded, off = True, np.array([left, top], np.float32)
    out = []
    for det, kps in zip(dets, kpss):
        out.append(FoundFace(bbox=det[:4] - np.tile(off, 2), kps=(kps - off).astype(np.float32),
                             arc=models.recognizer.embed(src, kps), score=float(det[4]), padded=padded))
    return out


def largest(faces: Sequence[FoundFace]) -> int:
    """The protocols' choice: largest box area; a tie goes to the later detection (their ascending sort, last)."""
    areas = [(f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]) for f in faces]
    return max(range(len(faces)), key=lambda i: (areas[i], i))


@torch.no_grad()
def cur_embedding(model, bgr: np.ndarray, kps: np.ndarray, protocol: Protocol = OPENS2V) -> np.ndarray:
    """CurricularFace embedding as the protocols compute it: ArcFace-template crop at 224 (black border), RGB,
    bilinear resize to 112, (x/255 − 0.5)/0.5, IR-101, L2-normalised."""
    from ..faces.arcface import arcface_crop

    crop = cv2.cvtColor(arcface_crop(bgr, kps, protocol.cur_crop), cv2.COLOR_BGR2RGB)
    crop = cv2.resize(crop, (112, 112))
    dev = next(model.parameters()).device
    x = torch.from_numpy(np.transpose(crop, (2, 0, 1))).unsqueeze(0).float().to(dev)
    x.div_(255).sub_(0.5).div_(0.5)
    e = model(x).detach().cpu().numpy()[0]
    return e / np.linalg.norm(e)


def clamped_cosine(a, b) -> float:
    """``max(0, cos)`` computed as the scripts do (torch cosine_similarity on the float32 embeddings)."""
    cos = torch.nn.functional.cosine_similarity(torch.as_tensor(np.asarray(a)), torch.as_tensor(np.asarray(b)),
                                                dim=-1)
    return max(0.0, float(cos.item()))


def assign(sim: np.ndarray) -> dict[int, int]:
    """Identity → face by maximum total similarity, one-to-one (rows = identities, columns = faces)."""
    from scipy.optimize import linear_sum_assignment

    if sim.size == 0:
        return {}
    rows, cols = linear_sum_assignment(sim, maximize=True)
    return {int(r): int(c) for r, c in zip(rows, cols)}


@dataclass
class _RefEmb:
    label: str
    arc: np.ndarray
    cur: np.ndarray | None


def _reference_embeddings(models, refs: Sequence[Reference], protocol: Protocol) -> list[_RefEmb]:
    from ..faces.select import match_box

    out = []
    for k, ref in enumerate(refs):
        faces = find_all_faces(models, ref.rgb, protocol)
        if not faces:
            raise NoFaceError(f"The scoring detector ({models.arc_pack.split(' (')[0]}) finds no face in reference "
                              f"{k + 1} ('{ref.label}'), even after the protocol's grey padding.",
                              "Use a clear, frontal photo of the face (at least ~100 px wide).")
        j = None
        if ref.bbox is not None:
            j = match_box(np.asarray(ref.bbox, np.float32), np.stack([f.bbox for f in faces]))
        if j is None:
            j = largest(faces)
        f = faces[j]
        cur = None
        if models.cur is not None:
            bgr = cv2.cvtColor(np.ascontiguousarray(ref.rgb), cv2.COLOR_RGB2BGR)
            cur = cur_embedding(models.cur, bgr, f.kps, protocol)
        out.append(_RefEmb(ref.label, f.arc, cur))
    return out


# ------------------------------------------------------------------------------------------------------ scoring
def to_uint8_frames(frames) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB from a ComfyUI IMAGE (float 0..1, rounded) or a uint8 array."""
    arr = frames.detach().cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] not in (3, 4):
        raise InputError(f"Expected video frames (N, H, W, 3), got shape {tuple(arr.shape)}.",
                         "Connect the frames output of a sampler or a video loader.")
    arr = arr[..., :3]
    if arr.dtype != np.uint8:
        arr = np.clip(np.rint(arr.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    return arr


def score_frames(models, frames, references: Sequence[Reference], protocol: Protocol = OPENS2V,
                 num_frames: int | None = None, prompt: str | None = None, progress=None) -> ScoreReport:
    """Score one video (frames (N, H, W, 3) RGB, uint8 or float 0..1) against the reference identities."""
    if not references:
        raise InputError("No reference face was given.", "Connect the faces output of 'IDVideo Face Loader'.")
    video = to_uint8_frames(frames)
    n_frames = protocol.num_frames if num_frames is None else num_frames
    idx = sample_indices(len(video), n_frames)
    refs = _reference_embeddings(models, references, protocol)
    per_id: list[list[FrameScore]] = [[] for _ in refs]
    for t in idx:
        rgb = video[int(t)]
        faces = find_all_faces(models, rgb, protocol)
        if not faces:
            for rows in per_id:
                rows.append(FrameScore(int(t), missing="no face, even after the grey-padded retry"))
            if progress is not None:
                progress.update(1)
            continue
        if len(refs) == 1:
            pairs = {0: largest(faces)}
        else:
            sim = np.array([[clamped_cosine(r.arc, f.arc) for f in faces] for r in refs], np.float64)
            pairs = assign(sim)
        bgr = None
        for k, ref in enumerate(refs):
            if k not in pairs:
                per_id[k].append(FrameScore(int(t), missing=f"{len(faces)} face(s) for {len(refs)} identities; "
                                                            "another identity matched better"))
                continue
            f = faces[pairs[k]]
            cur = None
            if ref.cur is not None:
                bgr = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR) if bgr is None else bgr
                cur = clamped_cosine(ref.cur, cur_embedding(models.cur, bgr, f.kps, protocol))
            per_id[k].append(FrameScore(int(t), arc=clamped_cosine(ref.arc, f.arc), cur=cur, padded=f.padded,
                                        bbox=[round(float(v), 2) for v in f.bbox]))
        if progress is not None:
            progress.update(1)
    identities = []
    notes = list(models.notes)
    for ref, rows in zip(refs, per_id):
        arcs = [r.arc for r in rows if not r.missing]
        curs = [r.cur for r in rows if not r.missing and r.cur is not None]
        ident = IdentityScore(ref.label, protocol_mean(arcs, protocol.drop_zero_arc),
                              protocol_mean(curs, protocol.drop_zero_cur) if ref.cur is not None else None, rows)
        identities.append(ident)
        miss = ident.missing_frames
        if miss:
            notes.append(f"{ref.label}: no matching face in {len(miss)} of {len(rows)} sampled frames "
                         f"({miss[:12]}{' …' if len(miss) > 12 else ''}); they are left out of the means.")
        if ident.facesim_arc is None:
            notes.append(f"{ref.label}: no face matched in any sampled frame, so there is no FaceSim score (the "
                         "published scripts would report 0.0).")
    clip = None
    if models.clip is not None:
        if prompt and prompt.strip():
            clip = clip_score(models.clip, video, prompt)
        else:
            notes.append("CLIPScore not computed: no prompt given.")
    report = ScoreReport(protocol.name, protocol.source, models.arc_pack,
                         str(models.cur_path) if models.cur is not None else None,
                         str(models.clip_path) if models.clip is not None else None,
                         len(video), [int(t) for t in idx], identities, clip, prompt, notes)
    for n in notes:
        log.debug("IDVideo score: %s", n)
    return report


@torch.no_grad()
def clip_score(clip, video: np.ndarray, prompt: str) -> float:
    """ConsisID's ``get_clipscore``: 16 frames at ``int(i·N/16)``, handed to ``CLIPProcessor`` as the OpenCV *BGR*
    arrays the script reads (kept for comparability), prompt truncated to 77 tokens; the mean of
    ``logits_per_image`` (CLIP's ×100 logit scale)."""
    model, processor = clip
    frames = [cv2.cvtColor(video[int(i)], cv2.COLOR_RGB2BGR) for i in clip_indices(len(video))]
    inputs = processor(text=prompt, images=frames, return_tensors="pt", padding=True, truncation=True)
    dev = next(model.parameters()).device
    inputs = {k: v.to(dev) for k, v in inputs.items()}
    return float(model(**inputs).logits_per_image.mean().item())


def split_videos(frames, count: int) -> list:
    """A batch of ``count`` equal-length videos laid end to end → list of frame batches."""
    n = len(frames)
    if count < 1 or n % count:
        raise InputError(f"{n} frames cannot be split into {count} videos of equal length.",
                         "Set videos_in_batch to the number of videos in the batch (each the same length).")
    step = n // count
    return [frames[i * step:(i + 1) * step] for i in range(count)]


def best_index(reports: Sequence[ScoreReport]) -> int:
    """The best video: highest FaceSim-Arc (missing counts lowest), then FaceSim-Cur, then the earlier one."""
    def key(i):
        r = reports[i]
        return (r.facesim_arc if r.facesim_arc is not None else -1.0,
                r.facesim_cur if r.facesim_cur is not None else -1.0, -i)

    return max(range(len(reports)), key=key)


def score_videos(score_models, videos: Sequence, references: Sequence[Reference], protocol: Protocol = OPENS2V,
                 num_frames: int | None = None, prompt: str | None = None, labels: Sequence[str] = ()
                 ) -> tuple[list[ScoreReport], int]:
    """Score several candidate videos (e.g. one per seed) of the same references; returns (reports, best)."""
    from ..bridge import Progress

    per = protocol.num_frames if num_frames is None else num_frames
    total = sum(len(sample_indices(len(v), per)) for v in videos)
    bar = Progress(total, "Scoring identity")
    try:
        reports = [score_frames(score_models, v, references, protocol, num_frames, prompt, progress=bar)
                   for v in videos]
    finally:
        bar.close()
    return reports, best_index(reports)


def report_json(reports: Sequence[ScoreReport], best: int, labels: Sequence[str] = ()) -> str:
    """One report as JSON; several: ``{"best": k, "videos": [...]}`` (each with its label)."""
    import json

    if len(reports) == 1:
        return json.dumps(reports[0].to_dict(), indent=1)
    labels = list(labels) or [f"video {k + 1}" for k in range(len(reports))]
    return json.dumps({"best": best, "best_label": labels[best],
                       "videos": [{"label": lab, **r.to_dict()} for lab, r in zip(labels, reports)]}, indent=1)
