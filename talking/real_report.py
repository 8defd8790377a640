"""The real-input evaluation's report (:mod:`talking.evaluate_real`), drawn with OpenCV.

``write_real_report(report, sheets, sides, out)`` writes into ``out``:

- ``results.json``: the material, the thresholds, per method the medians over photos, and every
  photo x speech x method row (an infinite PSNR, an untouched background, is written "inf");
- ``results.md``: the table of medians;
- ``<photo>_<speech>.png``: the mouth contact sheet of each case: for each method, the mouth box
  of every k-th frame at 100 % zoom, then the lip-gap trace of every method over the clip;
- ``<photo>_side.png``: the face at 100 % zoom, the photo beside each method's middle frame.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np

from talking.config import FPS
from talking.real_metrics import crop
from talking.report import PALETTE, _cell, _legend, _save, _text

# (key, label, format, target): the table's columns
COLUMNS = (
    ("lip_activity", "lip activity", "{:.4f}", "real ~0.05; >= 0.025"),
    ("loud_minus_quiet", "loud - quiet", "{:.4f}", ">= 0.008"),
    ("bilabial_closed", "/p b m/ closed", "{:.2f}", ">= 0.8"),
    ("open_vowel_open", "open vowels open", "{:.2f}", ">= 0.8"),
    ("silence_jitter", "silence jitter", "{:.4f}", "< 0.005"),
    ("silence_gap", "silence gap", "{:.3f}", "near closed"),
    ("sharpness", "sharpness (median)", "{:.2f}", ">= 0.85"),
    ("sharpness_min", "sharpness (min)", "{:.2f}", ">= 0.70"),
    ("ssim_above_mouth", "SSIM above mouth", "{:.3f}", ">= 0.95"),
    ("background_psnr", "background PSNR (dB)", "{:.1f}", ">= 35"),
    ("real_correlation", "r with the real lips", "{:.2f}", ">= 0.3; needs --video"),
    ("real_time_factor", "time / audio", "{:.2f}", "<= 1"),
)
LABEL_WIDTH = 120
TRACE_HEIGHT = 180


def write_real_report(report: dict, sheets: dict, sides: dict, out: Path) -> None:
    """Write the files listed in the module's docstring. ``sheets``: case -> (tracks by method,
    clip); ``sides``: photo case -> (photo, regions, middle frame by method)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(_finite(report), indent=2, allow_nan=False) + "\n")
    (out / "results.md").write_text(markdown_table(report))
    colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(report["methods"])}
    for case, (tracks, clip) in sheets.items():
        _save(out / f"{case}.png", contact_sheet(tracks, len(clip.rms), colours))
    for case, (photo, regions, middles) in sides.items():
        _save(out / f"{case}_side.png", side_by_side(photo, regions, middles))


def _finite(value):
    """``value`` with numpy scalars made plain and infinities written "inf"."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def markdown_table(report: dict) -> str:
    """The medians over photos as a markdown table, with the material it was measured on."""
    photos = ", ".join(f"{p['case']} ({p['size'][1]} x {p['size'][0]})" for p in report["photos"])
    speech = ", ".join(f"{s['name']} ({s['seconds']:.1f} s)" for s in report["speech"])
    header = ["method", *(f"{label} ({target})" for _, label, _, target in COLUMNS)]
    lines = [f"Real photos (face width in px after the name): {photos}. Real speech: {speech}. "
             "Each figure: the mean over a photo's clips, then the median over photos.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, result in report["methods"].items():
        cells = [_cell(result[key], fmt) for key, _, fmt, _ in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    columns = [c for c in COLUMNS if c[0] != "sharpness_min"]
    lines += ["", "Per case (photo x speech):", "",
              "| photo | speech | method | " + " | ".join(label for _, label, _, _ in columns) + " |",
              "|" + "---|" * (len(columns) + 3)]
    for case in report["cases"]:
        cells = [_cell(case[key], fmt) for key, _, fmt, _ in columns]
        lines.append(f"| {case['photo']} | {case['speech']} | {case['method']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def contact_sheet(tracks: dict, num_frames: int, colours: dict) -> np.ndarray:
    """One row of mouth crops per method (every k-th frame, 100 % zoom), then the gap traces."""
    rows = []
    for name, track in tracks.items():
        row = np.concatenate(track.mouths, axis=1)
        label = np.full((row.shape[0], LABEL_WIDTH, 3), 255, np.uint8)
        _text(label, name, (6, row.shape[0] // 2 + 5), 0.45, colour=colours[name])
        rows.append(np.concatenate([label, row], axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 2), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    traces = gap_trace({n: t.gaps for n, t in tracks.items()}, num_frames, colours, width)
    return np.concatenate([*rows, traces, _legend(list(tracks), colours, width)])


def gap_trace(gaps: dict[str, np.ndarray], num_frames: int, colours: dict, width: int) -> np.ndarray:
    """(TRACE_HEIGHT, width, 3): each method's lip gap against time (NaN: no face found)."""
    canvas = np.full((TRACE_HEIGHT, width, 3), 255, np.uint8)
    left, right, top, bottom = LABEL_WIDTH, width - 10, 20, TRACE_HEIGHT - 25
    values = np.concatenate([g[np.isfinite(g)] for g in gaps.values()] + [np.zeros(1)])
    high = max(float(values.max()) * 1.1, 0.05)

    def point(frame: int, value: float) -> tuple[int, int]:
        x = left + frame / max(num_frames - 1, 1) * (right - left)
        return int(round(x)), int(round(bottom - value / high * (bottom - top)))

    cv2.rectangle(canvas, (left, top), (right, bottom), (160, 160, 160), 1)
    _text(canvas, "lip gap / eye distance (MediaPipe Face Mesh)", (left, top - 6), 0.4)
    _text(canvas, f"{high:.2f}", (left - 35, top + 10), 0.35)
    _text(canvas, "0", (left - 15, bottom), 0.35)
    for second in range(int(num_frames / FPS) + 1):
        _text(canvas, f"{second} s", (point(second * FPS, 0)[0], bottom + 15), 0.35, centred=True)
    for name, track in gaps.items():
        finite = [(i, v) for i, v in enumerate(track[:num_frames]) if np.isfinite(v)]
        if finite:
            line = np.array([point(i, v) for i, v in finite], np.int32)
            cv2.polylines(canvas, [line], False, colours[name], 2, cv2.LINE_AA)
    return canvas


def side_by_side(photo: np.ndarray, regions, middles: dict[str, np.ndarray]) -> np.ndarray:
    """The face's box (100 % zoom) in the photo and in each method's middle frame, labelled."""
    ys, xs = np.nonzero(regions.face)
    margin = int(0.1 * (xs.max() - xs.min()))
    box = (max(xs.min() - margin, 0), max(ys.min() - margin, 0),
           min(xs.max() + margin + 1, photo.shape[1]), min(ys.max() + margin + 1, photo.shape[0]))
    panels = []
    for name, image in {"photo": photo, **middles}.items():
        panel = np.concatenate([np.full((24, box[2] - box[0], 3), 255, np.uint8), crop(image, box)])
        _text(panel, name, (6, 17))
        panels.append(np.pad(panel, ((0, 0), (0, 4), (0, 0)), constant_values=255))
    return np.concatenate(panels, axis=1)
