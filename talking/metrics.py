"""The paper's video metrics (section 7, Tables 1-3, 7) as pure functions of numpy arrays.

Images are (H, W, 3) RGB or (H, W) grey, uint8 or float on a 0-255 scale; videos are evaluated
frame by frame by the caller. What each function measures:

- :func:`ssim` (Wang et al. 2004): Gaussian window sigma 1.5, K1 = 0.01, K2 = 0.03, per colour
  channel, averaged over the image without the 5-pixel border the 11 x 11 window cannot cover
  (as scikit-image's ``structural_similarity(gaussian_weights=True)``).
- :func:`psnr`: 10 log10(peak^2 / MSE); infinite for identical images.
- :func:`mouth_region`: the lower half of an aligned crop, where the paper's mouth losses and
  metrics look (Eq. 11).
- :func:`cpbd` (Narvekar & Karam 2011), after the authors' MATLAB release: Sobel edges (thinned,
  MATLAB's automatic threshold) give the edge pixels whose widths are measured along the row
  (Marziliano et al.: between the intensity extrema on either side, at edges with a horizontal
  gradient); Canny edges pick the 64 x 64 blocks that have edges (more than 0.2 % of pixels);
  each edge of such a block is detected as blurred with probability 1 - exp(-(w / w_JNB)^3.6),
  w_JNB = 5 px where the block's contrast is at most 50 grey levels, else 3; CPBD is the share of
  edges whose probability is at most 63 % (percent rounded, as the release's histogram).
- :func:`landmark_distance` (LMD, Chen et al. 2018): mean Euclidean distance between
  corresponding landmarks over points and frames, in the landmarks' unit (pixels here).
- :func:`count_blinks` / :func:`blinks_per_second`: eye openness (1 open, 0 shut) crossing below
  ``close_below`` and back above ``open_above`` (hysteresis, so noise near one threshold does not
  count twice) is one blink.
- :func:`opening_slope`: how far a mouth-opening track moves per unit of the ground-truth one.
- :func:`sync_curve` / :func:`best_offset`: Pearson correlation between a mouth-opening track of
  generated frames and the ground-truth opening, at each offset in frames; offset ``k > 0``
  means the video lags the reference by ``k`` frames. In sync, the best offset is 0.
"""

from __future__ import annotations

import cv2
import numpy as np

_SSIM_SIGMA, _SSIM_BORDER = 1.5, 5
_CPBD_BLOCK, _CPBD_EDGE_SHARE, _CPBD_BETA, _CPBD_P_JNB = 64, 0.002, 3.6, 63
# A track whose standard deviation is below this is still: a network reading identical frames
# in different batch positions may differ in the last bits, which would correlate as noise.
_STILL = 1e-4


def _float(image: np.ndarray) -> np.ndarray:
    return np.asarray(image, dtype=np.float64)


