"""The real-input evaluation track: its measures on known answers, and one small run end to end."""

import json

import cv2
import numpy as np
import pytest

from talking import real_metrics as rm
from talking.audio import frame_rms
from talking.cli import main
from talking.phonemes import BILABIALS, Phone
from talking.real_methods import energy_motion

FPS = 25


def test_lip_activity_is_the_spread_of_the_gap_over_the_frames_with_a_face():
    t = np.arange(100)
    gaps = 0.1 + 0.05 * np.sin(2 * np.pi * t / 25)  # four whole periods: std = 0.05 / sqrt(2)
    gaps[[3, 40]] = np.nan  # the tracker lost the face
    assert rm.lip_activity(gaps) == pytest.approx(0.05 / np.sqrt(2), rel=0.02)
    assert rm.lip_activity(np.full(50, 0.2)) == pytest.approx(0.0, abs=1e-12)


def test_loud_minus_quiet_is_the_gap_of_the_loudest_third_minus_the_quietest():
    rms = np.tile([0.01, 0.2, 0.5], 20)
    gaps = np.tile([0.0, 0.05, 0.12], 20)  # opens with loudness
    assert rm.loud_minus_quiet(gaps, rms) == pytest.approx(0.12)
    assert rm.loud_minus_quiet(np.full(60, 0.07), rms) == pytest.approx(0.0)
    assert rm.loud_minus_quiet(gaps[::-1].copy(), rms) == pytest.approx(-0.12)


def test_frame_rms_of_a_sine_is_its_amplitude_over_root_two():
    sample_rate = 22050
    t = np.arange(sample_rate) / sample_rate
    wav = 0.5 * np.sin(2 * np.pi * 200 * t) * (t < 0.5)  # half a second of tone, then silence
    rms = frame_rms(wav, sample_rate, FPS, FPS)
    assert rms[:12] == pytest.approx(np.full(12, 0.5 / np.sqrt(2)), rel=0.01)
    assert np.all(rms[13:] == 0)


def test_bilabials_count_as_closed_only_when_the_lips_meet_in_or_just_before_them():
    gaps = np.full(100, 0.1)
    gaps[18] = 0.0  # closes 2 frames before /m/ at frames 20-24: lips lead the sound
    gaps[57] = 0.0  # 3 frames before /p/ at 60-64: too early
    gaps[82] = 0.01  # inside /b/ at 80-84
    phones = [Phone("M", 0.8, 1.0), Phone("P", 2.4, 2.6), Phone("B", 3.2, 3.4), Phone("AA", 1.2, 1.6)]
    closed = rm.viseme_accuracy(gaps, phones, FPS, BILABIALS, closed_below=0.02)
    assert closed == pytest.approx(2 / 3)


def test_open_vowels_count_as_open_when_the_gap_reaches_the_threshold():
    gaps = np.zeros(100)
    gaps[31:34] = 0.09  # inside AA at frames 30-39
    gaps[52] = 0.04  # AE at 50-59 opens too little
    phones = [Phone("AA", 1.2, 1.6), Phone("AE", 2.0, 2.4), Phone("M", 3.0, 3.2), Phone("SIL", 0, 1)]
    assert rm.viseme_accuracy(gaps, phones, FPS, rm.OPEN_VOWELS, open_above=0.07) == 0.5
    assert rm.viseme_accuracy(gaps, [Phone("T", 0, 1)], FPS, rm.OPEN_VOWELS, open_above=0.07) is None


def test_correlation_of_gap_tracks_ignores_lost_frames_and_refuses_a_still_track():
    t = np.arange(60)
    real = 0.05 + 0.04 * np.sin(t / 3)
    generated = 0.5 * real + 0.01
    generated[[5, 9]] = np.nan
    assert rm.pearson(generated, real) == pytest.approx(1.0)
    assert rm.pearson(-real, real) == pytest.approx(-1.0)
    assert rm.pearson(np.full(60, 0.02), real) is None


def test_silence_needs_a_long_pause_and_its_jitter_is_the_mean_step_of_the_gap():
    rms = np.full(40, 0.3)
    rms[5:8] = 0.0  # 3 quiet frames: a stop closure, not silence
    rms[20:30] = 0.001  # 10 frames 50 dB down: silence
    silent = rm.silent_frames(rms)
    assert np.flatnonzero(silent).tolist() == list(range(20, 30))
    gaps = np.full(40, 0.1)
    gaps[20:30] = [0.01, 0.02] * 5  # a mouth that flickers by 0.01 each frame
    jitter, held = rm.silence_stillness(gaps, silent)
    assert jitter == pytest.approx(0.01)
    assert held == pytest.approx(0.015)
    assert rm.silence_stillness(gaps, np.zeros(40, bool)) == (None, None)


