"""Bad input: whatever bytes, arrays, photos or output paths a user gives, the loaders and
``generate_video`` end in success or one :class:`TalkingError`, within a time bound, and leave no
file under the output name (a file already there is untouched). Uploaded file names never choose
where the app writes.

The property tests (hypothesis) draw few examples each, so that the suite stays fast; the
64-megapixel photo is marked slow.
"""

from __future__ import annotations

import contextlib
import functools
import io
import struct
import subprocess
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import soundfile
from appserver import fresh_checkpoint, import_app
from faces import photo_with_face
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from talking.audio import load_audio
from talking.config import SAMPLE_RATE, AudioConfig
from talking.errors import TalkingError
from talking.generate import GenerateOptions, generate_video
from talking.image import load_image
from talking.video import probe

TIME_LIMIT = 30.0  # seconds one input may take, on a 2-core machine shared with training runs
FEW = settings(max_examples=15, deadline=None, derandomize=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
AUDIO_NAMES = ["speech.wav", "speech.mp3", "speech.flac", "speech.ogg", "speech.m4a",
               "speech.webm", "speech.txt", "speech"]
IMAGE_NAMES = ["face.jpg", "face.png", "face.gif", "face.webp", "face.tiff", "face.bmp",
               "face.heic", "face"]


def outcome(function: Callable, *args, **kwargs):
    """What ``function`` returns, or the TalkingError it raises; any other exception fails the
    test, and so does taking longer than TIME_LIMIT."""
    start = time.monotonic()
    try:
        result = function(*args, **kwargs)
    except TalkingError as error:
        result = error
    assert time.monotonic() - start < TIME_LIMIT, f"{function.__name__} took too long"
    return result


@contextlib.contextmanager
def file_named(name: str, content: bytes) -> Iterator[Path]:
    """``content`` in a fresh folder under ``name`` (hypothesis runs many examples per test)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(content)
        yield path


def assert_is_speech(wav: np.ndarray, max_seconds: float = 300.0) -> None:
    assert wav.dtype == np.float32 and wav.ndim == 1
    assert np.isfinite(wav).all()
    assert 0.2 * SAMPLE_RATE <= len(wav) <= max_seconds * SAMPLE_RATE


class PeakMemory:
    """How far (MB) a block raised this process's peak resident memory (Linux):
    ``with PeakMemory() as peak: ...``, then ``peak.growth``."""

    status = Path("/proc/self/status")

    def __enter__(self) -> PeakMemory:
        if not self.status.exists():
            pytest.skip("needs Linux's /proc")
        Path("/proc/self/clear_refs").write_text("5")  # resets the peak (VmHWM) to the current RSS
        self.before = self.read("VmRSS")
        return self

    def __exit__(self, *exc_info) -> None:
        self.growth = self.read("VmHWM") - self.before

    def read(self, field: str) -> float:
        return int(self.status.read_text().split(f"{field}:")[1].split()[0]) / 1024


# ---------------------------------------------------------------------------------------------
# Inputs, made once
# ---------------------------------------------------------------------------------------------


def tone(seconds: float, rate: int = SAMPLE_RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32)


@functools.cache
def speech_bytes(suffix: str) -> bytes:
    """One second of a tone as a ``suffix`` file (wav, flac, ogg, mp3 or m4a)."""
    buffer = io.BytesIO()
    if suffix == "m4a":
        with tempfile.TemporaryDirectory() as folder:
            wav, m4a = Path(folder) / "in.wav", Path(folder) / "out.m4a"
            soundfile.write(wav, tone(1.0), SAMPLE_RATE)
            command = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(wav), "-c:a", "aac",
                       str(m4a)]
            subprocess.run(command, check=True)
            return m4a.read_bytes()
    soundfile.write(buffer, tone(1.0), SAMPLE_RATE, format=suffix.upper())
    return buffer.getvalue()


def ffmpeg(*args: str) -> bytes:
    """What the ffmpeg binary that imageio-ffmpeg ships writes to stdout for ``args``."""
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", *args]
    return subprocess.run(command, check=True, capture_output=True, timeout=120).stdout


def ffmpeg_samples(path: Path) -> int:
    """Samples ffmpeg decodes from the first audio stream of ``path``, mono at 22050 Hz (0 when
    it decodes nothing)."""
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(path), "-map",
               "0:a:0", "-f", "f32le", "-ac", "1", "-ar", str(SAMPLE_RATE), "-"]
    return len(subprocess.run(command, capture_output=True, timeout=120).stdout) // 4


MP3_SECONDS = 3.0


@functools.cache
def mp3_bytes(tags: bool, cover_art: bool, xing: bool, vbr: bool) -> bytes:
    """MP3_SECONDS of a 44.1 kHz tone as an mp3 as downloads come: ID3v2 tags, cover art (an
    attached picture in the tags), with or without a Xing header, constant or variable bitrate."""
    with tempfile.TemporaryDirectory() as folder:
        art, mp3 = Path(folder) / "art.png", Path(folder) / "speech.mp3"
        noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        Image.fromarray(noise).save(art)
        inputs = ["-f", "lavfi", "-t", str(MP3_SECONDS), "-i", "sine=frequency=220:sample_rate=44100"]
        options = ["-map", "0:a", "-id3v2_version", "3", "-write_xing", str(int(xing))]
        options += ["-q:a", "6"] if vbr else ["-b:a", "64k"]
        if tags:
            options += ["-metadata", "title=" + "A long title " * 200, "-metadata", "artist=Someone"]
        if cover_art:
            inputs += ["-i", str(art)]
            options += ["-map", "1:v", "-c:v", "copy", "-disposition:v", "attached_pic"]
        ffmpeg(*inputs, *options, str(mp3))
        return mp3.read_bytes()


@functools.cache
def face_photo() -> np.ndarray:
    """(480, 640, 3) uint8: a textured photo with one frontal face."""
    return photo_with_face(seed=1, x=200, y=100, size=256)[0]


def image_bytes(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def wav_with_header(rate: int, channels: int, bits: int, data: bytes, floats: bool = False) -> bytes:
    """A RIFF/WAVE file whose header says whatever it is told, followed by ``data``."""
    block_align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 3 if floats else 1, channels, rate,
                      rate * block_align & 0xFFFFFFFF, block_align & 0xFFFF, bits)
    return (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + b"fmt " + struct.pack("<I", 16)
            + fmt + b"data" + struct.pack("<I", len(data)) + data)


def png_of_zeros(width: int, height: int, bit_depth: int = 8, colour_type: int = 2) -> bytes:
    """A valid PNG of black pixels, compressed row by row: a few hundred kB can hold 64
    megapixels (a decompression bomb). Colour type 2 is RGB, 6 RGBA, 0 greyscale."""
    channels = {0: 1, 2: 3, 6: 4}[colour_type]

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    row = b"\0" * (1 + width * channels * bit_depth // 8)  # filter byte 0, then the pixels
    compressor = zlib.compressobj(9)
    pixels = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
            + chunk(b"IEND", b""))


def gif_claiming(width: int, height: int) -> bytes:
    """A 1x1 GIF whose logical screen claims ``width`` x ``height``."""
    data = bytearray(image_bytes(Image.new("P", (1, 1)), "GIF"))
    data[6:10] = struct.pack("<HH", width, height)
    return bytes(data)


def jpeg_claiming(width: int, height: int) -> bytes:
    """An 8x8 JPEG whose frame header (SOF0) claims ``width`` x ``height``."""
    data = bytearray(image_bytes(Image.new("RGB", (8, 8)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5: sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


# ---------------------------------------------------------------------------------------------
# Audio
# ---------------------------------------------------------------------------------------------


@FEW
@given(content=st.binary(max_size=4096), name=st.sampled_from(AUDIO_NAMES))
def test_random_bytes_under_any_audio_name_load_or_are_refused(content, name):
    with file_named(name, content) as path:
        result = outcome(load_audio, path)
    if not isinstance(result, TalkingError):
        assert_is_speech(result)


@FEW
@given(suffix=st.sampled_from(["wav", "flac", "ogg", "mp3", "m4a"]),
       kept=st.floats(0.0, 1.0, exclude_max=True))
def test_truncated_audio_files_load_what_is_there_or_are_refused(suffix, kept):
    whole = speech_bytes(suffix)
    with file_named(f"speech.{suffix}", whole[: int(len(whole) * kept)]) as path:
        result = outcome(load_audio, path)
        decodable = ffmpeg_samples(path)
    if not isinstance(result, TalkingError):
        assert_is_speech(result, max_seconds=1.1)  # what there is, never more
        # ffmpeg keeps the padding of Vorbis's last packet (up to 1024 samples), libsndfile drops it
        assert decodable - (1024 if suffix == "ogg" else 0) <= len(result) <= decodable
    else:
        assert decodable < AudioConfig().min_seconds * SAMPLE_RATE + 1024


@FEW
@given(tags=st.booleans(), cover_art=st.booleans(), xing=st.booleans(), vbr=st.booleans(),
       kept=st.one_of(st.just(1.0), st.floats(0.0, 1.0)))
@example(tags=True, cover_art=True, xing=False, vbr=False, kept=1.0)  # once read as 4.9 s
@example(tags=False, cover_art=False, xing=False, vbr=True, kept=1.0)  # once read as 0.5 s
@example(tags=True, cover_art=False, xing=True, vbr=False, kept=0.6)  # once read as 3.0 s
def test_mp3_decodes_to_exactly_what_ffmpeg_decodes(tags, cover_art, xing, vbr, kept):
    """libsndfile's mp3 length is an estimate (ID3 bytes counted as audio, a Xing frame count,
    the first frame's bitrate) that its decoder does not keep to: speech came out replayed,
    looped or cut."""
    whole = mp3_bytes(tags, cover_art, xing, vbr)
    with file_named("speech.mp3", whole[: int(len(whole) * kept)]) as path:
        result = outcome(load_audio, path)
        decodable = ffmpeg_samples(path)
    if isinstance(result, TalkingError):
        assert decodable < AudioConfig().min_seconds * SAMPLE_RATE
    else:
        assert len(result) == decodable
        # ffmpeg itself: the tone, plus an encoder delay when no Xing header says how to trim it
        assert len(result) <= (MP3_SECONDS + 0.05) * SAMPLE_RATE
        assert kept < 1 or len(result) >= MP3_SECONDS * SAMPLE_RATE


@pytest.mark.parametrize("name", AUDIO_NAMES)
def test_an_empty_audio_file_is_refused_whatever_its_name(name):
    with file_named(name, b"") as path, pytest.raises(TalkingError, match="empty"):
        load_audio(path)


@pytest.mark.parametrize("name", ["speech.png", "speech.mp3", "speech.txt", "speech"])
def test_audio_is_read_by_its_content_not_its_extension(name):
    with file_named("speech.wav", speech_bytes("wav")) as right:
        expected = load_audio(right)
    with file_named(name, speech_bytes("wav")) as wrong:
        np.testing.assert_array_equal(load_audio(wrong), expected)


def test_a_photo_named_like_audio_is_refused_for_having_no_audio_track():
    photo = image_bytes(Image.fromarray(face_photo()), "PNG")
    with file_named("speech.wav", photo) as path, pytest.raises(
            TalkingError, match="speech.wav: the file has no audio track"):
        load_audio(path)


def test_a_video_without_sound_is_refused_for_having_no_audio_track(tmp_path):
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=25", "-t", "1", str(tmp_path / "silent.mp4"))
    with pytest.raises(TalkingError, match="silent.mp4: the file has no audio track"):
        load_audio(tmp_path / "silent.mp4")


@FEW
@given(rate=st.integers(0, 2**32 - 1), channels=st.integers(0, 2**16 - 1),
       bits=st.sampled_from([8, 16, 24, 32]), floats=st.booleans(), data=st.binary(max_size=8192))
def test_wav_headers_with_absurd_rates_and_channel_counts_load_or_are_refused(
        rate, channels, bits, floats, data):
    with file_named("speech.wav", wav_with_header(rate, channels, bits, data, floats)) as path:
        result = outcome(load_audio, path)
    if not isinstance(result, TalkingError):
        assert_is_speech(result)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_float_wav_with_non_finite_samples_is_refused(bad, tmp_path):
    wav = tone(1.0)
    wav[500] = bad
    soundfile.write(tmp_path / "speech.wav", wav, SAMPLE_RATE, subtype="FLOAT")
    with pytest.raises(TalkingError, match="NaN or infinite"):
        load_audio(tmp_path / "speech.wav")


@pytest.mark.parametrize("suffix", ["mp3", "m4a"])  # read by libsndfile, decoded by ffmpeg
def test_long_compressed_speech_is_refused_without_decoding_it_all(tmp_path, suffix):
    """A 25 MB upload holds hours of low-bitrate speech; decoding stops just past the limit.
    (Decoding these 10 minutes whole took 80-110 MB.)"""
    path = tmp_path / f"speech.{suffix}"
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
               "sine=frequency=200:sample_rate=16000", "-t", "600", "-b:a", "8k", str(path)]
    subprocess.run(command, check=True, timeout=120)
    with PeakMemory() as peak, pytest.raises(TalkingError, match="more than 11 s long; the limit is 10 s"):
        load_audio(path, config=AudioConfig(max_seconds=10))
    assert peak.growth < 30, f"peak memory grew by {peak.growth:.0f} MB"


audio_arrays = hnp.arrays(
    dtype=st.sampled_from([np.int8, np.int16, np.int32, np.uint8, np.float16, np.float32,
                           np.float64, np.bool_, np.complex64]),
    shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=3000).filter(
        lambda shape: np.prod(shape) <= 20_000),
)
sample_rates = st.one_of(st.integers(-10, 10**7), st.floats(allow_nan=True, allow_infinity=True),
                         st.sampled_from([None, "22050", "fast"]))


@FEW
@given(array=audio_arrays, rate=sample_rates)
@example(array=np.zeros((2, 8000), np.bool_), rate=8000)  # once a ValueError from np.iinfo
@example(array=np.zeros((0, 5), np.float32), rate=8000)  # once "NaN samples"
@example(array=np.zeros(8000, np.float32), rate=float("nan"))  # once a ValueError from int()
def test_any_array_with_any_sample_rate_loads_or_is_refused(array, rate):
    result = outcome(load_audio, array, rate)
    if not isinstance(result, TalkingError):
        assert_is_speech(result)


# ---------------------------------------------------------------------------------------------
# Photos
# ---------------------------------------------------------------------------------------------


@FEW
@given(content=st.binary(max_size=4096), name=st.sampled_from(IMAGE_NAMES))
def test_random_bytes_under_any_image_name_load_or_are_refused(content, name):
    with file_named(name, content) as path:
        result = outcome(load_image, path)
    if not isinstance(result, TalkingError):
        assert result.dtype == np.uint8 and result.ndim == 3 and result.shape[2] == 3


@FEW
@given(format=st.sampled_from(["PNG", "JPEG", "GIF", "WEBP", "TIFF", "BMP"]),
       kept=st.floats(0.0, 1.0, exclude_max=True))
def test_truncated_photos_load_or_are_refused(format, kept):
    whole = image_bytes(Image.fromarray(face_photo()), format)
    with file_named(f"face.{format.lower()}", whole[: int(len(whole) * kept)]) as path:
        result = outcome(load_image, path)
    if not isinstance(result, TalkingError):
        assert result.shape == (480, 640, 3)


@FEW
@given(array=hnp.arrays(
           dtype=st.sampled_from([np.uint8, np.uint16, np.int8, np.int32, np.float32, np.float64,
                                  np.bool_, np.complex64]),
           shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=64)),
       max_side=st.one_of(st.none(), st.integers(16, 32)))
@example(array=np.zeros((1, 2000, 3), np.uint8), max_side=16)  # once a cv2.error: 0 rows
def test_any_array_loads_as_a_photo_or_is_refused(array, max_side):
    result = outcome(load_image, array, max_side=max_side)
    if not isinstance(result, TalkingError):
        assert result.dtype == np.uint8 and result.ndim == 3 and result.shape[2] == 3
        assert min(result.shape[:2]) >= 1
        assert max_side is None or max(result.shape[:2]) <= max_side


MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "YCbCr", "I;16", "I", "F"]


@FEW
@given(mode=st.sampled_from(MODES), format=st.sampled_from(["PNG", "JPEG", "TIFF", "WEBP", "GIF"]),
       width=st.integers(1, 200), height=st.integers(1, 200), max_side=st.integers(16, 64),
       seed=st.integers(0, 2**16))
def test_a_photo_of_any_mode_and_size_becomes_rgb_within_max_side(mode, format, width, height,
                                                                  max_side, seed):
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 4), dtype=np.uint8)
    try:
        content = image_bytes(Image.fromarray(pixels).convert(mode), format)
    except (OSError, ValueError, KeyError):
        return  # PIL cannot write this mode in this format: not a file a user can have
    with file_named(f"face.{format.lower()}", content) as path:
        loaded = load_image(path, max_side=max_side)
    long_side = min(max_side, max(width, height))
    assert loaded.dtype == np.uint8 and loaded.ndim == 3 and loaded.shape[2] == 3
    assert max(loaded.shape[:2]) == long_side


@pytest.mark.parametrize(("mode", "format", "tolerance"), [
    ("CMYK", "JPEG", 4), ("CMYK", "TIFF", 1), ("I;16", "PNG", 1), ("I;16", "TIFF", 1)])
def test_cmyk_and_sixteen_bit_photos_keep_their_colours(mode, format, tolerance):
    colour = (40, 120, 200) if mode == "CMYK" else (90, 90, 90)
    image = Image.new("RGB", (32, 24), colour)
    image = image.convert(mode) if mode == "CMYK" else Image.fromarray(
        np.full((24, 32), 90 * 257, np.uint16))
    with file_named(f"face.{format.lower()}", image_bytes(image, format)) as path:
        loaded = load_image(path)
    assert loaded.shape == (24, 32, 3)
    assert np.abs(loaded.astype(int) - colour).max() <= tolerance


@pytest.mark.parametrize("format", ["GIF", "PNG", "WEBP"])
def test_an_animated_photo_is_read_as_its_first_frame(format):
    frames = [Image.new("RGB", (20, 10), colour) for colour in ((250, 0, 0), (0, 250, 0), (0, 0, 250))]
    content = image_bytes(frames[0], format, save_all=True, append_images=frames[1:], duration=100,
                          loop=0, **({"lossless": True} if format == "WEBP" else {}))
    with file_named(f"face.{format.lower()}", content) as path:
        loaded = load_image(path)
    assert loaded.shape == (10, 20, 3)
    assert np.abs(loaded.astype(int) - (250, 0, 0)).max() <= 2


def test_a_one_pixel_photo_loads_and_is_then_refused_for_having_no_face(checkpoint, tmp_path):
    Image.new("RGB", (1, 1), (128, 100, 90)).save(tmp_path / "dot.png")
    assert load_image(tmp_path / "dot.png").shape == (1, 1, 3)
    with pytest.raises(TalkingError, match="No face found in dot.png"):
        generate_video(tmp_path / "dot.png", speech_file(tmp_path), tmp_path / "talking.mp4",
                       GenerateOptions(checkpoint=str(checkpoint)))


@pytest.mark.parametrize(("name", "content"), [
    ("huge.png", lambda: png_of_zeros(10000, 10000, colour_type=0)),
    ("huge.gif", lambda: gif_claiming(65535, 65535)),
    ("huge.jpg", lambda: jpeg_claiming(10000, 10000)),
], ids=["png-10000x10000", "gif-65535x65535", "jpeg-10000x10000"])
def test_a_photo_over_the_pixel_limit_is_refused_from_its_header(name, content):
    with file_named(name, content()) as path:
        start = time.monotonic()
        with pytest.raises(TalkingError, match=f"{name}: the image is (too large|.* pixels)"):
            load_image(path)
    assert time.monotonic() - start < 2  # refused before decoding


@pytest.mark.slow
def test_a_64_megapixel_bomb_within_the_limit_loads_downscaled_in_bounded_memory():
    """8000 x 8000 RGBA pixels (256 MB decoded) in a 0.5 MB file, within the pixel limit: it is
    shrunk while still PIL's bytes, not as 3.6 GB of floats."""
    with file_named("bomb.png", png_of_zeros(8000, 8000, colour_type=6)) as path, PeakMemory() as peak:
        loaded = outcome(load_image, path, max_side=1024)
    assert loaded.shape == (1024, 1024, 3)
    assert peak.growth < 800, f"peak memory grew by {peak.growth:.0f} MB"


# ---------------------------------------------------------------------------------------------
# generate_video: success or one error, and never a partial file
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return fresh_checkpoint(tmp_path_factory.mktemp("man-optical"))


def speech_file(folder: Path) -> Path:
    path = folder / "speech.wav"
    path.write_bytes(speech_bytes("wav"))
    return path


def truncated(content: bytes, kept: float) -> bytes:
    return content[: int(len(content) * kept)]


photos = st.one_of(
    st.sampled_from([
        ("face.png", lambda: image_bytes(Image.fromarray(face_photo()), "PNG")),
        ("face-cmyk.jpg", lambda: image_bytes(Image.fromarray(face_photo()).convert("CMYK"), "JPEG")),
        ("dot.png", lambda: image_bytes(Image.new("RGB", (1, 1)), "PNG")),
        ("huge.gif", lambda: gif_claiming(65535, 65535)),
        ("empty.jpg", lambda: b""),
    ]).map(lambda item: (item[0], item[1]())),
    st.tuples(st.just("noise.jpg"), st.binary(max_size=2048)),
    st.tuples(st.just("cut.png"), st.floats(0, 1, exclude_max=True).map(
        lambda kept: truncated(image_bytes(Image.fromarray(face_photo()), "PNG"), kept))),
)
speeches = st.one_of(
    st.sampled_from([
        ("speech.wav", lambda: speech_bytes("wav")),
        ("speech.mp3", lambda: speech_bytes("mp3")),
        ("blip.wav", lambda: wav_with_header(22050, 1, 16, b"\0" * 200)),
        ("one-hertz.wav", lambda: wav_with_header(1, 1, 8, b"\x80" * 4000)),
        ("nan.wav", lambda: wav_with_header(22050, 1, 32, struct.pack("<f", np.nan) * 22050, True)),
        ("empty.wav", lambda: b""),
    ]).map(lambda item: (item[0], item[1]())),
    st.tuples(st.just("noise.wav"), st.binary(max_size=2048)),
    st.tuples(st.just("cut.ogg"), st.floats(0, 1, exclude_max=True).map(
        lambda kept: truncated(speech_bytes("ogg"), kept))),
)


@settings(FEW, max_examples=12)
@given(photo=photos, speech=speeches, existing=st.booleans())
def test_generate_video_makes_a_video_or_one_error_and_never_a_partial_file(
        checkpoint, photo, speech, existing):
    with tempfile.TemporaryDirectory() as tmp:
        inputs, out = Path(tmp) / "inputs", Path(tmp) / "out"
        inputs.mkdir()
        out.mkdir()
        (inputs / photo[0]).write_bytes(photo[1])
        (inputs / speech[0]).write_bytes(speech[1])
        output = out / "talking.mp4"
        if existing:
            output.write_bytes(b"yesterday's video")
        result = outcome(generate_video, inputs / photo[0], inputs / speech[0], output,
                         GenerateOptions(checkpoint=str(checkpoint), crop_only=True))
        event("refused" if isinstance(result, TalkingError) else "made a video")
        if isinstance(result, TalkingError):
            assert output.exists() == existing
            assert not existing or output.read_bytes() == b"yesterday's video"
        else:
            info = probe(output)
            assert info.has_video and info.has_audio and info.num_frames == result.num_frames
        assert list(out.iterdir()) == ([output] if existing or output.exists() else [])


@pytest.mark.parametrize(("make_output", "message"), [
    (lambda folder: folder / "talking.avi", "must be an .mp4 file"),
    (lambda folder: folder / "existing-folder.mp4", "it is a folder"),
    (lambda folder: folder / "a-file" / "talking.mp4", "Cannot write talking.mp4"),
    (lambda folder: folder / ("x" * 300 + ".mp4"), "File name too long"),
], ids=["not-mp4", "a-folder", "inside-a-file", "name-too-long"])
def test_an_output_path_that_cannot_be_written_is_one_error_before_any_frame(
        checkpoint, tmp_path, make_output, message):
    (tmp_path / "existing-folder.mp4").mkdir()
    (tmp_path / "a-file").write_text("not a folder")
    photo = tmp_path / "face.png"
    Image.fromarray(face_photo()).save(photo)
    before = sorted(tmp_path.rglob("*"))
    frames = []
    with pytest.raises(TalkingError, match=message):
        generate_video(photo, speech_file(tmp_path), make_output(tmp_path),
                       GenerateOptions(checkpoint=str(checkpoint)),
                       progress=lambda done, total: frames.append(done))
    assert frames == []
    assert sorted(tmp_path.rglob("*")) == sorted([*before, tmp_path / "speech.wav"])


# ---------------------------------------------------------------------------------------------
# The app: uploaded file names never choose where anything is written
# ---------------------------------------------------------------------------------------------


UPLOAD_NAMES = ["../../evil.mp4", "/tmp/evil.mp4", "talking.mp4", "ünïcödé 🙂 ﬁle.mp4",
                "-rf --output=x.mp4", "new\nline.mp4", "x" * 240 + ".mp4"]


@pytest.mark.parametrize("name", UPLOAD_NAMES, ids=range(len(UPLOAD_NAMES)))
def test_uploaded_file_names_never_choose_where_the_app_writes(checkpoint, tmp_path, name):
    app = import_app()
    uploads = tmp_path / "uploads" / "a" / "b"  # where Gradio keeps an upload, under its name
    uploads.mkdir(parents=True)
    face = uploads / name.lstrip("/")
    face.parent.mkdir(parents=True, exist_ok=True)
    face.write_bytes(image_bytes(Image.fromarray(face_photo()), "PNG"))
    speech = uploads / ("speech " + Path(name).name.replace(".mp4", ".wav"))
    speech.write_bytes(speech_bytes("wav"))
    before = sorted(tmp_path.rglob("*"))

    handler = app.RequestHandler({"optical": checkpoint}, app.OutputFolders(tmp_path / "outputs"),
                                 device="cpu")
    video, _ = handler(str(face), str(speech), "", "en-us", "optical", None, True,
                       progress=lambda *args, **kwargs: None)

    video = Path(video)
    assert video.name == "talking.mp4" and video.parent.parent == tmp_path / "outputs"
    assert len(video.parent.name) == 32 and probe(video).has_video
    made = set(tmp_path.rglob("*")) - set(before)
    assert made == {tmp_path / "outputs", video.parent, video}


def test_a_refused_request_leaves_no_folder_behind(checkpoint, tmp_path):
    app = import_app()
    handler = app.RequestHandler({"optical": checkpoint}, app.OutputFolders(tmp_path / "outputs"),
                                 device="cpu")
    (tmp_path / "notes.wav").write_text("not audio")
    Image.fromarray(face_photo()).save(tmp_path / "face.png")
    with pytest.raises(app.gr.Error, match="notes.wav"):
        handler(str(tmp_path / "face.png"), str(tmp_path / "notes.wav"), "", "en-us", "optical",
                None, False, progress=lambda *args, **kwargs: None)
    assert list((tmp_path / "outputs").iterdir()) == []
