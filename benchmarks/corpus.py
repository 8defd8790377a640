"""Speed and size of the synthetic corpus: frames rendered per second, clips built per minute on
all cores, the projected time of the default 1000-clip corpus, and disk use per minute of video.

    python benchmarks/corpus.py [--clips 40] [--resolution 128] [--workers 0]

Target (issue): the 1000-clip default training corpus builds in under 20 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from talking.config import FPS
from talking.corpus.appearance import sample_face_style, sample_scene_style
from talking.corpus.build import CorpusConfig, build_corpus
from talking.corpus.motion import FaceMotion
from talking.corpus.render import render_clip
from talking.corpus.visemes import VISEMES
from talking.data import load_index


def render_rate(resolution: int, num_frames: int = 250) -> float:
    """Frames per second of :func:`render_clip` alone (one core), for a talking, moving face."""
    rng = np.random.default_rng(0)
    style, scene = sample_face_style(rng, feminine=True), sample_scene_style(rng)
    t = np.arange(num_frames) / FPS
    shapes = np.array([VISEMES[name][0] for name in ("AA", "PP", "OU", "IH", "sil")])
    mouth = shapes[np.arange(num_frames) % len(shapes)]
    pose = np.stack([3 * np.sin(t), 2 * np.cos(t), np.sin(0.5 * t)], 1)
    motion = FaceMotion(eye_openness=(np.sin(t) > -0.95).astype(np.float32),
                        brow_raise=(0.5 + 0.5 * np.sin(2 * t)).astype(np.float32),
                        gaze=np.zeros((num_frames, 2), np.float32), head_pose=pose.astype(np.float32),
                        head_offset=np.zeros((num_frames, 3), np.float32))
    render_clip(style, scene, mouth[:10], motion, resolution)  # warm-up
    start = time.perf_counter()
    render_clip(style, scene, mouth, motion, resolution)
    return num_frames / (time.perf_counter() - start)


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (workers, espeak-ng processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--workers", type=int, default=0, help="0: one per core")
    args = parser.parse_args()
    workers = args.workers or os.cpu_count() or 1

    fps = render_rate(args.resolution)
    print(f"rendering at {args.resolution}x{args.resolution}: {fps:.0f} frames/s on one core")

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "corpus"
        start, cpu_start = time.perf_counter(), cpu_seconds()
        build_corpus(CorpusConfig(out=str(out), clips=args.clips, resolution=args.resolution,
                                  workers=workers))
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu_start
        clips = sorted((out / "clips").iterdir())
        frames = sum(len(np.load(clip / "frames.npy", mmap_mode="r")) for clip in clips)
        size = sum(path.stat().st_size for path in out.rglob("*") if path.is_file())
        assert len(clips) == args.clips and load_index(out)["splits"]
    video_minutes = frames / FPS / 60
    print(f"built {args.clips} clips ({frames} frames, {video_minutes * 60:.0f} s of video) in "
          f"{seconds:.1f} s with {workers} workers: {frames / seconds:.0f} frames/s end to end, "
          f"{args.clips / seconds * 60:.0f} clips/min")
    projected = 1000 * seconds / args.clips / 60
    idle = 1000 * cpu / args.clips / min(2, workers) / 60
    print(f"projected default corpus (1000 clips): {projected:.1f} min at this machine's current load; "
          f"{idle:.1f} min on 2 idle cores ({cpu / args.clips:.2f} CPU s per clip); target: under 20 min")
    mib = size / 2**20
    print(f"disk: {mib / video_minutes:.1f} MiB per minute of video ({mib / args.clips:.2f} MiB per clip; "
          f"1000 clips ~ {mib / args.clips * 1000 / 1024:.1f} GiB)")


if __name__ == "__main__":
    main()
