"""The evaluation report: a markdown table, the JSON results and PNG plots, drawn with OpenCV
(the project does not depend on a plotting library).

``write_report(report, samples, out)`` writes into ``out``:

- ``results.md``: one row per method, and what was not measured, with the reason;
- ``results.json``: everything :func:`talking.evaluate.evaluate` computed;
- ``metrics.png``: a bar chart per metric;
- ``sync.png``: the mean correlation of mouth opening with the ground truth against the offset;
- ``drift.png``: the mean SSIM at each frame index: how fast a method drifts from the real video;
- ``frames.png``: evenly spaced frames of the first clip, one row per method.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np

# (key, label, format, better): the table's and the bar chart's metrics.
COLUMNS = (
    ("ssim", "SSIM", "{:.3f}", "higher"),
    ("ssim_mouth", "SSIM mouth", "{:.3f}", "higher"),
    ("psnr", "PSNR (dB)", "{:.2f}", "higher"),
    ("psnr_mouth", "PSNR mouth (dB)", "{:.2f}", "higher"),
    ("l1_mouth", "L1 mouth", "{:.4f}", "lower"),
    ("l1_lips_registered", "L1 lips, registered", "{:.4f}", "lower"),
    ("cpbd", "CPBD", "{:.3f}", "higher"),
    ("lmd", "LMD mouth (px)", "{:.2f}", "lower"),
    ("blinks_per_second", "blinks/s", "{:.2f}", "near the truth"),
    ("sync_correlation", "sync corr.", "{:.3f}", "higher"),
    ("mouth_travel", "mouth travel", "{:.2f}", "near the real frames"),
)
PALETTE = [(90, 90, 90), (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194)]  # RGB, one per method in order
FONT = cv2.FONT_HERSHEY_SIMPLEX


def write_report(report: dict, samples: dict[str, np.ndarray], out: Path) -> None:
    """Write ``results.md``, ``results.json`` and the plots ``metrics.png``, ``sync.png``,
    ``drift.png`` and ``frames.png``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(report, indent=2, allow_nan=False, default=_json) + "\n")
    (out / "results.md").write_text(markdown_table(report))
    methods = list(report["methods"])
    colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(methods)}
    _save(out / "metrics.png", bar_charts(report["methods"], colours))
    results = report["methods"]
    offsets = next(iter(results.values()))["sync_offsets"]
    _save(out / "sync.png", line_chart({n: r["sync_curve"] for n, r in results.items()}, offsets, colours,
                                       "correlation of mouth opening with the ground truth",
                                       "offset (frames; > 0: video late)"))
    frames = list(range(len(next(iter(results.values()))["ssim_by_frame"])))
    _save(out / "drift.png", line_chart({n: r["ssim_by_frame"] for n, r in results.items()}, frames, colours,
                                        "SSIM by frame index (mean over clips)", "frame", floor=0.5))
    _save(out / "frames.png", frame_strip(samples))


def _json(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value)} to JSON")


def _cell(value, fmt: str) -> str:
    missing = value is None or (isinstance(value, float) and not math.isfinite(value))
    return "—" if missing else fmt.format(value)


def markdown_table(report: dict) -> str:
    """The results as markdown: the table, then what was not measured."""
    header = ["method", *(f"{label} ({better})" for _, label, _, better in COLUMNS), "best offset",
              "frames/s"]
    lines = [f"Split `{report['split']}` of `{report['corpus']}`: {report['clips']} clips, "
             f"{report['frames']} frames at {report['resolution']} x {report['resolution']}; the "
             f"ground truth blinks {report['truth_blinks_per_second']:.2f} times a second. The MAN "
             f"checkpoints' predicted jaws open {report['articulation']:g}x (articulation; 1: "
             "the corpus's own scale).", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, result in report["methods"].items():
        offset = result["sync_best_offset"]
        cells = [_cell(result[key], fmt) for key, _, fmt, _ in COLUMNS]
        cells += ["—" if offset is None else f"{offset:+d}", _cell(result["frames_per_second"], "{:.0f}")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Not measured:", ""]
    lines += [f"- {metric}: {reason}." for metric, reason in report["not_measured"].items()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------------------------


def _save(path: Path, image: np.ndarray) -> None:
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])


def _text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float = 0.45,
          colour=(30, 30, 30), centred: bool = False) -> None:
    x, y = origin
    if centred:
        x -= cv2.getTextSize(text, FONT, scale, 1)[0][0] // 2
    cv2.putText(image, text, (int(x), int(y)), FONT, scale, colour, 1, cv2.LINE_AA)


def _legend(names: list[str], colours: dict, width: int) -> np.ndarray:
    """A strip (28, width, 3) with a coloured square and the name of each method."""
    strip = np.full((28, width, 3), 255, np.uint8)
    x = 10
    for name in names:
        cv2.rectangle(strip, (x, 8), (x + 12, 20), colours[name], -1)
        _text(strip, name, (x + 17, 19))
        x += 30 + cv2.getTextSize(name, FONT, 0.45, 1)[0][0]
    return strip


