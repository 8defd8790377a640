"""Keypoint contour heatmaps (paper 4.3.1, Fig. 12): MAN-keypoint's motion, drawn from landmarks.

The heatmaps are *contour* heatmaps, one channel per facial-part contour of the 68-point iBUG
landmarks (as in boundary-aware face alignment, Wu et al. 2018): the value at a pixel is
``exp(-d^2 / (2 sigma^2))`` with ``d`` the distance to the contour's polyline, so it is 1 on the
contour and falls off with a Gaussian. The paper uses 15 channels; we split the jaw into two
cheeks and the chin (the chin is the part that moves with speech), which with the brows, the
nose bridge and base, four eyelids and four lip contours makes 15.
"""

from __future__ import annotations

import torch

# name -> landmark indices of the polyline, in drawing order (iBUG 68-point numbering).
CONTOURS: dict[str, tuple[int, ...]] = {
    "cheek_left": (0, 1, 2, 3, 4, 5),
    "chin": (5, 6, 7, 8, 9, 10, 11),
    "cheek_right": (11, 12, 13, 14, 15, 16),
    "brow_left": (17, 18, 19, 20, 21),
    "brow_right": (22, 23, 24, 25, 26),
    "nose_bridge": (27, 28, 29, 30),
    "nose_base": (31, 32, 33, 34, 35),
    "eyelid_left_upper": (36, 37, 38, 39),
    "eyelid_left_lower": (39, 40, 41, 36),
    "eyelid_right_upper": (42, 43, 44, 45),
    "eyelid_right_lower": (45, 46, 47, 42),
    "lip_outer_upper": (48, 49, 50, 51, 52, 53, 54),
    "lip_outer_lower": (54, 55, 56, 57, 58, 59, 48),
    "lip_inner_upper": (60, 61, 62, 63, 64),
    "lip_inner_lower": (64, 65, 66, 67, 60),
}


REACH = 5.0  # sigmas: beyond this from its contour a heatmap is exp(-12.5) < 4e-6, drawn as 0


def landmarks_to_heatmaps(
    landmarks: torch.Tensor, size: int | tuple[int, int], sigma: float = 1.5
) -> torch.Tensor:
    """Draw the contours of ``landmarks`` (B, 68, 2) -> heatmaps (B, len(CONTOURS), H, W) in [0, 1].

    Landmarks are pixel coordinates (x, y) of an image of ``size`` (H, W), pixel centres at
    integer coordinates; ``sigma`` is the Gaussian falloff in pixels. Each contour is drawn only
    in the box that holds it (over the batch) and :data:`REACH` sigmas around it: a tenth of the
    pixels of the whole image, at the same values to within 4e-6.
    """
    height, width = (size, size) if isinstance(size, int) else size
    heatmaps = landmarks.new_zeros(len(landmarks), len(CONTOURS), height, width)
    reach = REACH * sigma
    for channel, indices in enumerate(CONTOURS.values()):
        points = landmarks[:, list(indices)]  # (B, P, 2)
        low = (points.detach().amin(dim=(0, 1)) - reach).floor().clamp_min(0).int().tolist()
        high = (points.detach().amax(dim=(0, 1)) + reach).ceil().int().tolist()
        x0, y0, x1, y1 = low[0], low[1], min(high[0] + 1, width), min(high[1] + 1, height)
        if x0 >= x1 or y0 >= y1:  # the contour lies out of the image
            continue
        ys = torch.arange(y0, y1, device=landmarks.device, dtype=landmarks.dtype)
        xs = torch.arange(x0, x1, device=landmarks.device, dtype=landmarks.dtype)
        pixels = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(-1, 2)  # (hw, 2)
        start, step = points[:, :-1, None], (points[:, 1:] - points[:, :-1])[:, :, None]  # (B, S, 1, 2)
        # Closest point of each segment to each pixel: start + t * step, t clamped to [0, 1].
        t = ((pixels - start) * step).sum(-1) / step.square().sum(-1).clamp_min(1e-12)
        nearest = start + t.clamp(0, 1)[..., None] * step  # (B, S, hw, 2)
        distance2 = (pixels - nearest).square().sum(-1).amin(dim=1)  # (B, hw)
        drawn = torch.exp(-distance2 / (2 * sigma**2)).reshape(len(landmarks), y1 - y0, x1 - x0)
        heatmaps[:, channel, y0:y1, x0:x1] = drawn
    return heatmaps
