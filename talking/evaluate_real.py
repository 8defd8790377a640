"""``python -m talking evaluate --real``: real photos and real speech, judged by a real-face tracker.

The synthetic split says how well a model learnt its corpus; this track says what a user sees.
For every photo (:mod:`talking.real_material`: real portraits at face widths of 100-600 px) and
every real speech clip, each method (:mod:`talking.real_methods`: the MAN checkpoints, one given
the clip's words, ``static`` and ``energy``) makes the mp4 a user would get, which is decoded
back, so that what is measured is what the user gets. MediaPipe Face Mesh (:mod:`talking.realface`),
trained on real faces and independent of our models, reads the lip gap of every frame;
:mod:`talking.real_metrics` turns the tracks into figures:

- lip activity, loud minus quiet, silence jitter and gap;
- viseme accuracy: phones timed by pocketsphinx's forced alignment (:mod:`talking.phonemes`)
  of the clip's transcript (:data:`talking.real_material.TRANSCRIPTS`) or, for a clip without
  one, of the words its recogniser hears; the lips count as closed at a
  gap within :data:`~talking.real_metrics.CLOSE_MARGIN` of the photo's own closed gap, open
  beyond :data:`~talking.real_metrics.OPEN_MARGIN` of it (a photo with parted lips is held to
  :data:`~talking.real_metrics.CLOSED_GAP`, what the tracker reads on closed real lips);
- sharpness: the face's Laplacian variance (mouth box excluded) in the middle frame over that of
  the photo encoded as a still video with the same settings (the ``static`` method's frame: the
  ceiling); the SSIM above the mouth against the photo, the minimum over closed-mouth frames;
  the background's PSNR against the photo;
- with ``--video``, a real talking-head video with its own sound: its first frame and its speech
  make one more case, the video's own frames are measured as the method ``real video``, and every
  method's lip gap is correlated with the speaker's, frame by frame (``real_correlation``).

Per method, each figure is averaged over a photo's speech clips, then the median (and, for
sharpness, the minimum) over photos is reported. Results go to ``--real-out``: results.json,
results.md, a mouth contact sheet per case and a side-by-side face crop per photo
(:mod:`talking.real_report`).
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from talking import real_metrics as rm
from talking.config import FPS, SAMPLE_RATE
from talking.errors import TalkingError
from talking.phonemes import BILABIALS
from talking.real_material import PHOTOS, SPEECH, TRANSCRIPTS, RealPhoto, real_photos, speech_path
from talking.real_methods import (
    SHIPPED,
    WITH_CLEAN_SPEECH,
    WITH_WORDS,
    MakeVideo,
    build_methods,
    encode,
    static_video,
)

# gradio's clips are cut at the first word; a user's recording starts with a pause, in which the
# mouth must stay closed and still
LEAD_SILENCE = 0.6  # seconds
SHEET_COLUMNS = 12  # mouth crops per row of a contact sheet
REAL_VIDEO = "real video"  # the method that re-encodes a real talking-head video's own frames


@dataclass(frozen=True)
class RealOptions:
    """What ``--real`` evaluates and where it writes (the checkpoints are given separately)."""

    real_out: str = dataclasses.field(default="docs/results/real", metadata={
        "help": "with --real: folder for results.md, results.json and the contact sheets"})
    photos: str = dataclasses.field(default=",".join(PHOTOS), metadata={
        "help": "with --real: comma-separated photos, each at its face widths"})
    speech: str = dataclasses.field(default=",".join(SPEECH), metadata={
        "help": "with --real: comma-separated speech clips (gradio's, or audio files)"})
    seconds: float = dataclasses.field(default=4.0, metadata={
        "help": "with --real: use the first SECONDS of each clip"})
    video: str | None = dataclasses.field(default=None, metadata={
        "help": "with --real: a real talking-head video with its own sound: one more case (its "
                "first frame, its speech), and each method's lip gap correlated with the speaker's"})
    methods: str = dataclasses.field(default="optical,keypoint,optical+words,optical+clean,energy",
                                     metadata={
        "help": "with --real: shipped checkpoints (optical, keypoint; +words: given the clip's "
                "words as transcript; +clean: hearing the clip's voice alone) and the energy "
                "baseline to evaluate besides --checkpoint and the static photo (always: the "
                "sharpness ceiling)"})

    def __post_init__(self) -> None:
        if self.seconds <= 0:
            raise ValueError(f"seconds must be positive, got {self.seconds}")
        known = {*SHIPPED, *(n + suffix for n in SHIPPED for suffix in (WITH_WORDS, WITH_CLEAN_SPEECH))}
        unknown = set(_names(self.methods)) - known - {"energy"}
        if unknown:
            raise ValueError(f"unknown methods {', '.join(sorted(unknown))}: use optical, keypoint "
                             f"(either with {WITH_WORDS} or {WITH_CLEAN_SPEECH}) or energy, and "
                             "--checkpoint for other folders")


@dataclass
class Clip:
    """One speech clip: ``wav`` (S,) float32 at 22050 Hz, its per-frame RMS (N,), its words
    (known or recognised) and their phones."""

    name: str
    wav: np.ndarray
    rms: np.ndarray
    words: str
    phones: list


@dataclass
class Track:
    """What one decoded video gives: the lip gap (N,) and the box above the mouth of each frame,
    its middle frame (H, W, 3) and mouth crops of every ``step``-th frame."""

    gaps: np.ndarray
    above: list[np.ndarray]
    middle: np.ndarray
    mouths: list[np.ndarray]


def evaluate_real(checkpoints: list[str], options: RealOptions, device: str = "cpu") -> dict:
    """Evaluate ``checkpoints`` (pipeline folders) and ``options.methods`` on the real material;
    write the report to ``options.real_out`` and return it."""
    from talking.real_report import write_real_report

    out = Path(options.real_out)
    methods = build_methods(checkpoints, _names(options.methods), device)
    clips = [_load_clip(name, options.seconds) for name in _names(options.speech)]
    photos = real_photos(_names(options.photos))
    # (photo, clip, the real video's own frames or None): every photo with every clip, and a real
    # talking-head video's first frame with its own sound
    pairs = [(photo, clip, None) for photo in photos for clip in clips]
    if options.video:
        pairs.append(_video_case(Path(options.video), options.seconds))
        photos.append(pairs[-1][0])
        clips.append(pairs[-1][1])
    cases, sheets, sides = [], {}, {}
    for photo, clip, real in pairs:
        regions, photo_gap = _photo_reference(photo)
        case = f"{photo.case}_{Path(clip.name).stem}"
        tracks = {}
        # static first: its face is the photo encoded as every video is, the sharpness ceiling
        case_methods = methods if real is None else {"static": static_video, REAL_VIDEO: real, **methods}
        for name, make in case_methods.items():
            started = time.perf_counter()
            path = out / "videos" / f"{case}_{name}.mp4"
            make(photo.image, clip.wav, clip.words, path)
            seconds = time.perf_counter() - started
            tracks[name] = _track(path, photo.image, regions)
            ceiling = rm.laplacian_variance(tracks["static"].middle, regions.face)
            row = _measures(tracks[name], clip, photo.image, photo_gap, regions, ceiling)
            cases.append({"photo": photo.case, "speech": clip.name, "method": name,
                          "real_time_factor": seconds / (len(clip.wav) / SAMPLE_RATE), **row})
            print(f"{case} {name}: lip activity {_fmt(row['lip_activity'])}, sharpness "
                  f"{_fmt(row['sharpness'])} ({seconds:.1f} s)", flush=True)
        for row in cases[-len(case_methods):]:
            row["real_correlation"] = None if real is None else rm.pearson(
                tracks[row["method"]].gaps, tracks[REAL_VIDEO].gaps)
        sheets[case] = (tracks, clip)
        sides.setdefault(photo.case, (photo.image, regions, {n: t.middle for n, t in tracks.items()}))
    methods_seen = list(dict.fromkeys(c["method"] for c in cases))
    report = {"photos": [{"case": p.case, "size": list(p.image.shape[:2])} for p in photos],
              "speech": [{"name": c.name, "seconds": len(c.wav) / SAMPLE_RATE, "words": c.words,
                          "phones": " ".join(p.label for p in c.phones)} for c in clips],
              "thresholds": {"closed_gap": rm.CLOSED_GAP, "close_margin": rm.CLOSE_MARGIN,
                             "open_margin": rm.OPEN_MARGIN, "silence_db": rm.SILENCE_DB},
              "methods": summarize(cases, methods_seen), "cases": cases}
    write_real_report(report, sheets, sides, out)
    return report


FIGURES = ("lip_activity", "loud_minus_quiet", "bilabial_closed", "open_vowel_open", "silence_jitter",
           "silence_gap", "face_found", "sharpness", "ssim_above_mouth", "background_psnr",
           "real_correlation", "real_time_factor")


def summarize(cases: list[dict], methods: list[str]) -> dict:
    """Per method and figure: each photo's mean over its clips, then the median over photos;
    for sharpness also the minimum over photos (``sharpness_min``)."""
    summary = {}
    for method in methods:
        rows = [c for c in cases if c["method"] == method]
        per_photo = {figure: [] for figure in FIGURES}
        for photo in dict.fromkeys(c["photo"] for c in rows):
            for figure in FIGURES:
                values = [c[figure] for c in rows if c["photo"] == photo and c[figure] is not None]
                if values:
                    per_photo[figure].append(float(np.mean(values)))
        summary[method] = {f: float(np.median(v)) if v else None for f, v in per_photo.items()}
        summary[method]["sharpness_min"] = min(per_photo["sharpness"], default=None)
    return summary


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _load_clip(name: str, seconds: float, lead: float = LEAD_SILENCE) -> Clip:
    """The first ``seconds`` of clip ``name`` (a file of any audio or video) after ``lead``
    seconds of silence."""
    from talking.audio import frame_rms, load_audio, num_video_frames
    from talking.phonemes import align_phones, recognise_words

    whole = load_audio(speech_path(name))
    speech = whole[: int(round(seconds * SAMPLE_RATE))]
    wav = np.concatenate([np.zeros(int(lead * SAMPLE_RATE), np.float32), speech])
    rms = frame_rms(wav, SAMPLE_RATE, FPS, num_video_frames(len(wav)))
    # a known transcript holds for the whole clip only
    known = TRANSCRIPTS.get(name) if len(speech) == len(whole) else None
    words = known or recognise_words(wav, SAMPLE_RATE)
    return Clip(name, wav, rms, words, align_phones(wav, SAMPLE_RATE, words) if words else [])


def _video_case(video: Path, seconds: float) -> tuple[RealPhoto, Clip, MakeVideo]:
    """A real talking-head ``video``: its first frame as the photo (at most MAX_PHOTO_SIDE),
    its sound as the speech (no silence added: it must stay in step with the frames), and a
    method that re-encodes its own frames, the real speaker's lips."""
    from talking.config import MAX_PHOTO_SIDE
    from talking.realface import find_face_mesh
    from talking.video import read_video

    def fitted(frame: np.ndarray) -> np.ndarray:
        scale = min(1.0, MAX_PHOTO_SIDE / max(frame.shape[:2]))
        size = (round(frame.shape[1] * scale), round(frame.shape[0] * scale))
        return frame if scale == 1 else cv2.resize(frame, size, interpolation=cv2.INTER_AREA)

    first = fitted(next(iter(read_video(video, fps=FPS))))
    mesh = find_face_mesh(first)
    if mesh is None:
        raise TalkingError(f"The face tracker finds no face in the first frame of {video.name}.")
    photo = RealPhoto(video.stem, round(float(np.ptp(mesh.points[:, 0]))), first)

    def real_frames(_: np.ndarray, wav: np.ndarray, words: str, path: Path) -> None:
        """The video's own frames for as long as its sound, the last one held where the picture
        ends before the sound (as a made video's frames cover the whole sound)."""
        from talking.audio import num_video_frames

        def held() -> Iterator[np.ndarray]:
            frame = None
            for frame in read_video(video, fps=FPS):
                yield fitted(frame)
            while frame is not None:
                yield fitted(frame)

        encode(itertools.islice(held(), num_video_frames(len(wav))), wav, path)

    return photo, _load_clip(str(video), seconds, lead=0.0), real_frames