def bar_charts(methods: dict[str, dict], colours: dict, panel: tuple[int, int] = (260, 200)) -> np.ndarray:
    """One bar panel per metric of :data:`COLUMNS` (2 rows), a legend below: (H, W, 3) RGB."""
    w, h = panel
    columns = math.ceil(len(COLUMNS) / 2)
    canvas = np.full((2 * h, columns * w, 3), 255, np.uint8)
    names = list(methods)
    for index, (key, label, fmt, better) in enumerate(COLUMNS):
        x0, y0 = (index % columns) * w, (index // columns) * h
        _text(canvas, f"{label} ({better})", (x0 + w // 2, y0 + 18), 0.45, centred=True)
        values = [methods[n][key] for n in names]
        finite = [v for v in values if v is not None and math.isfinite(v)]
        top = max(finite, default=1.0) * 1.15 or 1.0
        base, plot_height = y0 + h - 30, h - 70
        cv2.line(canvas, (x0 + 10, base), (x0 + w - 10, base), (120, 120, 120), 1)
        bar = (w - 30) // max(len(names), 1)
        for i, (name, value) in enumerate(zip(names, values, strict=True)):
            left = x0 + 15 + i * bar
            if value is None or not math.isfinite(value):
                _text(canvas, "n/a", (left + bar // 2, base - 4), 0.35, centred=True)
                continue
            height = int(round(plot_height * max(value, 0.0) / top))
            cv2.rectangle(canvas, (left + 3, base - height), (left + bar - 3, base), colours[name], -1)
            _text(canvas, _cell(value, fmt), (left + bar // 2, base - height - 4), 0.35, centred=True)
    return np.concatenate([canvas, _legend(names, colours, canvas.shape[1])])


def line_chart(curves: dict[str, list], x: list[int], colours: dict, title: str, x_label: str,
               floor: float = 0.0, size: tuple[int, int] = (560, 320)) -> np.ndarray:
    """One polyline per method of ``curves`` (values at ``x``; None where undefined), on a y-axis
    from ``floor`` (or lower) to 1 (or higher), with a legend below."""
    w, h = size
    canvas = np.full((h, w, 3), 255, np.uint8)
    left, right, top, bottom = 50, w - 15, 30, h - 35
    curves = {name: ys for name, ys in curves.items() if any(v is not None for v in ys)}
    values = [v for ys in curves.values() for v in ys if v is not None]
    low, high = min([floor, *values]), max([1.0, *values])
    ticks = x if len(x) <= 11 else x[:: math.ceil(len(x) / 10)]

    def point(at: float, value: float) -> tuple[int, int]:
        px = left + (at - x[0]) / max(x[-1] - x[0], 1) * (right - left)
        return int(round(px)), int(round(bottom - (value - low) / (high - low) * (bottom - top)))

    _text(canvas, title, (w // 2, 18), centred=True)
    cv2.rectangle(canvas, (left, top), (right, bottom), (160, 160, 160), 1)
    for value in np.linspace(low, high, 5):
        cv2.line(canvas, point(x[0], value), point(x[-1], value), (230, 230, 230), 1)
        _text(canvas, f"{round(value, 2) + 0.0:.2f}", (5, point(x[0], value)[1] + 4), 0.35)  # no "-0.00"
    if x[0] < 0 < x[-1]:
        cv2.line(canvas, point(0, low), point(0, high), (180, 180, 180), 1)
    for at in ticks:
        label = f"{at:+d}" if at and x[0] < 0 else str(at)
        _text(canvas, label, (point(at, low)[0], bottom + 15), 0.35, centred=True)
    _text(canvas, x_label, (w // 2, h - 5), 0.4, centred=True)
    for name, ys in curves.items():
        points = [point(at, v) for at, v in zip(x, ys, strict=True) if v is not None]
        cv2.polylines(canvas, [np.array(points, np.int32)], False, colours[name], 2, cv2.LINE_AA)
        if len(points) <= 21:
            for p in points:
                cv2.circle(canvas, p, 3, colours[name], -1, cv2.LINE_AA)
    return np.concatenate([canvas, _legend(list(curves), colours, w)])


def frame_strip(samples: dict[str, np.ndarray], columns: int = 8) -> np.ndarray:
    """Evenly spaced frames of each method's sample clip, one row per method, labelled."""
    label_width = 130
    rows = []
    for name, frames in samples.items():
        picks = np.linspace(0, len(frames) - 1, min(columns, len(frames))).round().astype(int)
        row = np.concatenate(list(frames[picks]), axis=1)
        label = np.full((row.shape[0], label_width, 3), 255, np.uint8)
        _text(label, name, (6, row.shape[0] // 2 + 5), 0.45)
        rows.append(np.concatenate([label, row], axis=1))
    return np.concatenate(rows)
