"""The per-frame similarity plot and the best-of-N contact sheet, drawn with Pillow.

Why Pillow and not matplotlib: Pillow is already a dependency of the pack and of ComfyUI, draws this simple chart
(lines, markers, a few labels) in a few milliseconds with no global state or backend to configure, and renders the
same pixels on every machine; matplotlib would add a ~40 MB dependency (not in ComfyUI's requirements), a slow first
import and font-cache building inside the ComfyUI process, for a chart that needs none of its features.

Plot: x = the sampled video frame, y = similarity 0…1; one colour per identity, FaceSim-Arc as a solid line with dots,
FaceSim-Cur dashed; a frame where the identity has no face gets a red ✕ on the axis (and breaks the line); a frame
scored after the grey-padded retry gets a hollow dot; dotted horizontal lines mark each identity's means.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (148, 103, 189), (140, 86, 75), (227, 119, 194)]
MISSING = (214, 39, 40)
W, H = 960, 420
LEFT, RIGHT, TOP, BOTTOM = 56, 200, 36, 44


def _font(size: int = 13):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _dashed(draw: ImageDraw.ImageDraw, p0, p1, colour, width=2, dash=6, gap=4):
    x0, y0 = p0
    x1, y1 = p1
    length = float(np.hypot(x1 - x0, y1 - y0))
    if length == 0:
        return
    step = dash + gap
    for s in np.arange(0, length, step):
        e = min(s + dash, length)
        draw.line([(x0 + (x1 - x0) * s / length, y0 + (y1 - y0) * s / length),
                   (x0 + (x1 - x0) * e / length, y0 + (y1 - y0) * e / length)], fill=colour, width=width)


def plot_report(report, width: int = W, height: int = H) -> np.ndarray:
    """(H, W, 3) uint8 RGB chart of a :class:`~.score.ScoreReport`."""
    img = Image.new("RGB", (width, height), (255, 255, 255))
    d = ImageDraw.Draw(img)
    font, small = _font(13), _font(11)
    x0, x1, y0, y1 = LEFT, width - RIGHT, TOP, height - BOTTOM
    frames = list(report.sampled_frames)
    lo, hi = (min(frames), max(frames)) if frames else (0, 1)
    span = max(hi - lo, 1)

    def px(frame):
        return x0 + (frame - lo) / span * (x1 - x0)

    def py(v):
        return y1 - float(v) * (y1 - y0)

    for k in range(11):  # grid and y labels
        v = k / 10
        d.line([(x0, py(v)), (x1, py(v))], fill=(235, 235, 235) if k % 5 else (200, 200, 200))
        if k % 2 == 0:
            d.text((x0 - 8, py(v)), f"{v:.1f}", fill=(60, 60, 60), font=small, anchor="rm")
    for f in sorted(set(np.linspace(lo, hi, min(len(set(frames)), 9) or 1, dtype=int).tolist())):
        d.text((px(f), y1 + 6), str(f), fill=(60, 60, 60), font=small, anchor="ma")
    d.rectangle([x0, y0, x1, y1], outline=(120, 120, 120))
    d.text((x0, 10), f"Identity similarity per frame - {report.protocol} protocol", fill=(0, 0, 0), font=font)
    d.text(((x0 + x1) / 2, height - 16), "video frame", fill=(60, 60, 60), font=small, anchor="ma")

    legend_y = y0
    for k, ident in enumerate(report.identities):
        c = COLOURS[k % len(COLOURS)]
        for metric, dashed in (("arc", False), ("cur", True)):
            mean = ident.facesim_arc if metric == "arc" else ident.facesim_cur
            pts: list[tuple | None] = []
            for fs in ident.frames:
                v = getattr(fs, metric)
                pts.append(None if fs.missing or v is None else (px(fs.frame), py(v), fs.padded))
            for a, b in zip(pts, pts[1:]):
                if a is not None and b is not None:
                    (_dashed(d, a[:2], b[:2], c) if dashed else d.line([a[:2], b[:2]], fill=c, width=2))
            if not dashed:
                for p in pts:
                    if p is not None:
                        r = 3
                        d.ellipse([p[0] - r, p[1] - r, p[0] + r, p[1] + r], outline=c,
                                  fill=(255, 255, 255) if p[2] else c)
            if mean is not None:
                _dashed(d, (x0, py(mean)), (x1, py(mean)), c, width=1, dash=2, gap=3)
            name = ident.label if len(ident.label) <= 12 else ident.label[:11] + "."
            label = f"{name} {'Arc' if metric == 'arc' else 'Cur'}: " + \
                    ("n/a" if mean is None else f"{mean:.3f}")
            if metric == "cur" and mean is None and report.cur_model is None:
                label = f"{name} Cur: skipped"
            if dashed:
                _dashed(d, (x1 + 12, legend_y + 7), (x1 + 34, legend_y + 7), c)
            else:
                d.line([(x1 + 12, legend_y + 7), (x1 + 34, legend_y + 7)], fill=c, width=2)
            d.text((x1 + 40, legend_y), label, fill=(0, 0, 0), font=small)
            legend_y += 18
        for fs in ident.frames:
            if fs.missing:
                x, y = px(fs.frame), y1 - 6 - 8 * k
                d.line([(x - 4, y - 4), (x + 4, y + 4)], fill=MISSING, width=2)
                d.line([(x - 4, y + 4), (x + 4, y - 4)], fill=MISSING, width=2)
        legend_y += 6
    d.line([(x1 + 16, legend_y + 3), (x1 + 24, legend_y + 11)], fill=MISSING, width=2)
    d.line([(x1 + 16, legend_y + 11), (x1 + 24, legend_y + 3)], fill=MISSING, width=2)
    d.text((x1 + 40, legend_y), "no face (missing)", fill=(0, 0, 0), font=small)
    legend_y += 18
    d.ellipse([x1 + 17, legend_y + 4, x1 + 23, legend_y + 10], outline=(80, 80, 80), fill=(255, 255, 255))
    d.text((x1 + 40, legend_y), "after grey-pad retry", fill=(0, 0, 0), font=small)
    legend_y += 18
    if report.clip_score is not None:
        d.text((x1 + 12, legend_y + 6), f"CLIPScore: {report.clip_score:.2f}", fill=(0, 0, 0), font=small)
    if "FALLBACK" in report.arc_model:
        d.text((x0 + 4, y0 + 4), "Arc: antelopev2 fallback (not comparable)", fill=MISSING, font=small)
    return np.asarray(img, dtype=np.uint8)


def contact_sheet(videos: Sequence[np.ndarray], reports: Sequence, labels: Sequence[str], best: int,
                  thumb_h: int = 160) -> np.ndarray:
    """One row per video: first, middle and last frame, then its scores; the best row is framed in green."""
    font = _font(13)
    rows = []
    for k, (v, rep, lab) in enumerate(zip(videos, reports, labels)):
        picks = [v[0], v[len(v) // 2], v[-1]]
        thumbs = [Image.fromarray(p).resize((max(1, round(p.shape[1] * thumb_h / p.shape[0])), thumb_h))
                  for p in picks]
        tw = sum(t.width for t in thumbs) + 8 * 4
        row = Image.new("RGB", (tw + 300, thumb_h + 16), (255, 255, 255))
        x = 8
        for t in thumbs:
            row.paste(t, (x, 8))
            x += t.width + 8
        d = ImageDraw.Draw(row)
        fmt = (lambda v_: "n/a" if v_ is None else f"{v_:.3f}")
        lines = [f"{lab}{'   BEST' if k == best else ''}", f"FaceSim-Arc {fmt(rep.facesim_arc)}",
                 f"FaceSim-Cur {fmt(rep.facesim_cur)}"]
        if rep.clip_score is not None:
            lines.append(f"CLIPScore {rep.clip_score:.2f}")
        miss = sum(len(i.missing_frames) for i in rep.identities)
        lines.append(f"missing frames {miss}")
        for j, line in enumerate(lines):
            d.text((x + 6, 10 + 20 * j), line, fill=(0, 110, 0) if k == best and j == 0 else (0, 0, 0), font=font)
        if k == best:
            d.rectangle([1, 1, row.width - 2, row.height - 2], outline=(0, 160, 0), width=3)
        rows.append(row)
    sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), (255, 255, 255))
    y = 0
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height
    return np.asarray(sheet, dtype=np.uint8)
