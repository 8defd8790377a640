"""Speed and memory of the inference path: a photo and speech in, an mp4 out, on this machine.

    python benchmarks/inference.py [--checkpoint DIR] [--photo-side 1024] [--profile]

Uses ``checkpoints/man-optical`` when it exists, else freshly initialised networks of the same
size (speed and memory do not depend on the weights), and says which. The photo is a corpus
speaker in a textured 4:3 scene, as large as ``generate`` lets a photo be by default; the speech
is espeak-ng's. Prints, for the 128x128 model:

- start-up: importing the pipeline (torch, diffusers), loading the model and warming up
  (:func:`talking.generate.warm_up`: MediaPipe's graphs, the audio features' first call, the video
  writer's import), in a fresh process, as the app starts;
- a 10 s clip end to end in that started process (face, features, motion, generation,
  full-resolution composite, H.264 encoding, muxing), as the real-time factor wall / audio
  duration (target <= 1.0, stretch <= 0.5), and the time from the call to the first frame handed
  to the encoder; and what a one-shot CLI run waits for in all (start-up + clip);
- motion + generator alone in frames per second, and the per-frame cost of each stage (the
  composite's cost at the photo's resolution printed on its own);
- peak memory (RSS) of a 60 s clip against a 10 s clip, each in a fresh process (target: within
  20 %). ffmpeg runs in its own process and is not counted.

``--profile`` adds the functions that take the most time in the 10 s clip (cProfile).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "checkpoints" / "man-optical"
PARAGRAPH = ("The quick brown fox jumps over the lazy dog. She sells sea shells by the sea shore, "
             "and the shells she sells are surely sea shells. Peter Piper picked a peck of "
             "pickled peppers; how many pickled peppers did Peter Piper pick?")


def child(args: argparse.Namespace) -> None:
    """One clip in this (fresh) process; prints its figures as JSON."""
    start = time.perf_counter()
    import talking.pipeline  # noqa: F401  (torch and diffusers: the cost of starting up)
    from talking.generate import GenerateOptions, generate_video, load_pipeline, resolve_device, warm_up

    imported = time.perf_counter()
    load_pipeline(args.checkpoint, resolve_device("auto"))
    warm_up()
    loaded = time.perf_counter()
    first_frame = []

    def progress(done: int, total: int) -> None:
        if done == 1:
            first_frame.append(time.perf_counter())

    video = generate_video(args.photo, args.speech, args.output,
                           GenerateOptions(checkpoint=str(args.checkpoint), clean_speech=args.clean_speech),
                           progress)
    end = time.perf_counter()
    import torch

    print(json.dumps({
        "import_s": imported - start, "load_s": loaded - imported,
        "first_frame_s": first_frame[0] - loaded, "total_s": end - loaded,
        "duration_s": video.duration, "frames": video.num_frames, "threads": torch.get_num_threads(),
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


def run_child(checkpoint: Path, photo: Path, speech: Path, output: Path, clean_speech: bool) -> dict:
    command = [sys.executable, __file__, "--child", "--checkpoint", str(checkpoint),
               "--photo", str(photo), "--speech", str(speech), "--output", str(output),
               "--clean-speech" if clean_speech else "--no-clean-speech"]
    result = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(result.stdout.strip().splitlines()[-1])


def make_inputs(folder: Path, photo_side: int,
                seconds: tuple[int, ...] = (10, 60)) -> tuple[Path, dict[int, Path]]:
    """A photo (photo_side x 3/4 photo_side) and speech files of ``seconds`` (10 s and 60 s)."""
    import cv2
    import numpy as np
    import soundfile

    from talking.config import MOUTH_PARAMETERS, SAMPLE_RATE
    from talking.corpus.appearance import sample_face_style, sample_scene_style
    from talking.corpus.geometry import face_frame
    from talking.corpus.render import FaceRenderer
    from talking.speech import synthesize

    rng = np.random.default_rng(1)
    style = sample_face_style(rng, feminine=True)
    side = photo_side * 3 // 8
    frame = face_frame(style, np.zeros(len(MOUTH_PARAMETERS)), 1.0, 0.0, np.zeros(2))
    face, _ = FaceRenderer(style, sample_scene_style(rng), side).render(frame, np.zeros(3), 0.0)
    height, width = photo_side * 3 // 4, photo_side
    noise = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    photo = cv2.GaussianBlur(noise, (0, 0), 4)
    top, left = (height - side) // 3, (width - side) // 2
    photo[top:top + side, left:left + side] = face
    cv2.imwrite(str(folder / "photo.png"), photo[..., ::-1])

    speech = synthesize(PARAGRAPH).audio
    files = {}
    for length in seconds:
        files[length] = folder / f"speech-{length}s.wav"
        soundfile.write(files[length], np.resize(speech, length * SAMPLE_RATE), SAMPLE_RATE)
    return folder / "photo.png", files


def fresh_checkpoint(folder: Path) -> Path:
    import torch

    from talking.models import build_models
    from talking.pipeline import TalkingFacePipeline

    torch.manual_seed(0)
    generator, predictor, _ = build_models("optical", 128)
    TalkingFacePipeline(generator.eval(), predictor.eval()).save_pretrained(folder)
    return folder


def pick_checkpoint(given: Path | None, folder: Path) -> tuple[Path, str]:
    """The checkpoint to measure and how to name it: ``given``, else the shipped MAN-optical,
    else fresh weights of the same size written under ``folder``."""
    if given is not None:
        return given.resolve(), f"{given} (given)"
    if (SHIPPED / "model_index.json").is_file():
        return SHIPPED, f"{SHIPPED.relative_to(ROOT)} (trained)"
    missing = SHIPPED.relative_to(ROOT)
    return fresh_checkpoint(folder / "fresh"), f"fresh weights ({missing} does not exist yet)"


def stage_costs(checkpoint: Path, photo: Path, speech: Path, threads: int,
                clean_speech: bool) -> dict[str, float]:
    """Milliseconds per frame of each stage, and the per-clip preparation in seconds."""
    import torch

    from talking.composite import Compositor
    from talking.generate import ENCODER_PRESET, load_pipeline, warm_up
    from talking.video import VideoWriter

    torch.set_num_threads(threads)
    pipe = load_pipeline(checkpoint, "cpu")
    warm_up()
    start = time.perf_counter()
    # face, speech, features and motion, once per clip
    output = pipe(photo, speech, crop_only=True, clean_speech=clean_speech)
    prepared = time.perf_counter()
    crops = list(output.frames)  # (128, 128, 3) uint8 each: motion, generator, crop-size blend
    generator_ms = (time.perf_counter() - prepared) / len(crops) * 1000
    prepare_s = prepared - start
    # The same frames composited at the photo's resolution, each compositor call timed (the
    # difference of two whole runs drowned it in their noise, even below 0)
    spent = []
    compose = Compositor.__call__

    def timed(self: Compositor, *args):
        start = time.perf_counter()
        frame = compose(self, *args)
        spent.append(time.perf_counter() - start)
        return frame

    Compositor.__call__ = timed
    try:
        frames = list(pipe(photo, speech, clean_speech=clean_speech).frames)
    finally:
        Compositor.__call__ = compose
    composite_ms = sum(spent) / len(spent) * 1000
    encode_s = 0.0
    with tempfile.TemporaryDirectory() as folder:
        with VideoWriter(Path(folder) / "encode.mp4", output.audio, preset=ENCODER_PRESET) as writer:
            for frame in frames:
                start = time.perf_counter()
                writer.write(frame)  # waits while ffmpeg is behind: the encoder's pace
                encode_s += time.perf_counter() - start
            closing = time.perf_counter()
        encode_s += time.perf_counter() - closing  # flushing the encoder and muxing
    return {"prepare_s": prepare_s, "generator_ms": generator_ms, "fps": 1000 / generator_ms,
            "composite_ms": composite_ms, "encode_ms": encode_s / len(frames) * 1000,
            "photo": frames[0].shape[:2]}


def profile(checkpoint: Path, photo: Path, speech: Path, output: Path) -> None:
    import cProfile
    import pstats

    from talking.generate import GenerateOptions, generate_video

    profiler = cProfile.Profile()
    profiler.runcall(generate_video, photo, speech, output, GenerateOptions(checkpoint=str(checkpoint)))
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="pipeline folder (default: "
                        "checkpoints/man-optical, else fresh weights)")
    parser.add_argument("--photo-side", type=int, default=1024, help="photo width in pixels")
    parser.add_argument("--profile", action="store_true", help="cProfile the 10 s clip")
    parser.add_argument("--clean-speech", action=argparse.BooleanOptionalAction, default=False,
                        help="separate the voice before the motion hears it (generate "
                        "--clean-speech, talking.clean_speech)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--photo", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--speech", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        checkpoint, which = pick_checkpoint(args.checkpoint, folder)
        photo, speech = make_inputs(folder, args.photo_side)

        short = run_child(checkpoint, photo, speech[10], folder / "short.mp4", args.clean_speech)
        long = run_child(checkpoint, photo, speech[60], folder / "long.mp4", args.clean_speech)
        stages = stage_costs(checkpoint, photo, speech[10], short["threads"], args.clean_speech)

        height, width = stages["photo"]
        print(f"checkpoint: {which}")
        print(f"photo {width}x{height}, face 128x128, cpu, {short['threads']} torch thread(s)")
        print(f"start-up:   imports {short['import_s']:.2f} s + model load and warm-up "
              f"{short['load_s']:.2f} s = {short['import_s'] + short['load_s']:.2f} s")
        for name, run in (("10 s clip", short), ("60 s clip", long)):
            factor = run["total_s"] / run["duration_s"]
            cold = run["import_s"] + run["load_s"] + run["total_s"]
            print(f"{name}:  end to end {run['total_s']:.2f} s for {run['frames']} frames, "
                  f"real-time factor {factor:.2f} (target <= 1.0, stretch <= 0.5); "
                  f"first frame after {run['first_frame_s']:.2f} s; a one-shot CLI run "
                  f"{cold:.1f} s in all ({cold / run['duration_s']:.2f} x the audio)")
        print(f"generator alone: {stages['fps']:.1f} frames/s ({stages['fps'] / 25:.1f}x real time)")
        print(f"per frame:  motion + generator {stages['generator_ms']:.1f} ms, full-resolution "
              f"composite {stages['composite_ms']:.1f} ms, encoder {stages['encode_ms']:.1f} ms; per "
              f"clip: face, speech, features and motion {stages['prepare_s']:.2f} s")
        growth = long["rss_mb"] / short["rss_mb"] - 1
        print(f"peak RSS:   10 s clip {short['rss_mb']:.0f} MB, 60 s clip {long['rss_mb']:.0f} MB "
              f"({growth:+.1%}, target within 20%)")
        if args.profile:
            profile(checkpoint, photo, speech[10], folder / "profiled.mp4")


if __name__ == "__main__":
    main()
