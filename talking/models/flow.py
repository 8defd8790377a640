"""The 2D warp that applies a flow, and the flow convention of the project.

Flow convention, used everywhere in the project: a flow is a *backward* field in *pixels*,
``flow (B, 2, H, W)`` with channel 0 = dx and channel 1 = dy, such that
``warped[y, x] = image[y + dy, x + dx]`` (:func:`warp`). OpenCV's
``calcOpticalFlowFarneback(target, reference, ...)`` returns exactly this field for
``target ~ warp(reference, flow)``.

What the flow maps: the paper predicts the flow between consecutive frames. Ours maps the *source
image* to each frame, ``frame ~ warp(source, flow)``, so the photo's own pixels move (DESIGN
section 5) and no error piles up from frame to frame; MAN-optical's motion predictor draws it
through landmarks (:mod:`talking.models.motion`, :mod:`talking.models.thin_plate`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward-warp ``image`` (B, C, H, W) by ``flow`` (B, 2, H, W) in pixels -> (B, C, H, W).

    Bilinear sampling at ``(x + dx, y + dy)``; samples outside the image repeat the border.
    Pixel centres sit at integer coordinates and the normalised grid uses
    ``align_corners=False``, so a zero flow returns ``image`` exactly. Only 4-D ``grid_sample``
    is used, which every backend (Apple MPS included) supports.
    """
    if flow.ndim != 4 or flow.shape[1] != 2 or flow.shape[-2:] != image.shape[-2:]:
        raise ValueError(
            f"flow must be (B, 2, {image.shape[-2]}, {image.shape[-1]}) for an image of shape "
            f"{tuple(image.shape)}, got {tuple(flow.shape)}"
        )
    height, width = image.shape[-2:]
    ys = torch.arange(height, device=flow.device, dtype=flow.dtype)
    xs = torch.arange(width, device=flow.device, dtype=flow.dtype)
    x = xs[None, None, :] + flow[:, 0]  # (B, H, W)
    y = ys[None, :, None] + flow[:, 1]
    grid = torch.stack([(2 * x + 1) / width - 1, (2 * y + 1) / height - 1], dim=-1)  # (B, H, W, 2)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
