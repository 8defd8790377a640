"""Time to extract every audio feature (mel, pitch, energy, frame windows) for 60 s of speech.

    python benchmarks/audio_features.py [--seconds 60] [--f0-method dio|harvest]

The speech is espeak-ng synthesis when available (real voicing changes), otherwise a harmonic tone
with a pitch glide. Target: under 1.5 s for 60 s with dio on a 2-core machine.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from talking.audio import extract_features, load_audio
from talking.config import SAMPLE_RATE, AudioConfig

TEXT = ("The quick brown fox jumps over the lazy dog while seven wise men watch quietly. "
        "Place blue at F two now, and set red by G nine again please. ")


def speech(seconds: float) -> tuple[np.ndarray, str]:
    espeak = shutil.which("espeak-ng")
    if espeak:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "speech.wav"
            subprocess.run([espeak, "-w", str(path), TEXT * 8], check=True)
            wav = load_audio(path, config=AudioConfig(max_seconds=1e4))
        reps = int(np.ceil(seconds * SAMPLE_RATE / len(wav)))
        return np.tile(wav, reps)[: int(seconds * SAMPLE_RATE)], "espeak-ng speech"
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    phase = 2 * np.pi * np.cumsum(150 + 50 * np.sin(2 * np.pi * 0.5 * t)) / SAMPLE_RATE
    return (0.3 * np.sin(phase) + 0.1 * np.sin(2 * phase)).astype(np.float32), "pitch glide"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--f0-method", default="dio", choices=["dio", "harvest"])
    args = parser.parse_args()
    config = AudioConfig(f0_method=args.f0_method)
    wav, kind = speech(args.seconds)
    extract_features(wav[:SAMPLE_RATE], config)  # warm-up: mel basis, pyworld import
    times = []
    for _ in range(3):
        start = time.perf_counter()
        features = extract_features(wav, config)
        features.windows()
        times.append(time.perf_counter() - start)
    best = min(times)
    print(f"input: {args.seconds:.0f} s of {kind}, f0 method {args.f0_method}")
    print(f"features for {features.num_video_frames} video frames: best {best:.3f} s "
          f"(median {np.median(times):.3f} s) of 3 runs")
    print(f"real-time factor: {best / args.seconds:.4f}")


if __name__ == "__main__":
    main()
