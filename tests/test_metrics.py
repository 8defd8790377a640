"""The metrics, each on inputs whose answer is known."""

import cv2
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio

from talking.ibug import LIPS
from talking.metrics import (
    best_offset,
    blinks_per_second,
    count_blinks,
    cpbd,
    l1,
    landmark_distance,
    mouth_region,
    opening_slope,
    psnr,
    ssim,
    sync_curve,
)


def shapes_image(seed: int = 0, size: int = 128) -> np.ndarray:
    """A sharp (H, W, 3) uint8 image of overlapping flat rectangles and discs."""
    rng = np.random.default_rng(seed)
    image = np.full((size, size, 3), 128, np.uint8)
    for _ in range(40):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = (int(v) for v in rng.integers(0, size, 2))
        if rng.uniform() < 0.5:
            w, h = (int(v) for v in rng.integers(4, size // 3, 2))
            cv2.rectangle(image, (x, y), (x + w, y + h), colour, -1)
        else:
            cv2.circle(image, (x, y), int(rng.integers(3, size // 6)), colour, -1)
    return image


def test_identical_images_have_ssim_one_and_infinite_psnr():
    image = shapes_image()
    assert ssim(image, image) == pytest.approx(1.0)
    assert psnr(image, image) == float("inf")


def test_ssim_falls_with_distortion_and_is_symmetric():
    image = shapes_image()
    noisy = np.clip(image + np.random.default_rng(1).normal(0, 20, image.shape), 0, 255)
    very_noisy = np.clip(image + np.random.default_rng(1).normal(0, 60, image.shape), 0, 255)
    assert 1.0 > ssim(noisy, image) > ssim(very_noisy, image) > 0.0
    assert ssim(noisy, image) == pytest.approx(ssim(image, noisy))


def test_ssim_of_a_constant_offset_follows_the_luminance_term():
    # Flat images: only the luminance term (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1) is left.
    a, b = np.full((32, 32), 100.0), np.full((32, 32), 120.0)
    c1 = (0.01 * 255) ** 2
    assert ssim(a, b) == pytest.approx((2 * 100 * 120 + c1) / (100**2 + 120**2 + c1))


def test_psnr_agrees_with_scikit_image_and_loses_6_db_when_the_noise_doubles():
    image = shapes_image()
    noise = np.random.default_rng(2).normal(0, 1, image.shape)
    noisy, noisier = image + 5 * noise, image + 10 * noise
    assert psnr(noisy, image) == pytest.approx(peak_signal_noise_ratio(image, noisy, data_range=255))
    assert psnr(noisy, image) - psnr(noisier, image) == pytest.approx(20 * np.log10(2))


def test_l1_is_the_mean_absolute_difference_in_fractions_of_the_range():
    image = np.full((8, 8, 3), 100, np.uint8)
    other = image.copy()
    other[:4] = 151  # half the pixels 51 grey levels off: 25.5 / 255 = 0.1
    assert l1(image, image) == 0.0
    assert l1(other, image) == pytest.approx(0.1)
    assert l1(other, image) == l1(image, other)


def test_mouth_region_is_the_lower_half():
    image = np.zeros((128, 128, 3), np.uint8)
    image[64:] = 255
    assert mouth_region(image).shape == (64, 128, 3)
    assert mouth_region(image).min() == 255


def test_cpbd_ranks_blurred_below_sharp():
    sharp = shapes_image()
    scores = [cpbd(cv2.GaussianBlur(sharp, (0, 0), sigma)) if sigma else cpbd(sharp)
              for sigma in (0, 0.8, 1.5, 3.0)]
    assert scores[0] > 0.9  # ideal step edges are 2 px wide: P(blur) = 1 - exp(-(2/3)^3.6) = 0.23
    assert scores == sorted(scores, reverse=True)
    assert scores[-1] < 0.05


def test_cpbd_of_a_flat_image_is_undefined():
    assert np.isnan(cpbd(np.full((64, 64, 3), 90, np.uint8)))


def test_lmd_is_zero_for_identical_landmarks_and_the_shift_length_otherwise():
    landmarks = np.random.default_rng(0).uniform(0, 128, (10, 68, 2))
    assert landmark_distance(landmarks, landmarks) == 0.0
    shifted = landmarks + np.array([3.0, 4.0])
    assert landmark_distance(shifted[:, LIPS], landmarks[:, LIPS]) == pytest.approx(5.0)


def blink_track(starts: list[int], length: int = 100, depth: float = 0.0) -> np.ndarray:
    """Eye openness 1 with a 4-frame blink (close, shut, shut, half open) at each start."""
    track = np.ones(length)
    for s in starts:
        track[s:s + 4] = [0.5, depth, depth, 0.5]
    return track


def test_blinks_are_counted_once_each():
    assert count_blinks(blink_track([10, 40, 70])) == 3
    assert count_blinks(np.ones(50)) == 0


def test_noise_around_the_closing_threshold_does_not_count_twice():
    track = blink_track([20])
    track[20:24] = [0.35, 0.45, 0.35, 0.45]  # wavers across 0.4 but never reopens above 0.7
    assert count_blinks(track, close_below=0.4, open_above=0.7) == 1


def test_a_half_closed_eye_is_not_a_blink():
    assert count_blinks(blink_track([10, 50], depth=0.6)) == 0


def test_blinks_per_second_divides_by_the_duration():
    # 3 blinks in 100 frames at 25 fps (4 s) = 0.75 per second.
    assert blinks_per_second(blink_track([10, 40, 70]), fps=25) == pytest.approx(0.75)


def test_sync_in_step_peaks_at_offset_zero_with_correlation_one():
    reference = np.random.default_rng(0).uniform(0, 1, 80)
    offsets, correlations = sync_curve(reference, reference, max_offset=5)
    assert list(offsets) == list(range(-5, 6))
    assert best_offset(offsets, correlations) == 0
    assert correlations[5] == pytest.approx(1.0)


@pytest.mark.parametrize("lag", [1, 3, -2])
def test_sync_detects_a_shifted_mouth(lag):
    reference = np.random.default_rng(0).uniform(0, 1, 100)
    late = np.roll(reference, lag)  # late[t] = reference[t - lag]: the video lags by `lag` frames
    offsets, correlations = sync_curve(late, reference, max_offset=5)
    assert best_offset(offsets, correlations) == lag


def test_a_still_mouth_has_no_sync():
    offsets, correlations = sync_curve(np.zeros(50), np.random.default_rng(0).uniform(0, 1, 50), 3)
    assert np.isnan(correlations).all()
    assert best_offset(offsets, correlations) is None


def test_opening_slope_tells_a_mouth_that_opens_too_little_from_one_in_full():
    rng = np.random.default_rng(0)
    truth = rng.uniform(0, 1, 200)
    assert opening_slope(2.0 * truth + 5.0, truth) == pytest.approx(2.0)
    small = 0.25 * truth + rng.normal(0, 0.01, 200)  # in time, a quarter as far
    assert np.corrcoef(small, truth)[0, 1] > 0.95
    assert opening_slope(small, truth) == pytest.approx(0.25, abs=0.02)
    assert opening_slope(np.zeros(200), truth) == 0.0
    assert opening_slope(truth, np.full(200, 0.3)) is None  # the truth never moves
