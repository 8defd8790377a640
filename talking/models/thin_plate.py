"""A smooth motion field from a few moving points: the thin-plate spline through landmarks.

The motion models predict where the lip and jaw landmarks go (``talking.models.motion``); the
generator and the full-resolution compositor need a dense *backward* flow (the project's flow
convention, :func:`talking.models.flow.warp`): ``frame[y, x] = source[y + dy, x + dx]``. The thin
plate spline is the smoothest field (least bending energy) that takes every target landmark back
to its source landmark, so the lips move as the landmarks say and the skin around them follows
without folds; landmarks that stay put (eyes, nose, brows, the upper jaw) and a ring of anchors on
the crop's border pin everything else, so the field fades out away from the mouth. The chin sits
a few pixels above the bottom edge (117-120 of 128), and a jaw opened wide takes it onto the
edge: an anchor of zero motion right under a moving chin folded the field (the neck showed
through a notch in the chin), so the bottom anchors keep :data:`CHIN_CLEARANCE` below the lowest
target point, lower than the edge where the chin comes that far down.

Coordinates are normalised by the image side before solving, and a small ``regularization``
relaxes the interpolation so that coincident targets (the inner lips of a closed mouth) keep the
system solvable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

BORDER_ANCHORS = 5  # anchors per side of the crop (corners shared): 16 points of zero flow
CHIN_CLEARANCE = 0.06  # of the side: the least distance from the lowest target to the bottom anchors


def border_anchors(size: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(16, 2) pixel positions on the border of a ``size`` x ``size`` image (pixel centres)."""
    ticks = torch.linspace(-0.5, size - 0.5, BORDER_ANCHORS, device=device, dtype=dtype)
    low, high = ticks[0].expand(BORDER_ANCHORS), ticks[-1].expand(BORDER_ANCHORS)
    inner = ticks[1:-1]
    return torch.cat([torch.stack([ticks, low], -1), torch.stack([ticks, high], -1),
                      torch.stack([low[1:-1], inner], -1), torch.stack([high[1:-1], inner], -1)])


def _kernel(distance_squared: torch.Tensor) -> torch.Tensor:
    """The thin-plate radial basis r^2 log r, written in r^2 (0 at r = 0)."""
    return 0.5 * distance_squared * torch.log(distance_squared.clamp_min(1e-12))


def thin_plate_flow(source: torch.Tensor, target: torch.Tensor, size: int,
                    regularization: float = 1e-6, stride: int = 2,
                    detail: tuple[int, int, int, int] | None = None) -> torch.Tensor:
    """Backward flow (B, 2, size, size) in pixels that maps each ``target`` point onto its
    ``source`` point: ``flow[:, :, y, x]`` at a target point is ``source - target``.

    Args:
        source: (B, K, 2) landmark positions (x, y) in the source image, in pixels.
        target: (B, K, 2) where those landmarks are in the frame to make, in pixels.
        size: side of the square image the flow covers.
        regularization: added to the kernel's diagonal (in normalised units).
        stride: the spline is evaluated every ``stride`` pixels and upsampled bilinearly (the
            field is smooth; this divides the cost by ``stride**2``).
        detail: a box (top, left, bottom, right; exclusive) evaluated at every pixel all the
            same: where the field turns within a few pixels (between the lips, which move apart),
            the upsampled field would realise only 75-85 % of the motion at stride 4.
    """
    batch = source.shape[0]
    anchors = border_anchors(size, source.device, source.dtype).expand(batch, -1, -1).clone()
    bottom = anchors[..., 1] == anchors[..., 1].amax(dim=1, keepdim=True)  # (B, K_a)
    lowest = target[..., 1].amax(dim=1, keepdim=True) + CHIN_CLEARANCE * size  # (B, 1)
    anchors[..., 1] = torch.where(bottom, torch.maximum(anchors[..., 1], lowest), anchors[..., 1])
    controls = torch.cat([target, anchors], dim=1).double() / size  # (B, K', 2)
    values = torch.cat([source - target, torch.zeros_like(anchors)], dim=1).double() / size
    count = controls.shape[1]
    # 1. solve for the spline's weights: [[K + lambda I, P], [P^T, 0]] [w; a] = [values; 0]
    kernel = _kernel(torch.cdist(controls, controls).square())
    kernel = kernel + regularization * torch.eye(count, dtype=kernel.dtype, device=kernel.device)
    affine = torch.cat([torch.ones_like(controls[..., :1]), controls], dim=-1)  # (B, K', 3)
    system = torch.zeros(batch, count + 3, count + 3, dtype=kernel.dtype, device=kernel.device)
    system[:, :count, :count] = kernel
    system[:, :count, count:] = affine
    system[:, count:, :count] = affine.transpose(1, 2)
    rhs = torch.cat([values, values.new_zeros(batch, 3, 2)], dim=1)
    weights = torch.linalg.solve(system, rhs).to(source.dtype)  # (B, K' + 3, 2)
    controls = controls.to(source.dtype)
    # 2. evaluate it on a grid of pixel centres every ``stride`` pixels, then upsample
    coarse = -(-size // stride)
    centres = (torch.arange(coarse, device=source.device, dtype=source.dtype) + 0.5) * stride - 0.5
    flow = _evaluate(weights, controls, centres, centres, size)  # (B, 2, coarse, coarse)
    if stride > 1:
        flow = F.interpolate(flow, scale_factor=stride, mode="bilinear", align_corners=False)
        flow = flow[..., :size, :size]
    if detail is not None and stride > 1:
        top, left, bottom, right = detail
        pixels = torch.arange(size, device=source.device, dtype=source.dtype)
        flow = flow.clone()
        flow[..., top:bottom, left:right] = _evaluate(weights, controls, pixels[top:bottom],
                                                      pixels[left:right], size)
    return flow


def _evaluate(weights: torch.Tensor, controls: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
              size: int) -> torch.Tensor:
    """The spline (``weights`` (B, K' + 3, 2) over ``controls`` (B, K', 2), normalised) at the
    pixel centres ``rows`` (h,) x ``cols`` (w,): (B, 2, h, w) in pixels."""
    batch, count = controls.shape[:2]
    grid = torch.stack(torch.meshgrid(cols / size, rows / size, indexing="xy"), dim=-1).reshape(-1, 2)
    grid = grid.expand(batch, -1, -1)  # (B, h * w, 2)
    basis = _kernel(torch.cdist(grid, controls).square())  # (B, h * w, K')
    grid_affine = torch.cat([torch.ones_like(grid[..., :1]), grid], dim=-1)
    flow = basis @ weights[:, :count] + grid_affine @ weights[:, count:]  # (B, h * w, 2)
    return (flow * size).transpose(1, 2).reshape(batch, 2, len(rows), len(cols))
