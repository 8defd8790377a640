"""The video frame at the photo's own resolution: the photo itself moves, the generator fills in.

DESIGN section 5 / issue 15: pasting a 128-px rendering back over the face cost every photo its
detail. Here every frame is made from the photo at its full resolution:

1. the frame's motion, a smooth backward flow in crop pixels (the thin-plate field through the
   predicted landmarks, :mod:`talking.models.thin_plate`), is mapped into the photo through the
   alignment transform (resampled onto the photo's pixels, its vectors turned and scaled by the
   transform's inverse) and warps the photo's own pixels (bicubic);
2. the generator's rendering enters only where the photo has nothing to show: inside the mouth
   opening that the frame's landmarks predict, where the generator's blend mask also asks for it
   (:func:`rendering_weight`). The opening is drawn at the photo's resolution
   (:meth:`Compositor.opening`: between smooth curves through the frame's inner lips, feathered
   by 0.6 photo pixels as the crop's opening is by 0.6 crop pixels), so the lips' inner edges
   stay as sharp as the photo's own; the rendering's blend share is upsampled from the crop (a
   300-px face: ~3.5 photo pixels to a crop pixel), and the rendering itself is the refiner's, made
   at 4 pixels per crop pixel (:class:`Detail`, :mod:`talking.models.refiner`) where the pipeline
   has one, else upsampled too. Its colours
   are not re-matched to the skin: the skin is the photo's own now, and the generator's rendering
   outside the mouth (never shown) says nothing about the colours inside it (matching one to the
   other turned rendered teeth pink on real photos). A photo taken with its mouth open has an
   inside of its own to show there instead, its teeth (:mod:`talking.mouth_interior`);
3. both act only inside the *motion zone*, a feathered ellipse over mouth, chin and jaw (in the
   canonical crop); outside it the photo's pixels are copied unchanged, so eyes, brows, nose,
   hair and background keep the photo's exact pixels, and at its edge motion and rendering fade
   to nothing, so there is no seam.

The per-clip work (the zone in the photo, the sampling grids) is done once;
a frame costs two small affine resamplings of the flow and of the rendering and one remap of the
zone's pixels, independent of the photo's size outside the face.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from talking.ibug import INNER_LIP_LOWER_CHAIN, INNER_LIP_UPPER_CHAIN, INNER_LIPS, INNER_MOUTH_CORNERS
from talking.models.flow import warp
from talking.mouth_interior import MouthInterior, lip_edge
from talking.pose import move_points

# The motion zone in [0, 1] crop coordinates: an ellipse over mouth, chin and jaw whose top stays
# below the nose's tip (the eyes sit at y = 0.42, the lips at 0.74), feathered by FEATHER.
ZONE_CENTER = (0.50, 0.80)
ZONE_AXES = (0.33, 0.24)
FEATHER = 0.03  # Gaussian sigma of the zone's edge, as a fraction of the crop side
OPENING_FEATHER = 0.6  # Gaussian sigma of the mouth opening's edge, in pixels of the image it is drawn in
def ellipse_weight(resolution: int, center: tuple[float, float], axes: tuple[float, float],
                   feather: float = FEATHER) -> np.ndarray:
    """(R, R) float32 weight: 1 inside the ellipse, a Gaussian edge of sigma ``feather * R``
    that has reached exactly 0 at the ellipse's outline plus three sigmas."""
    radius = math.ceil(3 * feather * resolution)
    core = np.zeros((resolution, resolution), np.float32)
    axes_px = [max(1, round(a * resolution) - radius) for a in axes]
    center_px = [round(c * resolution) for c in center]
    cv2.ellipse(core, center_px, axes_px, 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    if radius > 0:
        core = cv2.GaussianBlur(core, (2 * radius + 1,) * 2, feather * resolution)
    core[core < 1 / 512] = 0.0  # no faint halo: below half a grey level the photo stays exact
    return core


def opening_weight(landmarks: np.ndarray, resolution: int, feather: float = OPENING_FEATHER) -> np.ndarray:
    """(R, R) float32 in [0, 1]: the mouth opening enclosed by the inner lips of ``landmarks``
    (68, 2) in crop pixels, anti-aliased and feathered by ``feather`` px (0 when the lips are
    closed)."""
    scale = 4  # rasterise at 4x and average down: an anti-aliased polygon
    canvas = np.zeros((resolution * scale, resolution * scale), np.uint8)
    points = np.round((landmarks[INNER_LIPS] + 0.5) * scale - 0.5).astype(np.int32)
    cv2.fillPoly(canvas, [points], 255)
    coverage = cv2.resize(canvas, (resolution, resolution), interpolation=cv2.INTER_AREA) / np.float32(255)
    # Closed lips are a polygon of no area: its outline covers at most a quarter of a pixel.
    weight = np.clip((coverage - 0.3) / 0.7, 0, 1)
    return cv2.GaussianBlur(weight, (0, 0), feather) if feather > 0 else weight


def opening_at(landmarks: np.ndarray, x: np.ndarray, y: np.ndarray,
               pixels_per_crop_pixel: float) -> np.ndarray:
    """(h, w) float32 in [0, 1]: the mouth opening of ``landmarks`` (68, 2, crop pixels) over an
    image whose pixel centres lie at crop coordinates ``x``, ``y`` (h, w), each crop pixel
    ``pixels_per_crop_pixel`` of its pixels wide: between the smooth upper and lower inner-lip
    edges (:func:`~talking.mouth_interior.lip_edge` of iBUG's inner-lip chains in the upright
    crop) and the inner corners, anti-aliased and feathered by :data:`OPENING_FEATHER` of its
    pixels; 0 where the lips meet."""
    points = np.asarray(landmarks, np.float64)
    top, bottom = (lip_edge(points[list(chain)], x)
                   for chain in (INNER_LIP_UPPER_CHAIN, INNER_LIP_LOWER_CHAIN))
    left, right = np.sort(points[list(INNER_MOUTH_CORNERS), 0])
    k = pixels_per_crop_pixel  # crop-pixel distances -> the image's pixels

    def covered(low, high):  # the share of a pixel at 0 that lies between low and high
        return np.clip(np.minimum(0.5, high * k) + np.minimum(0.5, -low * k), 0, 1)

    opening = (covered(top - y, bottom - y) * covered(left - x, right - x)).astype(np.float32)
    return cv2.GaussianBlur(opening, (0, 0), OPENING_FEATHER)


def rendering_weight(mask: np.ndarray, opening: np.ndarray) -> np.ndarray:
    """(R, R) weight of the generator's rendering: where the mouth is open and the generator's
    blend ``mask`` (its weight of the photo) does not keep the photo."""
    return (1.0 - mask) * opening


def mouth_openings(landmarks: torch.Tensor, resolution: int) -> torch.Tensor:
    """(B, R, R) :func:`opening_weight` of each frame's landmarks (B, 68, 2) in crop pixels."""
    points = landmarks.detach().float().cpu().numpy()
    openings = np.stack([opening_weight(frame, resolution) for frame in points])
    return torch.from_numpy(openings).to(landmarks.device)


def opening_box(openings: torch.Tensor) -> tuple[int, int, int, int] | None:
    """The pixel box (top, left, bottom, right; exclusive) holding every frame's mouth opening
    (B, R, R) > 0: all of the crop the rendering can show; None when every mouth is closed."""
    rows, cols = openings.amax(dim=(0, 2)) > 0, openings.amax(dim=(0, 1)) > 0
    if not rows.any():
        return None
    (top, bottom), (left, right) = (torch.nonzero(v)[[0, -1], 0].tolist() for v in (rows, cols))
    return top, left, bottom + 1, right + 1


def compose_crop(source: torch.Tensor, flow: torch.Tensor, rendering: torch.Tensor,
                 mask: torch.Tensor | None, opening: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames at crop resolution, as inference makes them and training learns them:
    (crops (B, 3, R, R), the rendering's weight (B, R, R)).

    Args:
        source: (B, 3, R, R) the aligned photo in [-1, 1]; flow: (B, 2, R, R) that moves it.
        rendering: (B, 3, R, R) the generator's own rendering; mask: (B, 1, R, R) its weight of
            the photo, or None (no blend mask: it renders wherever the mouth is open).
        opening: (B, R, R) the frames' mouth openings (:func:`mouth_openings`).
    """
    opening = opening.to(rendering)
    weight = rendering_weight(mask[:, 0], opening) if mask is not None else opening
    moved = warp(source, flow)
    return moved + weight[:, None] * (rendering - moved), weight


@dataclass(frozen=True)
class Detail:
    """The inside of one frame's mouth at ``scale`` pixels per crop pixel (the refiner's output,
    :class:`~talking.models.refiner.MouthRefiner`): ``image`` (h, w, 3) uint8 over the crop's
    rows from ``top`` and columns from ``left`` (its pixel (0, 0) centred at crop coordinates
    ``top + (1/scale - 1) / 2``, and so on)."""

    image: np.ndarray
    top: int
    left: int
    scale: int


def detail_share(pixels_per_crop_pixel: float) -> float:
    """How much of a frame's inside is the refined detail, the rest the rendering upsampled:
    none for a face no larger in the photo than in the crop (the rendering is made for that
    size), all from twice that size, in between in proportion."""
    return float(np.clip(pixels_per_crop_pixel - 1, 0, 1))


def detail_grid(region: tuple[int, int, int, int], scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Crop coordinates (x, y), each (h * scale, w * scale), of the pixel centres of crop box
    ``region`` (top, left, bottom, right; exclusive) at ``scale`` pixels per crop pixel."""
    top, left, bottom, right = region
    x = left + (np.arange((right - left) * scale) + 0.5) / scale - 0.5
    y = top + (np.arange((bottom - top) * scale) + 0.5) / scale - 0.5
    return tuple(np.meshgrid(x.astype(np.float32), y.astype(np.float32)))


def detail_inputs(rendering: torch.Tensor, share: torch.Tensor, landmarks: torch.Tensor,
                  region: tuple[int, int, int, int], scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """What the refiner is given, over crop box ``region`` at ``scale`` pixels per crop pixel:
    (the rendering (B, 3, h, w) upsampled bicubically, 0 where it does not show; its weight
    (B, 1, h, w): its ``share`` (B, R, R) upsampled, times the opening of ``landmarks``
    (B, 68, 2) drawn at that scale, :func:`opening_at`)."""
    top, left, bottom, right = region
    upsampled = F.interpolate(rendering[..., top:bottom, left:right], scale_factor=scale, mode="bicubic",
                              align_corners=False)
    shares = F.interpolate(share[:, None, top:bottom, left:right], scale_factor=scale, mode="bilinear",
                           align_corners=False)
    x, y = detail_grid(region, scale)
    points = landmarks.detach().float().cpu().numpy()  # (B, 68, 2)
    openings = np.stack([opening_at(frame, x, y, scale) for frame in points])
    alpha = shares * torch.from_numpy(openings)[:, None].to(shares)
    return upsampled * (alpha > 0), alpha


class Compositor:
    """Makes the video frames of one photo; built once per clip, called once per frame.

    Args:
        photo: (H, W, 3) uint8 RGB, the user's photo at its own resolution.
        matrix: (2, 3) affine from photo pixels to crop pixels (``AlignedFace.matrix``).
        resolution: side R of the crops it is given.
        interior: the inside of the photo's own open mouth (:mod:`talking.mouth_interior`),
            shown in the opening instead of the generator's rendering; None for a photo whose
            mouth was closed.
    """

    def __init__(self, photo: np.ndarray, matrix: np.ndarray, resolution: int,
                 feather: float = FEATHER, interior: MouthInterior | None = None) -> None:
        self.photo, self.interior = photo, interior
        zone = ellipse_weight(resolution, ZONE_CENTER, ZONE_AXES, feather)
        # 1. the zone's bounding box in the photo, and crop -> zone-box resampling
        to_photo = cv2.invertAffineTransform(np.asarray(matrix, np.float64))
        rows, cols = np.nonzero(zone.any(axis=1))[0], np.nonzero(zone.any(axis=0))[0]
        corners = np.array([(cols[0] - 1, rows[0] - 1), (cols[-1] + 1, rows[0] - 1),
                            (cols[0] - 1, rows[-1] + 1), (cols[-1] + 1, rows[-1] + 1)], np.float64)
        points = corners @ to_photo[:, :2].T + to_photo[:, 2]
        height, width = photo.shape[:2]
        x0, y0 = np.clip(np.floor(points.min(axis=0)).astype(int), 0, (width - 1, height - 1))
        x1, y1 = np.clip(np.ceil(points.max(axis=0)).astype(int) + 1, (x0 + 1, y0 + 1), (width, height))
        self.box = (int(y0), int(x0), int(y1), int(x1))
        self.to_photo = to_photo
        self.to_box = to_photo.copy()
        self.to_box[:, 2] -= (x0, y0)
        self.size = (int(x1 - x0), int(y1 - y0))  # (w, h) for OpenCV
        self.zone = self._to_box(zone)[..., None]  # (h, w, 1)
        # 2. photo pixel grid of the box, and the crop's flow vectors turned into photo pixels
        grid_x, grid_y = np.meshgrid(np.arange(x0, x1, dtype=np.float32),
                                     np.arange(y0, y1, dtype=np.float32))
        self.grid = (grid_x, grid_y)
        self.turn = to_photo[:, :2].astype(np.float32)  # crop-pixel vectors -> photo-pixel vectors
        # the box's pixels in crop coordinates, and photo pixels per crop pixel
        self.crop_grid = (np.stack([grid_x, grid_y], axis=-1) @ np.asarray(matrix, np.float32)[:, :2].T
                          + np.asarray(matrix, np.float32)[:, 2])  # (h, w, 2)
        self.pixels_per_crop_pixel = float(np.sqrt(abs(np.linalg.det(to_photo[:, :2]))))

    @property
    def detail_share(self) -> float:
        """How much of a rendered inside is the refined detail for this photo's face
        (:func:`detail_share`); none for a photo that shows its own inside (``interior``), which
        never shows a rendering: nothing need be refined for it."""
        return 0.0 if self.interior is not None else detail_share(self.pixels_per_crop_pixel)

    def _to_box(self, image: np.ndarray, interpolation: int = cv2.INTER_LINEAR,
                part: tuple[slice, slice] | None = None) -> np.ndarray:
        """Crop-space ``image`` (R, R[, C]) resampled onto the zone's box in the photo, or onto
        ``part`` of it (rows, columns) alone."""
        matrix, size = self.to_box, self.size
        if part is not None:
            rows, cols = part
            matrix = matrix.copy()
            matrix[:, 2] -= (cols.start, rows.start)
            size = (cols.stop - cols.start, rows.stop - rows.start)
        return cv2.warpAffine(image, matrix, size, flags=interpolation,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    def photo_flow(self, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(2, R, R) float32 backward flow in crop pixels -> (move_x, move_y), each (h, w): the
        same motion in photo pixels over the zone's box, faded out at the zone's edge."""
        moved = self._to_box(np.ascontiguousarray(flow.transpose(1, 2, 0)))  # (h, w, 2), one resampling
        dx, dy = moved[..., 0], moved[..., 1]
        zone = self.zone[..., 0]
        return ((self.turn[0, 0] * dx + self.turn[0, 1] * dy) * zone,
                (self.turn[1, 0] * dx + self.turn[1, 1] * dy) * zone)

    def warp(self, move_x: np.ndarray, move_y: np.ndarray) -> np.ndarray:
        """The zone's box of the photo moved by a backward flow in photo pixels: (h, w, 3) uint8."""
        return cv2.remap(self.photo, self.grid[0] + move_x, self.grid[1] + move_y,
                         interpolation=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)

    def paste(self, box: np.ndarray) -> np.ndarray:
        """The photo (H, W, 3) uint8 with the zone's box replaced by ``box`` (h, w, 3)."""
        top, left, bottom, right = self.box
        frame = self.photo.copy()
        frame[top:bottom, left:right] = box
        return frame

    def opening(self, landmarks: np.ndarray) -> np.ndarray:
        """(h, w) float32 in [0, 1] over the zone's box: the mouth opening of a frame whose
        landmarks are ``landmarks`` (68, 2) in crop pixels, at the photo's resolution: between
        the smooth upper and lower inner-lip edges (:func:`~talking.mouth_interior.lip_edge` of
        iBUG's inner-lip chains in the upright crop) and the inner corners, anti-aliased and
        feathered by :data:`OPENING_FEATHER` photo pixels; 0 where the lips meet."""
        opening = np.zeros(self.zone.shape[:2], np.float32)
        part = self._lips_part(landmarks)
        if part is not None:
            opening[part] = self._opening_in(part, landmarks)
        return opening

    def _lips_part(self, landmarks: np.ndarray) -> tuple[slice, slice] | None:
        """The (rows, columns) of the zone's box around the inner lips of ``landmarks`` (68, 2)
        in crop pixels, with room for the feather; None when they lie outside it."""
        points = np.asarray(landmarks, np.float64)[INNER_LIPS]
        (x0, y0), (x1, y1) = points.min(axis=0) - 1, points.max(axis=0) + 1
        corners = np.array([(x0, y0), (x1, y0), (x0, y1), (x1, y1)])  # crop pixels -> the zone's box
        corners = corners @ self.to_box[:, :2].T + self.to_box[:, 2]
        width, height = self.size
        left, top = np.clip(np.floor(corners.min(axis=0)).astype(int), 0, (width, height))
        right, bottom = np.clip(np.ceil(corners.max(axis=0)).astype(int) + 1, 0, (width, height))
        return None if right <= left or bottom <= top else np.s_[top:bottom, left:right]

    def _opening_in(self, part: tuple[slice, slice], landmarks: np.ndarray) -> np.ndarray:
        """:meth:`opening` over ``part`` of the zone's box alone."""
        x, y = self.crop_grid[part][..., 0], self.crop_grid[part][..., 1]
        return opening_at(landmarks, x, y, self.pixels_per_crop_pixel)

    def _rendering_in(self, part: tuple[slice, slice], rendering: np.ndarray,
                      detail: Detail | None) -> np.ndarray:
        """(h', w', 3) float32 over ``part`` of the zone's box: the crop's ``rendering`` (R, R, 3)
        upsampled, or the refined ``detail`` as far as :attr:`detail_share` says."""
        share = self.detail_share if detail is not None else 0.0
        if share < 1:
            upsampled = self._to_box(rendering, cv2.INTER_CUBIC, part).astype(np.float32)
            if share == 0:
                return upsampled
        image, shrink = detail.image, detail.scale / self.pixels_per_crop_pixel
        if shrink > 1:  # a face smaller than the detail's scale: smoothed first, not aliased
            image = cv2.GaussianBlur(image, (0, 0), 0.5 * shrink)
        crop_x, crop_y = self.crop_grid[part][..., 0], self.crop_grid[part][..., 1]
        refined = cv2.remap(image, (crop_x - detail.left + 0.5) * detail.scale - 0.5,
                            (crop_y - detail.top + 0.5) * detail.scale - 0.5, cv2.INTER_CUBIC,
                            borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        return refined if share == 1 else upsampled + share * (refined - upsampled)

    def __call__(self, flow: np.ndarray, rendering: np.ndarray, blend: np.ndarray,
                 landmarks: np.ndarray | None = None, detail: Detail | None = None) -> np.ndarray:
        """One video frame (H, W, 3) uint8.

        Args:
            flow: (2, R, R) float32 backward flow in crop pixels (the frame's motion).
            rendering: (R, R, 3) uint8, the generator's own rendering of the frame.
            blend: (R, R) float32 in [0, 1], the rendering's share where it may show (one minus
                the generator's blend mask; 0 for a frame it did not render).
            landmarks: (68, 2) the frame's landmarks in crop pixels: the rendering (or the
                photo's own inside) shows only inside their mouth opening (:meth:`opening`);
                None: wherever ``blend`` says (needed with an ``interior``).
            detail: the rendering refined at more than the crop's resolution, shown instead of
                ``rendering`` upsampled as far as the photo has more pixels than the crop
                (:func:`detail_share`; a photo with its own inside shows that instead).
        """
        if self.interior is not None and landmarks is None:
            raise ValueError("a compositor that shows the photo's own inside needs each frame's landmarks")
        # 1. the photo's own pixels, moved by the flow (faded out at the zone's edge)
        warped = self.warp(*self.photo_flow(flow))
        if not blend.any():  # nothing rendered shows
            return self.paste(warped)
        # 2. the rendering (or the photo's own inside of the mouth) where the photo has nothing
        #    to show: inside the opening, drawn at the photo's resolution; made only over the
        #    inner lips' part of the box
        width, height = self.size
        part = np.s_[0:height, 0:width] if landmarks is None else self._lips_part(landmarks)
        if part is None:
            return self.paste(warped)
        alpha = self._to_box(np.ascontiguousarray(blend, dtype=np.float32), part=part)
        if landmarks is not None:
            alpha *= self._opening_in(part, landmarks)
        alpha = alpha[..., None] * self.zone[part]
        if self.interior is not None:
            points = move_points(landmarks.astype(np.float64), self.to_photo)  # (68, 2) photo pixels
            rendered = self.interior(self.grid[0][part], self.grid[1][part], points)
        else:
            rendered = self._rendering_in(part, rendering, detail)
        moved = warped[part].astype(np.float32)
        warped[part] = np.clip(moved + alpha * (rendered - moved) + 0.5, 0, 255).astype(np.uint8)
        return self.paste(warped)