def ssim(image: np.ndarray, reference: np.ndarray, data_range: float = 255.0) -> float:
    """Mean structural similarity of ``image`` to ``reference`` (same shape): 1 when identical."""
    x, y = _float(image), _float(reference)
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {x.shape} vs {y.shape}")
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def blur(a: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(a, (11, 11), _SSIM_SIGMA, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    # Unbiased (co)variances, as scikit-image, over the window's 121 taps.
    n = 121 / 120
    vx, vy, cxy = n * (blur(x * x) - mx * mx), n * (blur(y * y) - my * my), n * (blur(x * y) - mx * my)
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    b = _SSIM_BORDER
    return float(s[b:-b, b:-b].mean())


def psnr(image: np.ndarray, reference: np.ndarray, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB; ``inf`` for identical images."""
    x, y = _float(image), _float(reference)
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {x.shape} vs {y.shape}")
    mse = float(np.mean((x - y) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(data_range**2 / mse))


def l1(image: np.ndarray, reference: np.ndarray, data_range: float = 255.0) -> float:
    """Mean absolute difference as a fraction of ``data_range`` (the paper's L1, Eq. 11)."""
    x, y = _float(image), _float(reference)
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {x.shape} vs {y.shape}")
    return float(np.mean(np.abs(x - y)) / data_range)


def mouth_region(image: np.ndarray) -> np.ndarray:
    """The lower half of an aligned face crop (H, W, ...) -> (H - H // 2, W, ...)."""
    return image[image.shape[0] // 2:]


# ---------------------------------------------------------------------------------------------
# CPBD
# ---------------------------------------------------------------------------------------------


def _grey(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB or (H, W) -> (H, W) float64 grey levels rounded as an 8-bit grey image."""
    image = np.asarray(image)
    if image.ndim == 3:
        image = np.clip(image, 0, 255).astype(np.uint8)
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return np.round(image).astype(np.float64)


def sobel_edges(grey: np.ndarray) -> np.ndarray:
    """MATLAB's ``edge(I, 'sobel')``: edges (H, W) bool.

    Gradient magnitude squared above 4 x its mean, thinned to the maxima across the edge."""
    kernel = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], np.float64) / 8
    gy = cv2.filter2D(grey, -1, kernel, borderType=cv2.BORDER_REPLICATE)
    gx = cv2.filter2D(grey, -1, kernel.T, borderType=cv2.BORDER_REPLICATE)
    strength = gx * gx + gy * gy
    pad = np.pad(strength, 1)
    left, right, up, down = pad[1:-1, :-2], pad[1:-1, 2:], pad[:-2, 1:-1], pad[2:, 1:-1]
    across_x = (np.abs(gx) >= np.abs(gy)) & (strength > left) & (strength > right)
    across_y = (np.abs(gy) >= np.abs(gx)) & (strength > up) & (strength > down)
    return (strength > 4 * strength.mean()) & (across_x | across_y)


def canny_edges(grey: np.ndarray) -> np.ndarray:
    """Canny edges (H, W) bool with MATLAB's automatic thresholds: after a Gaussian of sigma
    sqrt(2), the high threshold leaves 70 % of pixels below it, the low one is 0.4 x high."""
    smooth = cv2.GaussianBlur(grey, (0, 0), np.sqrt(2))
    gx, gy = cv2.Sobel(smooth, cv2.CV_64F, 1, 0), cv2.Sobel(smooth, cv2.CV_64F, 0, 1)
    high = max(float(np.percentile(np.hypot(gx, gy), 70)), 1e-6)
    edges = cv2.Canny(gx.astype(np.int16), gy.astype(np.int16), 0.4 * high, high, L2gradient=True)
    return edges > 0


def edge_widths(grey: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Marziliano edge widths (H, W) in pixels at ``edges`` whose gradient (central differences)
    is horizontal, its angle rounding to 0 or 180 degrees; 0 elsewhere and on the border.

    At such an edge at column c the width is 2 plus the run of steps that keep rising (falling,
    for a falling edge) leftwards from c - 1 and rightwards from c + 1."""
    height, width = grey.shape
    gy, gx = np.gradient(grey)
    angle = 45 * np.round(np.degrees(np.arctan2(gy, gx)) / 45)
    step = np.diff(grey, axis=1)  # (H, W - 1): step[:, k] = I[:, k + 1] - I[:, k]
    widths = np.zeros_like(grey)
    for sign, direction in ((1, angle == 0), (-1, np.abs(angle) == 180)):
        moving = sign * step > 0
        ending = _run_lengths(moving)  # ending[:, k]: consecutive True ending at k
        starting = _run_lengths(moving[:, ::-1])[:, ::-1]  # starting at k
        rows, cols = np.nonzero(edges & direction)
        inner = (rows >= 1) & (rows < height - 1) & (cols >= 1) & (cols < width - 1)
        rows, cols = rows[inner], cols[inner]
        left = np.where(cols >= 2, ending[rows, np.maximum(cols - 2, 0)], 0)
        right = np.where(cols + 1 < width - 1, starting[rows, np.minimum(cols + 1, width - 2)], 0)
        widths[rows, cols] = 2 + left + right
    return widths


def _run_lengths(mask: np.ndarray) -> np.ndarray:
    """For each position of each row, how many consecutive True end there (0 where False)."""
    runs = np.zeros(mask.shape, np.int64)
    for k in range(mask.shape[1]):
        runs[:, k] = np.where(mask[:, k], (runs[:, k - 1] if k else 0) + 1, 0)
    return runs


def cpbd(image: np.ndarray) -> float:
    """Cumulative probability of blur detection in [0, 1]: higher is sharper. ``image`` is
    (H, W, 3) RGB or (H, W) grey on 0-255; blocks that do not fit whole are left out. NaN when
    no edge can be measured (a flat image)."""
    grey = _grey(image)
    widths = edge_widths(grey, sobel_edges(grey))
    canny = canny_edges(grey)
    probabilities = []
    b = _CPBD_BLOCK
    for i in range(0, grey.shape[0] - b + 1, b):
        for j in range(0, grey.shape[1] - b + 1, b):
            block = (slice(i, i + b), slice(j, j + b))
            if np.count_nonzero(canny[block]) <= _CPBD_EDGE_SHARE * b * b:
                continue
            contrast = int(grey[block].max() - grey[block].min())
            jnb = 5.0 if contrast <= 50 else 3.0
            w = widths[block][widths[block] > 0]
            probabilities.append(1 - np.exp(-((w / jnb) ** _CPBD_BETA)))
    percent = np.round(np.concatenate([np.empty(0), *probabilities]) * 100)
    return float(np.mean(percent <= _CPBD_P_JNB)) if len(percent) else float("nan")


# ---------------------------------------------------------------------------------------------
# Landmarks, blinks, sync
# ---------------------------------------------------------------------------------------------


def landmark_distance(landmarks: np.ndarray, reference: np.ndarray) -> float:
    """LMD: mean Euclidean distance between ``landmarks`` and ``reference`` (..., P, 2)."""
    landmarks, reference = _float(landmarks), _float(reference)
    if landmarks.shape != reference.shape:
        raise ValueError(f"landmarks differ in shape: {landmarks.shape} vs {reference.shape}")
    return float(np.linalg.norm(landmarks - reference, axis=-1).mean())


def count_blinks(openness: np.ndarray, close_below: float = 0.4, open_above: float = 0.7) -> int:
    """Blinks in an eye-openness track (N,): each fall below ``close_below`` that is followed by
    a rise above ``open_above`` (a blink still shut at the end of the track counts too)."""
    if not close_below < open_above:
        raise ValueError(f"need close_below < open_above, got {close_below}, {open_above}")
    blinks, shut = 0, False
    for value in np.asarray(openness, dtype=np.float64):
        if not shut and value < close_below:
            shut, blinks = True, blinks + 1
        elif shut and value > open_above:
            shut = False
    return blinks


def blinks_per_second(openness: np.ndarray, fps: float, close_below: float = 0.4,
                      open_above: float = 0.7) -> float:
    """:func:`count_blinks` over the track's duration (N / fps seconds)."""
    return count_blinks(openness, close_below, open_above) * fps / len(openness)


def opening_slope(opening: np.ndarray, reference: np.ndarray) -> float | None:
    """How far ``opening`` (N,) moves per unit of ``reference`` (N,): the least-squares slope of
    one on the other. A mouth that opens in time but too little correlates well and has a small
    slope; None where the reference does not move."""
    opening, reference = np.asarray(opening, np.float64), np.asarray(reference, np.float64)
    if np.ptp(reference) == 0:
        return None
    spread = reference - reference.mean()
    return float((spread * (opening - opening.mean())).sum() / (spread**2).sum())


def sync_curve(opening: np.ndarray, reference: np.ndarray, max_offset: int) -> tuple[np.ndarray, np.ndarray]:
    """Pearson correlation of ``opening`` (N,) with ``reference`` (N,) at each offset in
    ``-max_offset..max_offset`` frames: (offsets (2K+1,), correlations (2K+1,)).

    At offset k, ``opening[t + k]`` is paired with ``reference[t]``: a video whose mouth follows
    the reference k frames late peaks at k. NaN where a track is still over the overlap (standard
    deviation below 1e-4)."""
    opening, reference = _float(opening), _float(reference)
    if opening.shape != reference.shape or opening.ndim != 1:
        raise ValueError(f"need two tracks of equal length, got {opening.shape} and {reference.shape}")
    offsets = np.arange(-max_offset, max_offset + 1)
    correlations = np.full(len(offsets), np.nan)
    n = len(opening)
    for i, k in enumerate(offsets):
        a = opening[max(k, 0): n + min(k, 0)]
        b = reference[max(-k, 0): n - max(k, 0)]
        if len(a) > 2 and a.std() > _STILL and b.std() > _STILL:
            correlations[i] = np.corrcoef(a, b)[0, 1]
    return offsets, correlations


def best_offset(offsets: np.ndarray, correlations: np.ndarray) -> int | None:
    """The offset of the highest correlation; None when every correlation is NaN."""
    if np.all(np.isnan(correlations)):
        return None
    return int(offsets[np.nanargmax(correlations)])
