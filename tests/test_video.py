"""Videos out (browser-ready mp4 with the speech, written atomically) and back in."""

import contextlib
import os
import stat
import subprocess
import sys
import tempfile
import tracemalloc

import imageio_ffmpeg
import numpy as np
import pytest
import soundfile

from talking.audio import load_audio
from talking.errors import TalkingError
from talking.video import VideoWriter, probe, read_video, write_video

FPS, RATE = 25, 22050


def tone(seconds: float) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def frames(count: int, height: int = 64, width: int = 96):
    """Frames whose colour encodes their index, made one at a time."""
    for index in range(count):
        frame = np.zeros((height, width, 3), np.uint8)
        frame[..., 0] = 8 * index % 256
        frame[:, : width // 2, 1] = 200
        yield frame


def test_written_mp4_is_browser_ready_with_the_right_frame_count(tmp_path):
    path = write_video(tmp_path / "talk.mp4", frames(30), tone(30 / FPS))
    info = probe(path)
    assert (info.codec, info.pix_fmt, info.fps, info.num_frames) == ("h264", "yuv420p", 25.0, 30)
    assert (info.audio_codec, info.sample_rate) == ("aac", RATE)
    assert (info.width, info.height) == (96, 64)


def test_moov_atom_comes_first_for_streaming(tmp_path):
    path = write_video(tmp_path / "talk.mp4", frames(10), tone(0.4))
    head = path.read_bytes()[:4096]
    assert 0 <= head.find(b"moov") < head.find(b"mdat")


def test_audio_and_video_durations_agree_within_a_frame(tmp_path):
    speech = tone(1.23)  # 30.75 frames of audio -> ceil = 31 video frames
    path = write_video(tmp_path / "talk.mp4", frames(31), speech)
    decoded = load_audio(path)
    assert abs(len(decoded) / RATE - probe(path).num_frames / FPS) < 1 / FPS
    assert abs(len(decoded) - len(speech)) < RATE / FPS


def test_audio_can_be_given_as_a_file(tmp_path):
    soundfile.write(tmp_path / "speech.wav", tone(0.8), RATE)
    info = probe(write_video(tmp_path / "talk.mp4", frames(20), tmp_path / "speech.wav"))
    assert info.has_audio and info.num_frames == 20


def test_odd_frame_sizes_are_padded_to_even(tmp_path):
    info = probe(write_video(tmp_path / "odd.mp4", frames(5, 63, 65), tone(0.2)))
    assert (info.width, info.height, info.pix_fmt) == (66, 64, "yuv420p")


def test_frames_are_streamed_not_collected(tmp_path):
    tracemalloc.start()
    write_video(tmp_path / "long.mp4", frames(300, 256, 256), tone(12.0))  # 59 MB of frames
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8_000_000


def test_failing_frame_source_leaves_no_file(tmp_path):
    def broken():
        yield from frames(5)
        raise RuntimeError("generator failed")

    with pytest.raises(RuntimeError, match="generator failed"):
        write_video(tmp_path / "talk.mp4", broken(), tone(1.0))
    assert list(tmp_path.iterdir()) == []


def test_failure_keeps_an_existing_file_untouched(tmp_path):
    target = tmp_path / "talk.mp4"
    write_video(target, frames(10), tone(0.4))
    before = target.read_bytes()
    with pytest.raises(ValueError, match="one size"):
        with VideoWriter(target, tone(0.4)) as writer:
            writer.write(np.zeros((64, 96, 3), np.uint8))
            writer.write(np.zeros((32, 32, 3), np.uint8))
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["talk.mp4"]


@contextlib.contextmanager
def umask(mask: int):
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_the_video_gets_the_permissions_the_umask_gives_also_when_replacing_a_file(tmp_path, mask,
                                                                                   mode):
    """Once always 0600 (mkstemp), even replacing a 0644 file."""
    target = tmp_path / "talk.mp4"
    target.write_bytes(b"an older video")
    target.chmod(0o644)
    with umask(mask):
        write_video(target, frames(3), tone(0.12))
    assert stat.S_IMODE(target.stat().st_mode) == mode


def a_finished_process_id() -> int:
    process = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                             capture_output=True, text=True, check=True)
    return int(process.stdout)