# ---------------------------------------------------------------------------------------------
# Reading the videos back
# ---------------------------------------------------------------------------------------------


def _photo_reference(photo: RealPhoto) -> tuple[rm.FaceRegions, float]:
    """The photo's regions and its own lip gap, from the tracker."""
    from talking.realface import find_face_mesh

    mesh = find_face_mesh(photo.image)
    if mesh is None:
        raise TalkingError(f"The face tracker finds no face in {photo.case}.")
    return rm.FaceRegions.from_landmarks(mesh.ibug68(), photo.image.shape), mesh.lip_gap()


def _decoded(path: Path, shape: tuple[int, ...]) -> Iterator[np.ndarray]:
    """The frames of ``path`` without the row or column the encoder pads odd sizes with."""
    from talking.video import read_video

    for frame in read_video(path):
        yield frame[: shape[0], : shape[1]]


def _track(path: Path, photo: np.ndarray, regions: rm.FaceRegions) -> Track:
    """Read ``path`` once: the tracker's lip gaps, and the box above the mouth of each frame, the
    middle frame and every k-th mouth crop, taken as the frames pass to the tracker."""
    from talking.realface import lip_gaps
    from talking.video import probe

    total = probe(path).num_frames or 1
    step = max(1, int(np.ceil(total / SHEET_COLUMNS)))
    seen: dict = {"above": [], "mouths": [], "middle": None}

    def tap(frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for i, frame in enumerate(frames):
            seen["above"].append(rm.crop(frame, regions.above_mouth).copy())
            if i % step == 0:
                seen["mouths"].append(rm.crop(frame, regions.mouth_view).copy())
            if i == total // 2:
                seen["middle"] = frame.copy()
            yield frame

    gaps = lip_gaps(tap(_decoded(path, photo.shape)))
    if seen["middle"] is None:
        raise TalkingError(f"{path.name} has fewer frames than its header says.")
    return Track(gaps, seen["above"], seen["middle"], seen["mouths"])


def _measures(track: Track, clip: Clip, photo: np.ndarray, photo_gap: float, regions: rm.FaceRegions,
              ceiling: float) -> dict:
    """The figures of one method on one photo and clip (see the module's docstring)."""
    if len(track.gaps) < len(clip.rms):
        raise TalkingError(f"a video of {clip.name} has {len(track.gaps)} frames; its sound needs "
                           f"{len(clip.rms)}")
    gaps = track.gaps[: len(clip.rms)]
    closed = min(photo_gap, rm.CLOSED_GAP)
    closed_below, open_above = closed + rm.CLOSE_MARGIN, closed + rm.OPEN_MARGIN
    phones = clip.phones
    jitter, silent_gap = rm.silence_stillness(gaps, rm.silent_frames(clip.rms))
    above = rm.crop(photo, regions.above_mouth)
    ssim_shut = [rm.luma_ssim(track.above[i], above) for i in np.flatnonzero(gaps <= closed_below)]
    track.above.clear()  # measured; the sheets need only the mouths
    return {
        "lip_activity": rm.lip_activity(gaps),
        "loud_minus_quiet": rm.loud_minus_quiet(gaps, clip.rms),
        "bilabial_closed": rm.viseme_accuracy(gaps, phones, FPS, BILABIALS, closed_below=closed_below),
        "open_vowel_open": rm.viseme_accuracy(gaps, phones, FPS, rm.OPEN_VOWELS, open_above=open_above),
        "silence_jitter": jitter,
        "silence_gap": silent_gap,
        "face_found": float(np.isfinite(gaps).mean()),
        "sharpness": rm.laplacian_variance(track.middle, regions.face) / max(ceiling, 1e-9),
        "ssim_above_mouth": min(ssim_shut, default=None),
        "background_psnr": rm.background_psnr(track.middle, photo, regions.background),
    }