def _face_points(centre=(200.0, 220.0), width=160.0):
    """68 iBUG-like points: a jaw arc, brows, a nose, eyes and lips around ``centre``."""
    cx, cy = centre
    angles = np.linspace(np.pi, 0, 17)
    jaw = np.stack([cx + width / 2 * np.cos(angles), cy + width * 0.55 * np.sin(angles) - 20], 1)
    brows = np.stack([np.linspace(cx - 60, cx + 60, 10), np.full(10, cy - 70)], 1)
    nose = np.stack([np.full(9, cx), np.linspace(cy - 45, cy + 5, 9)], 1)
    eyes = np.stack([np.tile(np.linspace(cx - 55, cx + 55, 6), 2), np.full(12, cy - 40)], 1)
    lips = np.stack([cx + 30 * np.cos(np.linspace(0, 2 * np.pi, 20)),
                     cy + 45 + 10 * np.sin(np.linspace(0, 2 * np.pi, 20))], 1)
    return np.concatenate([jaw, brows, nose, eyes, lips])


def _texture(shape=(400, 400, 3), seed=0):
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 256, shape, dtype=np.uint8), (0, 0), 1.0)


def test_face_regions_leave_out_the_mouth_and_surround_the_face_with_background():
    regions = rm.FaceRegions.from_landmarks(_face_points(), (400, 400, 3))
    x0, y0, x1, y1 = regions.mouth
    assert x0 <= 170 and x1 >= 230 and y0 <= 255 and y1 >= 275  # the lips, widened
    vx0, vy0, vx1, vy1 = regions.mouth_view
    assert abs((vx1 - vx0) - (vy1 - vy0)) <= 1 and vx1 - vx0 > 1.5 * 60  # a square, 1.6 lip widths
    assert vy1 > 275 + 20  # room below the lips for them to part
    assert not regions.face[y0:y1, x0:x1].any()
    assert regions.face[180, 200] and not regions.background[180, 200]
    assert regions.background[5, 5] and not regions.background[220, 125]  # just beyond the jaw
    ax0, ay0, ax1, ay1 = regions.above_mouth
    assert ay0 <= 150 and ay1 <= y0 + 5  # brows down to the nose, above the lips


def test_sharpness_ratio_is_one_for_the_ceiling_and_falls_for_a_blurred_face():
    photo = _texture()
    regions = rm.FaceRegions.from_landmarks(_face_points(), photo.shape)
    ceiling = rm.laplacian_variance(photo, regions.face)
    assert rm.laplacian_variance(photo, regions.face) / ceiling == 1.0
    soft = cv2.GaussianBlur(photo, (0, 0), 1.5)
    assert rm.laplacian_variance(soft, regions.face) / ceiling < 0.3


def test_background_psnr_is_infinite_when_only_the_face_changes():
    photo = _texture() // 2 + 64  # grey levels 64-191: room to brighten without clipping
    regions = rm.FaceRegions.from_landmarks(_face_points(), photo.shape)
    assert rm.background_psnr(photo, photo, regions.background) == np.inf
    changed = photo.copy()
    changed[regions.face] = 0  # the face replaced: the background is untouched
    assert rm.background_psnr(changed, photo, regions.background) == np.inf
    changed[:20] += 16  # a band of background (20 rows) brightened by 16 grey levels
    expected = 10 * np.log10(255**2 / (16**2 * 20 * 400 / regions.background.sum()))
    assert rm.background_psnr(changed, photo, regions.background) == pytest.approx(expected)


def test_luma_ssim_is_one_for_the_same_box_and_lower_for_a_shifted_one():
    photo = _texture((120, 160, 3))
    assert rm.luma_ssim(photo, photo) == pytest.approx(1.0)
    assert rm.luma_ssim(np.roll(photo, 3, axis=1), photo) < 0.8


def test_energy_baseline_opens_the_jaw_with_loudness_and_rests_every_other_parameter():
    from talking.baselines import ENERGY_MAX_OPENING

    t = np.arange(22050) / 22050
    wav = (np.sin(2 * np.pi * 150 * t) * np.clip(t * 2 - 0.5, 0, 1)).astype(np.float32)  # fades in
    motion = energy_motion(wav)
    assert motion.shape == (25, 7)
    assert motion[0, 0] == 0 and motion[:, 0].max() == pytest.approx(ENERGY_MAX_OPENING)
    assert np.all(np.diff(motion[:, 0]) >= -1e-6)
    assert np.all(motion[:, 1:] == 0)


