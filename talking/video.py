"""Video files: write an mp4 with the speech frame by frame; read and probe videos.

:class:`VideoWriter` feeds frames one at a time to moviepy's ffmpeg writer (the ffmpeg binary
that imageio-ffmpeg ships), so memory stays flat however long the clip. The file is what browsers
and Gradio play without re-encoding: H.264 (libx264), yuv420p, ``+faststart``, AAC audio. It
appears atomically: ffmpeg writes a hidden temporary file beside the target, which replaces the
target only once everything has succeeded; on any failure, an exception from the caller's frame
loop included, the temporary file is deleted and a file already under the target name is left
as it was. The file gets the permissions any new file gets (0666 less the umask).

The temporary files (the video and the speech as wav) are named
``.<stem>.<pid>-<random>.partial.(mp4|wav)`` beside the target. A process killed outright
(SIGKILL, a power cut) cannot delete them, so every writer first deletes those of processes that
no longer run; the CLI turns SIGTERM into an exception, so that ``timeout`` and container stops
clean up at once.

:func:`read_video` streams (H, W, 3) uint8 RGB frames, optionally resampled to another frame
rate; :func:`probe` reports a file's streams. Both run ffmpeg with argument lists, never a shell.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import secrets
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from talking.config import FPS, SAMPLE_RATE
from talking.errors import TalkingError


class VideoWriter:
    """Writes ``path`` (.mp4) from frames given one by one, with ``audio`` as its sound track.

    ``audio`` is (S,) float32 at ``sample_rate`` or the path of any file ffmpeg can read (its
    first audio stream is used). Frames are (H, W, 3) uint8 RGB, all of one size; an odd height or
    width is padded by repeating the last row or column, as yuv420p needs even sizes. The caller
    gives ``ceil(duration * fps)`` frames so that picture and sound end within one frame.

    Use as a context manager::

        with VideoWriter("out.mp4", wav) as writer:
            for frame in frames:
                writer.write(frame)
    """

    def __init__(self, path: str | os.PathLike, audio: np.ndarray | str | os.PathLike,
                 fps: float = FPS, sample_rate: int = SAMPLE_RATE, crf: int = 18,
                 preset: str = "medium"):
        self.path = Path(path)
        self.audio = audio
        self.fps = fps
        self.sample_rate = sample_rate
        self.crf = crf
        self.preset = preset
        self.num_frames = 0
        self._stack = contextlib.ExitStack()
        self._writer = None
        self._size: tuple[int, int] | None = None  # (height, width) of the frames given

    def __enter__(self) -> VideoWriter:
        with self._stack:
            # A path that cannot be written fails here, before any frame is made.
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                sweep_partial_files(self.path.parent)
                self._partial = self._partial_file(".mp4")
                if self.path.is_dir():
                    raise TalkingError(f"Cannot write {self.path}: it is a folder.")
            except OSError as error:
                raise TalkingError(f"Cannot write {self.path.name} ({error.strerror}: "
                                   f"{error.filename}).") from error
            self._audio_file = self._audio_path()
            self._log = self._stack.enter_context(
                tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace"))
            self._stack = self._stack.pop_all()
        return self

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame."""
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frames must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
        if self._writer is None:
            self._open(frame.shape[:2])
        if frame.shape[:2] != self._size:
            raise ValueError(f"frame {self.num_frames} is {frame.shape[:2]}, the first was "
                             f"{self._size}; all frames must have one size")
        height, width = self._size
        if height % 2 or width % 2:
            frame = np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        try:
            self._writer.write_frame(np.ascontiguousarray(frame))
        except OSError as error:
            raise TalkingError(f"Writing {self.path.name} failed: {self._ffmpeg_error()}") from error
        self.num_frames += 1

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        with self._stack:
            if exc_type is not None:
                self._abort()
                return
            if self._writer is None:
                raise ValueError(f"no frames were given for {self.path.name}")
            process = self._writer.proc
            self._writer.close()
            if process.returncode != 0:
                raise TalkingError(f"Writing {self.path.name} failed: {self._ffmpeg_error()}")
            os.replace(self._partial, self.path)

    def _open(self, size: tuple[int, int]) -> None:
        from moviepy.video.io.ffmpeg_writer import FFMPEG_VideoWriter

        self._size = size
        height, width = size[0] + size[0] % 2, size[1] + size[1] % 2
        self._writer = FFMPEG_VideoWriter(
            str(self._partial), (width, height), self.fps, codec="libx264",
            audiofile=str(self._audio_file), audio_codec="aac", preset=self.preset,
            logfile=self._log,
            # moviepy asks libx264 for yuva420p, which ffmpeg downgrades to yuv420p with a warning.
            # One encoder thread: the other core renders the next frames (2-core machines, Spaces).
            ffmpeg_params=["-map", "0:v:0", "-map", "1:a:0", "-crf", str(self.crf),
                           "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-threads", "1"])

    def _abort(self) -> None:
        if self._writer is not None:
            self._writer.proc.kill()
            with contextlib.suppress(OSError):  # the killed ffmpeg's stdin is a broken pipe
                self._writer.close()

    def _partial_file(self, suffix: str) -> Path:
        """A new empty hidden file beside the target, deleted on exit; created with mode 0666
        so that the umask, not this code, decides who may read the video."""
        name = f".{self.path.stem[:64]}.{os.getpid()}-{secrets.token_hex(4)}.partial{suffix}"
        path = self.path.parent / name
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        self._stack.callback(path.unlink, missing_ok=True)
        return path

    def _audio_path(self) -> Path:
        if not isinstance(self.audio, np.ndarray):
            path = Path(self.audio)
            if not path.is_file():
                raise TalkingError(f"Audio file not found: {path}")
            return path
        import soundfile

        if self.audio.ndim != 1 or len(self.audio) == 0:
            raise ValueError(f"audio must be (S,) samples, got shape {self.audio.shape}")
        path = self._partial_file(".wav")
        soundfile.write(path, np.clip(self.audio, -1.0, 1.0), self.sample_rate, subtype="PCM_16")
        return path

    def _ffmpeg_error(self) -> str:
        self._log.seek(0)
        lines = [line.strip() for line in self._log.read().splitlines() if line.strip()]
        errors = [line for line in lines if "error" in line.lower()]
        return (errors or lines or ["ffmpeg stopped without a message"])[-1]


