"""Real corpora in the clip format: ``python -m talking prepare --input VIDEOS --out DIR``.

``--input`` is searched recursively for videos. The speaker is the top-level folder (GRID
``s1/bbaf2n.mpg`` or ``s1/video/bbaf2n.mpg``, LRS / VoxCeleb / HDTF ``id00017/xyz/00001.mp4``) or,
for files directly in ``--input``, the file name up to its first underscore (CREMA-D
``1001_DFA_ANG_XX.flv``). Each video, one worker process per core:

1. must have a video and an audio stream (:func:`talking.video.probe`);
2. its audio is decoded to mono 22050 Hz (:func:`talking.audio.load_audio`);
3. its face is tracked at 25 fps (:func:`track_face`) by MediaPipe Face Mesh in video mode
   (:func:`talking.realface.track_meshes`, a detector trained on real faces, the one inference
   aligns photos with): 68 iBUG landmarks in every frame. Their eye and mouth centres become a
   steady crop track (:func:`steady_track`: held still when the face does not move, else
   filtered, interpolated and smoothed); a video where the face is found in fewer than half of
   the frames is skipped;
4. every frame is warped into the canonical crop at ``resolution`` (:func:`talking.face.warp_to_crop`),
   and its landmarks with it, gaps filled and lightly smoothed over ``LANDMARK_WINDOW`` frames
   (enough to calm the mesh's jitter, short enough to keep a /p/ closure);
5. frames, landmarks and audio are cut to a common length of N frames (the sound may end inside
   the last one, as the clip format allows) and written with :func:`talking.data.write_clip`,
   which computes the audio features. The clips have ``landmarks.npy`` but no ``truth.npz``:
   training with ``align_to_source`` and ``closed_source`` reads the landmarks, evaluation
   measures eye and mouth opening off them (:func:`talking.realface.openings`).

A video that fails any step is skipped with one line that says why; the run goes on. Clips already
under ``OUT/clips`` are kept, so an interrupted run resumes where it stopped. ``corpus.json``'s
splits are disjoint by speaker and depend only on the speakers and ``seed``. Audio and video are
assumed to start together, as they do in these corpora.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import multiprocessing
import os
import random
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from talking.config import FPS, RESOLUTION, SAMPLE_RATE
from talking.errors import TalkingError

# Face-track tolerances, in eye distances (see steady_track).
STILL_TOLERANCE = 0.2
OUTLIER_TOLERANCE = 0.5
LANDMARK_WINDOW = 5  # frames of the quadratic smoothing of the crop landmarks (200 ms)
VIDEO_SUFFIXES = {".mp4", ".mpg", ".mpeg", ".avi", ".mov", ".mkv", ".flv", ".webm", ".m4v"}


@dataclasses.dataclass(frozen=True)
class PrepareConfig:
    """How a folder of videos becomes a corpus of clips."""

    input: str = dataclasses.field(metadata={"help": "folder of videos, searched recursively"})
    out: str = dataclasses.field(metadata={"help": "corpus folder to write (corpus.json, clips/)"})
    resolution: int = dataclasses.field(default=RESOLUTION,
                                        metadata={"help": "side of the square face crop"})
    smooth_seconds: float = dataclasses.field(
        default=0.8, metadata={"help": "length of the face-track smoothing window, seconds"})
    val_fraction: float = dataclasses.field(default=0.1,
                                            metadata={"help": "share of speakers for validation"})
    test_fraction: float = dataclasses.field(default=0.1,
                                             metadata={"help": "share of speakers for testing"})
    seed: int = dataclasses.field(default=0, metadata={"help": "seed of the speaker split"})
    workers: int = dataclasses.field(default=0,
                                     metadata={"help": "worker processes; 0 means one per core"})

    def __post_init__(self) -> None:
        if self.resolution < 16 or self.smooth_seconds < 0 or self.workers < 0:
            raise ValueError("need resolution >= 16, smooth_seconds >= 0 and workers >= 0 (0: one per "
                             f"core), got {self.resolution}, {self.smooth_seconds}, {self.workers}")
        if not (0 <= self.val_fraction and 0 <= self.test_fraction
                and self.val_fraction + self.test_fraction < 1):
            raise ValueError("need val_fraction, test_fraction >= 0 with a sum below 1")


@dataclasses.dataclass(frozen=True)
class Source:
    """One video to prepare: its path, its speaker and the id of the clip it becomes."""

    path: Path
    relative: str
    identity: str
    clip_id: str


def find_videos(root: Path) -> list[Source]:
    """Every video under ``root`` (hidden files skipped), in a stable order."""
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES
                   and p.is_file() and not p.name.startswith("."))
    sources = []
    for path in paths:
        relative = path.relative_to(root)
        identity = relative.parts[0] if len(relative.parts) > 1 else relative.stem.split("_")[0]
        clip_id = re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(relative.with_suffix("").parts))
        sources.append(Source(path, relative.as_posix(), identity, clip_id))
    return sources


def split_by_identity(identities: dict[str, str], val_fraction: float, test_fraction: float,
                      seed: int) -> dict[str, list[str]]:
    """{clip id: speaker} -> {"train", "val", "test": clip ids}, no speaker in two splits.

    With three or more speakers, a non-zero fraction gets at least one speaker.
    """
    speakers = sorted(set(identities.values()))
    random.Random(seed).shuffle(speakers)

    def count(fraction: float) -> int:
        wanted = round(fraction * len(speakers))
        return max(wanted, 1) if fraction > 0 and len(speakers) >= 3 else wanted

    n_test, n_val = count(test_fraction), count(val_fraction)
    split_of = {speaker: "test" for speaker in speakers[:n_test]}
    split_of.update({speaker: "val" for speaker in speakers[n_test:n_test + n_val]})
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for clip_id, speaker in sorted(identities.items()):
        splits[split_of.get(speaker, "train")].append(clip_id)
    return splits


@dataclasses.dataclass(frozen=True)
class VideoTrack:
    """A video's face track at 25 fps: ``matrices`` (N, 2, 3) photo -> canonical crop per frame,
    ``landmarks`` (N, 68, 2) float32 iBUG points in crop pixels."""

    matrices: np.ndarray
    landmarks: np.ndarray


def track_face(path: Path, config: PrepareConfig) -> VideoTrack:
    """Follow the face of the video at ``path`` through every frame (see the module docstring)."""
    from talking.face import canonical_landmarks, similarity_transform
    from talking.realface import eyes_and_mouth, track_meshes
    from talking.video import read_video

    missing = np.full((68, 2), np.nan, np.float32)
    points = np.array([missing if mesh is None else mesh.ibug68()
                       for mesh in track_meshes(read_video(path, fps=FPS))])  # (N, 68, 2)
    if len(points) == 0:
        raise TalkingError("the video has no frames")
    found = int((~np.isnan(points[:, 0, 0])).sum())
    if found < len(points) / 2:
        raise TalkingError(f"a face was found in only {found} of {len(points)} frames")
    track = steady_track(eyes_and_mouth(points), 2 * round(config.smooth_seconds * FPS / 2) + 1)
    target = canonical_landmarks(config.resolution)
    matrices = np.stack([similarity_transform(p, target) for p in track])  # (N, 2, 3)
    in_crop = np.einsum("nij,nkj->nki", matrices[:, :, :2], points) + matrices[:, None, :, 2]
    flat = in_crop.reshape(len(points), -1)
    landmarks = fill_and_smooth(flat, np.flatnonzero(~np.isnan(flat[:, 0])), LANDMARK_WINDOW)
    return VideoTrack(matrices, landmarks.reshape(points.shape).astype(np.float32))


def steady_track(points: np.ndarray, window: int) -> np.ndarray:
    """(N, K, 2) landmarks per frame, NaN where not detected -> (N, K, 2) without gaps or jitter.

    The first K >= 2 points are two eyes (their distance is the unit of the tolerances).
    1. A detection farther than ``OUTLIER_TOLERANCE`` from the median of its four neighbours is
       a stray box (a false positive, another face) and is dropped.
    2. Detections wobble by a few percent from one frame to the next, and the mouth centre moves
       as the lips part: a face whose detections all lie within ``STILL_TOLERANCE`` of their
       median is still (GRID, CREMA-D) and is held at the median, so that its crop does not shake.
    3. Otherwise the detections are filled in and smoothed over ``window`` frames
       (:func:`fill_and_smooth`).
    """
    from scipy.ndimage import median_filter

    frames = len(points)
    flat = points.reshape(frames, -1)  # (N, 2K)
    found = np.flatnonzero(~np.isnan(flat).any(axis=1))
    detections = flat[found]
    centre = np.median(detections, axis=0)
    eye_distance = np.hypot(*(centre[2:4] - centre[0:2]))
    local = median_filter(detections, size=(5, 1), mode="nearest")
    keep = (np.abs(detections - local) <= OUTLIER_TOLERANCE * eye_distance).all(axis=1)
    found, detections = found[keep], detections[keep]
    centre = np.median(detections, axis=0)
    if np.abs(detections - centre).max() <= STILL_TOLERANCE * eye_distance:
        return np.broadcast_to(centre.reshape(points.shape[1:]), points.shape).copy()
    full = np.full_like(flat, np.nan)
    full[found] = detections
    return fill_and_smooth(full, found, window).reshape(points.shape)


def fill_and_smooth(flat: np.ndarray, found: np.ndarray, window: int) -> np.ndarray:
    """(N, D) per-frame values, trusted in the rows ``found`` -> (N, D) linearly interpolated
    over the other rows and smoothed by a quadratic Savitzky-Golay filter over ``window`` frames,
    which removes jitter but follows steady motion without lag, up to the clip's ends."""
    from scipy.signal import savgol_filter

    frames = len(flat)
    track = np.stack([np.interp(np.arange(frames), found, flat[found, d]) for d in range(flat.shape[1])], 1)
    window = min(window, frames - 1 + frames % 2)  # odd, at most the clip
    if window > 3:
        track = savgol_filter(track, window, polyorder=2, axis=0, mode="interp")
    return track


