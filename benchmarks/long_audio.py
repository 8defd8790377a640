"""Peak memory against clip length: 10 s, 60 s and 300 s of speech rendered end to end (features,
generation, paste-back, H.264 encoding), each in a fresh process.

    python benchmarks/long_audio.py [--checkpoint DIR] [--photo-side 640] [--seconds 10 60 300]

The inputs and the model are those of ``benchmarks/inference.py`` (the trained checkpoint when
there is one, else fresh weights of the same size). Peak memory is the Python process's peak
resident set (ffmpeg encodes in its own process, with a memory that does not grow with the clip).
Target: the 5-minute clip's peak within 20 % of the 10-second clip's. The 300 s clip takes 4 to 8
minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from inference import make_inputs, pick_checkpoint, run_child


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="pipeline folder (default: "
                        "checkpoints/man-optical, else fresh weights)")
    parser.add_argument("--photo-side", type=int, default=640, help="photo width in pixels")
    parser.add_argument("--seconds", type=int, nargs="+", default=[10, 60, 300],
                        help="clip lengths; the first is the reference")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        checkpoint, which = pick_checkpoint(args.checkpoint, folder)
        photo, speech = make_inputs(folder, args.photo_side, tuple(args.seconds))
        print(f"checkpoint: {which}; photo {args.photo_side} px wide")
        runs = {}
        for seconds in args.seconds:
            runs[seconds] = run = run_child(checkpoint, photo, speech[seconds], folder / "out.mp4")
            print(f"{seconds:4d} s clip: {run['frames']:5d} frames in {run['total_s']:6.1f} s "
                  f"(real-time factor {run['total_s'] / run['duration_s']:.2f}), "
                  f"peak RSS {run['rss_mb']:.0f} MB", flush=True)
        reference = args.seconds[0]
        for seconds in args.seconds[1:]:
            ratio = runs[seconds]["rss_mb"] / runs[reference]["rss_mb"]
            print(f"peak RSS {seconds} s / {reference} s: {ratio:.3f} ({ratio - 1:+.1%}, target "
                  "within +20%)")


if __name__ == "__main__":
    main()