_PARTIAL_NAME = re.compile(r"\..*\.(\d+)-[0-9a-f]{8}\.partial\.(?:mp4|wav)")


def sweep_partial_files(folder: Path) -> None:
    """Delete the temporary files in ``folder`` that writers killed outright left behind: those
    whose process id names no running process."""
    for entry in folder.iterdir():
        match = _PARTIAL_NAME.fullmatch(entry.name)
        if match and not _is_running(int(match.group(1))):
            entry.unlink(missing_ok=True)


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's process; a pid beyond any real one
        return True
    return True


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray],
                audio: np.ndarray | str | os.PathLike, fps: float = FPS,
                sample_rate: int = SAMPLE_RATE) -> Path:
    """Write ``frames`` (each (H, W, 3) uint8) with ``audio`` to the mp4 ``path``; see
    :class:`VideoWriter`. Frames are consumed one at a time. Returns ``path``."""
    with VideoWriter(path, audio, fps=fps, sample_rate=sample_rate) as writer:
        for frame in frames:
            writer.write(frame)
    return Path(path)


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What a media file holds. Sizes are as displayed (after any rotation the file asks for);
    ``num_frames`` counts the packets of the first video stream; ``duration`` is the container's,
    in seconds."""

    has_video: bool
    has_audio: bool
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    num_frames: int | None = None
    duration: float | None = None
    codec: str | None = None
    pix_fmt: str | None = None
    audio_codec: str | None = None
    sample_rate: int | None = None


def probe(path: str | os.PathLike) -> VideoInfo:
    """Streams of ``path`` read from ffmpeg's report; :class:`TalkingError` if it is not media."""
    import imageio_ffmpeg

    path = Path(path)
    if not path.is_file():
        raise TalkingError(f"Video file not found: {path}")
    # Copying the video stream to the null muxer counts its frames without decoding them.
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path),
               "-map", "0:v:0?", "-c", "copy", "-f", "null", "-"]
    report = subprocess.run(command, capture_output=True, timeout=300, check=False)
    text = report.stderr.decode(errors="replace")
    header = re.split(r"^(?:Stream mapping:|Output #0)", text, maxsplit=1, flags=re.M)[0]
    if "Input #0" not in header:
        raise TalkingError(f"{path.name}: not a video or audio file that ffmpeg can read.")
    video = re.search(r"Stream #0:\d+.*?: Video: (.*)", header)
    if video and "(attached pic)" in video.group(1):  # cover art of an audio file
        video = None
    audio = re.search(r"Stream #0:\d+.*?: Audio: (.*)", header)
    info = VideoInfo(has_video=video is not None, has_audio=audio is not None,
                     duration=_duration(header))
    if audio:
        rate = re.search(r"(\d+) Hz", audio.group(1))
        info = dataclasses.replace(info, audio_codec=audio.group(1).split()[0].strip(","),
                                   sample_rate=int(rate.group(1)) if rate else None)
    if video:
        info = dataclasses.replace(info, **_video_fields(video.group(1), header, text))
    return info