def prepare_video(source: Source, directory: Path, config: PrepareConfig) -> int:
    """Write ``source`` as the clip ``directory``; returns its frame count.

    Raises :class:`TalkingError` saying why the video cannot become a clip.
    """
    from talking.audio import load_audio, num_video_frames
    from talking.data import write_clip
    from talking.face import warp_to_crop
    from talking.video import probe, read_video

    info = probe(source.path)
    if not info.has_video or not info.has_audio:
        raise TalkingError("no video stream" if not info.has_video else "no audio stream")
    audio = load_audio(source.path)
    track = track_face(source.path, config)
    frames = [warp_to_crop(frame, matrix, config.resolution)
              for frame, matrix in zip(read_video(source.path, fps=FPS), track.matrices, strict=False)]
    count = min(len(frames), num_video_frames(len(audio)))
    audio = audio[:count * SAMPLE_RATE // FPS]  # a last partial frame of sound is kept
    meta = {"id": source.clip_id, "source": source.relative, "identity": source.identity,
            "voice": source.identity, "text": "", "landmarks": "MediaPipe Face Mesh"}
    write_clip(directory, np.stack(frames[:count]), audio, meta, landmarks=track.landmarks[:count])
    return count


def _prepare_in_worker(source: Source, clips: Path, config: PrepareConfig) -> str | None:
    """None on success, else the one-line reason the video was skipped."""
    try:
        prepare_video(source, clips / source.clip_id, config)
    except TalkingError as error:
        return str(error)
    except Exception as error:  # a broken file in a corpus of thousands must not stop the run
        return f"{type(error).__name__}: {error}".splitlines()[0]
    return None


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # the pool already uses every core


def prepare_corpus(config: PrepareConfig) -> dict[str, list[str]]:
    """Prepare every video under ``config.input`` into ``config.out``; returns the splits.

    Prints one line per skipped video and a summary at the end.
    """
    from tqdm import tqdm

    from talking.data import write_index

    root, out = Path(config.input), Path(config.out)
    if not root.is_dir():
        raise TalkingError(f"Input folder not found: {root}")
    sources = find_videos(root)
    if not sources:
        raise TalkingError(f"No videos ({', '.join(sorted(VIDEO_SUFFIXES))}) under {root}")
    clips = out / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    identities, skipped, jobs, ids = {}, {}, [], set()
    for source in sources:
        if source.clip_id in ids:
            skipped[source.relative] = f"another video already makes clip {source.clip_id}"
        elif (clips / source.clip_id).is_dir():
            identities[source.clip_id] = source.identity
        else:
            jobs.append(source)
        ids.add(source.clip_id)

    workers = min(config.workers or os.cpu_count() or 1, len(jobs))
    run = functools.partial(_prepare_in_worker, clips=clips, config=config)
    with contextlib.ExitStack() as stack:
        outcomes = map(run, jobs)
        if workers > 1:
            pool = stack.enter_context(ProcessPoolExecutor(
                workers, initializer=_init_worker, mp_context=multiprocessing.get_context("spawn")))
            outcomes = pool.map(run, jobs)
        progress = tqdm(zip(jobs, outcomes, strict=True), total=len(jobs), desc="prepare", unit="video",
                        disable=not jobs)
        for source, reason in progress:
            if reason is None:
                identities[source.clip_id] = source.identity
            else:
                skipped[source.relative] = reason
                progress.write(f"skipped {source.relative}: {reason}")

    splits = split_by_identity(identities, config.val_fraction, config.test_fraction, config.seed)
    write_index(out, splits, {"source": "prepare", "input": str(root.resolve()),
                              "resolution": config.resolution, "fps": FPS,
                              "sample_rate": SAMPLE_RATE, "skipped": skipped})
    print(f"{len(identities)} clips of {len(set(identities.values()))} speakers in {out} "
        f"(train {len(splits['train'])}, val {len(splits['val'])}, test {len(splits['test'])}); "
        f"{len(skipped)} of {len(sources)} videos skipped")
    return splits