def test_aligner_times_the_words_of_real_speech_where_it_is_loud():
    from talking.audio import load_audio
    from talking.phonemes import SILENCE, align_phones
    from talking.real_material import TRANSCRIPTS, speech_path

    name = "heath_ledger.mp3"
    wav = load_audio(speech_path(name))
    phones = align_phones(wav, 22050, TRANSCRIPTS[name])
    spoken = [p for p in phones if p.label not in SILENCE]
    # every word's phones, in order: "something" brings the clip's one bilabial
    assert [p.label for p in spoken if p.label in BILABIALS] == ["M"]
    assert len(spoken) == 29  # IH F, Y UH R, G UH D, ..., F R IY
    assert all(a.end <= b.start + 1e-9 for a, b in zip(phones, phones[1:], strict=False))
    # the loudest tenth of the recording (the voice; a score plays under it) lies in the speech
    # the aligner places (an independent check of its timing)
    rms = frame_rms(wav, 22050, 100, len(wav) * 100 // 22050)
    loudest = (np.argsort(rms)[-len(rms) // 10:] + 0.5) / 100
    inside = [any(p.start <= t < p.end for p in spoken) for t in loudest]
    assert np.mean(inside) >= 0.95


def test_aligner_refuses_words_that_are_not_said():
    from talking.audio import load_audio
    from talking.errors import TalkingError
    from talking.phonemes import align_phones
    from talking.real_material import speech_path

    wav = load_audio(speech_path("heath_ledger.mp3"))
    with pytest.raises(TalkingError, match="cannot be fitted|not in"):
        align_phones(wav, 22050, "the cat sat on the mat and the dog ate the hat of the man")
    with pytest.raises(TalkingError, match="dictionary"):
        align_phones(wav, 22050, "zzqx blorp")


def test_real_track_runs_end_to_end_on_one_photo_one_clip_and_a_video(tmp_path):
    from talking.real_material import load_source_photo
    from talking.real_methods import static_video

    video = tmp_path / "speaker.mp4"  # a "talking-head video": a real face, held still, with speech
    photo = cv2.resize(load_source_photo("grace_hopper"), (256, 300), interpolation=cv2.INTER_AREA)
    static_video(photo, np.zeros(22050, np.float32) + 0.01 * np.sin(np.arange(22050) / 7), "", video)
    out = tmp_path / "real"
    code = main(["evaluate", "--real", "--photos", "grace_hopper:120", "--speech", "heath_ledger.mp3",
                 "--seconds", "1", "--methods", "", "--video", str(video), "--real-out", str(out)])
    assert code == 0
    report = json.loads((out / "results.json").read_text())
    photos = [p["case"] for p in report["photos"]]
    assert photos[0] == "grace_hopper-120" and photos[1].startswith("speaker-")
    assert 70 < int(photos[1].split("-")[1]) < 120  # the video's face: 185 px of 512, at 256 wide
    static = report["methods"]["static"]
    assert static["sharpness"] == 1.0  # the static video is the ceiling
    assert static["lip_activity"] < 0.01  # a still photo does not talk
    assert static["face_found"] == 1.0
    assert static["silence_jitter"] < 0.005  # the leading pause
    assert static["background_psnr"] > 35
    real = [c for c in report["cases"] if c["method"] == "real video"]
    assert len(real) == 1 and real[0]["speech"] == str(video) and real[0]["face_found"] == 1.0
    assert "static" in (out / "results.md").read_text()
    sheet = cv2.imread(str(out / "grace_hopper-120_heath_ledger.png"))
    assert sheet is not None and sheet.shape[1] > 300
    assert (out / "grace_hopper-120_side.png").is_file()


def test_a_real_video_whose_picture_ends_before_its_sound_holds_its_last_frame(tmp_path):
    """A phone's or camera's clip often has a few ms more sound than picture: its own frames
    are measured against its sound frame for frame, the last frame held, rather than failing."""
    from talking.audio import num_video_frames
    from talking.evaluate_real import _video_case
    from talking.real_material import load_source_photo
    from talking.video import VideoWriter, read_video

    photo = cv2.resize(load_source_photo("grace_hopper"), (256, 300), interpolation=cv2.INTER_AREA)
    wav = (0.01 * np.sin(np.arange(22050) / 7)).astype(np.float32)  # 1 s: 25 frames
    video = tmp_path / "short_picture.mp4"
    with VideoWriter(video, wav, fps=25, sample_rate=22050) as writer:
        for i in range(20):  # the picture stops 0.2 s before the sound
            writer.write(np.clip(photo.astype(int) + 3 * i, 0, 255).astype(np.uint8))
    _, clip, real_frames = _video_case(video, seconds=4.0)
    out = tmp_path / "real.mp4"
    real_frames(photo, clip.wav, clip.words, out)
    frames = list(read_video(out))
    assert len(frames) == num_video_frames(len(clip.wav)) == 25
    tail = np.stack(frames[19:]).astype(int)
    assert np.abs(tail - tail[0]).max() <= 2  # the last frame held (up to the codec)
    assert np.abs(frames[0].astype(int) - frames[19]).mean() > 20  # the picture did change before


def test_real_track_methods_are_checked_and_include_the_clean_speech_row():
    from talking.evaluate_real import RealOptions

    assert "optical+clean" in RealOptions().methods.split(",")
    RealOptions(methods="keypoint+clean,optical+words")
    with pytest.raises(ValueError, match=r"unknown methods optical\+loud"):
        RealOptions(methods="optical,optical+loud")