def _duration(header: str) -> float | None:
    match = re.search(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", header)
    if not match:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _video_fields(line: str, header: str, report: str) -> dict:
    """Fields of :class:`VideoInfo` from ffmpeg's ``Video:`` line and its report."""
    parts = re.split(r",\s*(?![^()]*\))", line)  # commas outside parentheses
    sizes = [re.match(r"(\d+)x(\d+)", part) for part in parts[1:]]
    size = next((match for match in sizes if match), None)
    width, height = (int(size.group(1)), int(size.group(2))) if size else (None, None)
    rotation = re.search(r"rotation of (-?[\d.]+) degrees", header)
    if rotation and round(abs(float(rotation.group(1)))) % 180 == 90:
        width, height = height, width
    rate = re.search(r"([\d.]+)(k?) fps", line) or re.search(r"([\d.]+)(k?) tbr", line)
    frames = re.findall(r"frame=\s*(\d+)", report)
    return {
        "codec": parts[0].split()[0],
        "pix_fmt": parts[1].split("(")[0].strip() if len(parts) > 1 else None,
        "width": width,
        "height": height,
        "fps": float(rate.group(1)) * (1000 if rate.group(2) else 1) if rate else None,
        "num_frames": int(frames[-1]) if frames else None,
    }


@dataclasses.dataclass(frozen=True)
class VideoFrames:
    """The frames of a video file, decoded as they are iterated: (H, W, 3) uint8 RGB each.

    ``fps`` is the rate the frames come at; ``num_frames`` the file's frame count, or, when the
    video is resampled, the count its duration implies (ffmpeg's fps filter may differ by one).
    """

    path: Path
    fps: float
    width: int
    height: int
    num_frames: int | None
    resample: bool

    def __iter__(self) -> Iterator[np.ndarray]:
        import imageio_ffmpeg

        output = ["-vf", f"fps={self.fps}"] if self.resample else []
        stream = imageio_ffmpeg.read_frames(str(self.path), input_params=["-nostdin"],
                                            output_params=output)
        try:
            width, height = next(stream)["size"]
            for data in stream:
                yield np.frombuffer(data, np.uint8).reshape(height, width, 3)
        except (OSError, RuntimeError) as error:
            raise TalkingError(f"{self.path.name}: cannot decode the video ({error}).") from error
        finally:
            stream.close()


def read_video(path: str | os.PathLike, fps: float | None = None) -> VideoFrames:
    """Frames of the video ``path``, at its own rate or resampled to ``fps`` (frames dropped or
    repeated by ffmpeg's fps filter). :class:`TalkingError` if it has no video stream."""
    info = probe(path)
    if not info.has_video:
        raise TalkingError(f"{Path(path).name}: the file has no video stream.")
    if fps is None and not info.fps:
        raise TalkingError(f"{Path(path).name}: the video's frame rate is unknown.")
    resample = fps is not None and fps != info.fps
    num_frames = info.num_frames
    if resample:
        num_frames = round(info.duration * fps) if info.duration else None
    return VideoFrames(Path(path), fps or info.fps, info.width, info.height, num_frames, resample)