def test_temporary_files_of_killed_writers_are_swept_and_those_of_running_ones_kept(tmp_path):
    """A writer killed outright (SIGKILL) leaves its hidden partial video and wav beside the
    target; the next writer into that folder deletes them."""
    dead, alive = a_finished_process_id(), os.getppid()
    left = [tmp_path / f".talk.{dead}-0123abcd.partial.mp4", tmp_path / f".other.{dead}-89abcdef.partial.wav"]
    running = tmp_path / f".talk.{alive}-0123abcd.partial.mp4"
    mine = [tmp_path / ".talk.partial.mp4", tmp_path / "notes.12-0123abcd.partial.mp4"]
    for path in [*left, running, *mine]:
        path.write_bytes(b"half a video")
    write_video(tmp_path / "talk.mp4", frames(3), tone(0.12))
    assert sorted(tmp_path.iterdir()) == sorted([tmp_path / "talk.mp4", running, *mine])


def test_the_speech_is_staged_beside_the_video_not_in_the_temp_folder(tmp_path, monkeypatch):
    """Where a killed writer's wav can be swept (it once stayed in /tmp: 2.6 MB a minute)."""
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    with VideoWriter(tmp_path / "out" / "talk.mp4", tone(0.12)) as writer:
        staged = sorted(path.name for path in (tmp_path / "out").iterdir())
        writer.write(next(frames(1)))
    assert sorted(name.rsplit(".", 1)[1] for name in staged) == ["mp4", "wav"]  # random names
    assert all(name.startswith(".talk.") and ".partial." in name for name in staged)
    assert list((tmp_path / "tmp").iterdir()) == []
    assert [path.name for path in (tmp_path / "out").iterdir()] == ["talk.mp4"]


def test_frames_read_back_match_what_was_written(tmp_path):
    written = list(frames(30))
    video = read_video(write_video(tmp_path / "talk.mp4", written, tone(1.2)))
    assert (video.fps, video.num_frames, video.width, video.height) == (25.0, 30, 96, 64)
    read = list(video)
    assert len(read) == 30
    errors = [np.abs(a.astype(int) - b).mean() for a, b in zip(read, written, strict=True)]
    assert max(errors) < 3


def test_reading_can_resample_the_frame_rate(tmp_path):
    path = write_video(tmp_path / "talk.mp4", frames(50), tone(2.0))
    video = read_video(path, fps=10)
    assert video.fps == 10 and video.num_frames == 20
    assert len(list(video)) == 20


def test_probe_tells_which_streams_exist(tmp_path):
    soundfile.write(tmp_path / "speech.wav", tone(0.5), RATE)
    sound_only = probe(tmp_path / "speech.wav")
    assert sound_only.has_audio and not sound_only.has_video
    silent = imageio_ffmpeg.write_frames(str(tmp_path / "silent.mp4"), (32, 32), fps=25)
    silent.send(None)
    for frame in frames(5, 32, 32):
        silent.send(frame)
    silent.close()
    picture_only = probe(tmp_path / "silent.mp4")
    assert picture_only.has_video and not picture_only.has_audio
    assert picture_only.num_frames == 5


def test_probe_of_a_non_media_file_is_a_talking_error(tmp_path):
    (tmp_path / "notes.mp4").write_text("not a video")
    with pytest.raises(TalkingError, match="notes.mp4"):
        probe(tmp_path / "notes.mp4")


def test_unreadable_audio_file_is_a_talking_error_and_leaves_no_file(tmp_path):
    (tmp_path / "speech.wav").write_text("not audio")
    with pytest.raises(TalkingError, match="talk.mp4"):
        write_video(tmp_path / "talk.mp4", frames(10), tmp_path / "speech.wav")
    assert [p.name for p in tmp_path.iterdir()] == ["speech.wav"]
