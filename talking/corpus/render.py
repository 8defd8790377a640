"""Pixels: draws a synthetic face's parts over its scene, one frame at a time.

Per clip (:class:`FaceRenderer`): the background and clothes; a *tone map* in head coordinates
that shades the face relief (:func:`~talking.corpus.geometry.surface_height`) under the scene's
light and adds skin texture; the scene's light gradient and white-balance error. Per frame: the
parts are drawn with OpenCV (antialiased, 1/16-pixel precision) after the in-plane head pose
(roll, scale, shift about the neck), the tone map follows the head by the same affine warp, then
the camera: blur, sensor noise, JPEG. Sizes scale with the resolution, so 128 and 256 look alike.

Pixel convention: normalised coordinate ``u`` in [0, 1] is pixel position ``u * R - 0.5``, so
pixel centres are integers (OpenCV's convention) and landmarks are in the same coordinates.
"""

from __future__ import annotations

import cv2
import numpy as np

from talking.config import MOUTH_PARAMETERS
from talking.corpus.appearance import FaceStyle, SceneStyle
from talking.corpus.geometry import FaceFrame, face_frame, surface_height
from talking.corpus.motion import FaceMotion
from talking.corpus.shapes import Part, superellipse

_SHIFT = 4  # OpenCV fixed-point bits: 1/16 pixel
_PIVOT = np.array([0.5, 0.75])  # the head turns about the neck
_LIGHT_ELEVATION = np.radians(35.0)


class FaceRenderer:
    """Renders frames of one speaker (``style``) in one shot (``scene``) at ``resolution``."""

    def __init__(self, style: FaceStyle, scene: SceneStyle, resolution: int = 128):
        self.style, self.scene, self.resolution = style, scene, resolution
        self.rng = np.random.default_rng(scene.seed)
        self.background = self._background()
        self.tone = self._tone_map()  # (R, R) float32, head coordinates, 1 off the head
        self.light = self._light()  # (R, R, 3) float32, image coordinates

    def render(self, frame: FaceFrame, head_offset: np.ndarray, roll: float) -> tuple[np.ndarray, np.ndarray]:
        """One frame: (R, R, 3) uint8 RGB and the landmarks (68, 2) in pixels."""
        R = self.resolution
        matrix = self._pose_matrix(head_offset, roll)  # (2, 3) head pixels -> image pixels
        canvas = self.background.copy()
        for part in frame.parts:
            self._draw(canvas, part, matrix)
        tone = cv2.warpAffine(self.tone, matrix, (R, R), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=1.0)
        image = canvas.astype(np.float32) * tone[..., None] * self.light
        return self._camera(image), self._to_pixels(frame.landmarks, matrix)

    # -- per frame ---------------------------------------------------------------------------

    def _pose_matrix(self, head_offset: np.ndarray, roll: float) -> np.ndarray:
        R = self.resolution
        dx, dy, scale = (float(v) for v in head_offset)
        c, s = np.cos(np.radians(roll)) * (1 + scale), np.sin(np.radians(roll)) * (1 + scale)
        linear = np.array([[c, -s], [s, c]])
        pivot = R * _PIVOT
        shift = pivot + linear @ (0.5 - pivot) + R * np.array([dx, dy]) - 0.5
        return np.concatenate([linear, shift[:, None]], axis=1).astype(np.float32)

    def _to_pixels(self, points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        head = points * self.resolution - 0.5
        return (head @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)

    def _draw(self, canvas: np.ndarray, part: Part, matrix: np.ndarray) -> None:
        points = np.round(self._to_pixels(part.points, matrix) * (1 << _SHIFT)).astype(np.int32)
        thickness_px = part.thickness * self.resolution
        alpha = part.alpha * min(1.0, thickness_px) if part.thickness else part.alpha
        if alpha < 1.0:  # blend on the part's bounding box only
            x0, y0 = np.maximum((points.min(0) >> _SHIFT) - 2, 0)
            x1, y1 = (points.max(0) >> _SHIFT) + 3
            target = canvas[y0:y1, x0:x1]
            if target.size == 0:
                return
            overlay = target.copy()
            self._paint(overlay, points - (np.array([x0, y0]) << _SHIFT), part, thickness_px)
            cv2.addWeighted(overlay, alpha, target, 1 - alpha, 0, dst=target)
        else:
            self._paint(canvas, points, part, thickness_px)

    @staticmethod
    def _paint(image: np.ndarray, points: np.ndarray, part: Part, thickness_px: float) -> None:
        if part.thickness:
            cv2.polylines(image, [points], part.closed, part.colour, max(1, round(thickness_px)),
                          cv2.LINE_AA, _SHIFT)
        else:
            cv2.fillPoly(image, [points], part.colour, cv2.LINE_AA, _SHIFT)

    def _camera(self, image: np.ndarray) -> np.ndarray:
        scene, R = self.scene, self.resolution
        if scene.blur_sigma > 0.05:
            image = cv2.GaussianBlur(image, (0, 0), scene.blur_sigma * R / 128)
        if scene.noise_sigma > 0:
            image += self.rng.standard_normal(image.shape, dtype=np.float32) * scene.noise_sigma
        image = np.clip(image + 0.5, 0, 255).astype(np.uint8)
        if scene.jpeg_quality:
            _, data = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, scene.jpeg_quality])
            image = cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1]
        return np.ascontiguousarray(image)

    # -- per clip ----------------------------------------------------------------------------

    def _background(self) -> np.ndarray:
        R, scene = self.resolution, self.scene
        first, second = (np.array(c, np.float32) for c in scene.background_colours)
        y, x = np.mgrid[0:R, 0:R].astype(np.float32) / R
        if scene.background == "gradient":
            angle = self.rng.uniform(0, 2 * np.pi)
            t = np.clip(0.5 + (x - 0.5) * np.cos(angle) + (y - 0.5) * np.sin(angle), 0, 1)
        elif scene.background == "blotches":
            t = cv2.resize(self.rng.uniform(0, 1, (4, 4)).astype(np.float32), (R, R),
                           interpolation=cv2.INTER_CUBIC).clip(0, 1)
        elif scene.background == "room":  # a wall with a few blurred rectangles: doors, shelves
            t = np.zeros((R, R), np.float32)
            for _ in range(self.rng.integers(1, 4)):
                x0, y0 = self.rng.uniform(0, 1, 2)
                w, h = self.rng.uniform(0.1, 0.6, 2)
                t[(x >= x0) & (x < x0 + w) & (y >= y0) & (y < y0 + h)] = self.rng.uniform(0.5, 1)
            t = cv2.GaussianBlur(t, (0, 0), R / 64)
        else:
            t = np.zeros((R, R), np.float32)
        image = first * (1 - t[..., None]) + second * t[..., None]
        image *= 1 + self.rng.normal(0, 0.02, (R, R, 1)).astype(np.float32)  # wall texture
        canvas = np.clip(image, 0, 255).astype(np.uint8)
        shoulders = superellipse((0.5, 1.22), (0.56, 0.32), 2.5, 0, 2 * np.pi, 48)
        self._draw(canvas, Part(shoulders, self.scene.clothes), np.array([[1, 0, 0], [0, 1, 0]], np.float32))
        return canvas

    def _tone_map(self) -> np.ndarray:
        """Shading of the face relief under the scene's light, times skin texture, in head
        coordinates; 1 (no change) off the head."""
        R, style, scene = self.resolution, self.style, self.scene
        y, x = (np.mgrid[0:R, 0:R].astype(np.float32) + 0.5) / R
        height = surface_height(style, np.stack([x.ravel(), y.ravel()], 1)).reshape(R, R)
        dy, dx = np.gradient(height, 1.0 / R)
        normal = np.stack([-dx, -dy, np.ones_like(dx)], -1)
        normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
        light = np.array([np.cos(scene.light_angle) * np.sin(_LIGHT_ELEVATION),
                          np.sin(scene.light_angle) * np.sin(_LIGHT_ELEVATION), np.cos(_LIGHT_ELEVATION)])
        strength = 0.3 + scene.light_strength
        shading = (1 - strength) + strength * np.clip(normal @ light, 0, None) / np.cos(_LIGHT_ELEVATION)
        pores = cv2.GaussianBlur(self.rng.normal(0, 0.03, (R, R)).astype(np.float32), (0, 0), R / 200)
        blotches = cv2.resize(self.rng.normal(0, 0.03, (8, 8)).astype(np.float32), (R, R),
                              interpolation=cv2.INTER_CUBIC)
        mask = self._head_mask()
        return (1 + mask * (shading * (1 + pores + blotches) - 1)).astype(np.float32)

    def _head_mask(self) -> np.ndarray:
        """Where the head is (neutral pose, jaw wide open), softened: texture and shading apply
        only there."""
        R = self.resolution
        wide_open = np.eye(len(MOUTH_PARAMETERS))[MOUTH_PARAMETERS.index("jaw_open")]
        neutral = face_frame(self.style, wide_open, 1.0, 0.0, np.zeros(2))
        mask = np.zeros((R, R), np.uint8)
        identity = np.array([[1, 0, 0], [0, 1, 0]], np.float32)
        for part in neutral.parts:
            if not part.thickness and part.alpha >= 0.9:
                self._draw(mask, Part(part.points, (255.0, 0.0, 0.0)), identity)
        return cv2.GaussianBlur(mask.astype(np.float32) / 255, (0, 0), R / 128)

    def _light(self) -> np.ndarray:
        R, scene = self.resolution, self.scene
        y, x = (np.mgrid[0:R, 0:R].astype(np.float32) + 0.5) / R - 0.5
        along = x * np.cos(scene.light_angle) + y * np.sin(scene.light_angle)
        gradient = 1 + scene.light_strength * 0.6 * along
        return (gradient[..., None] * np.array(scene.colour_gain, np.float32) / 255).astype(np.float32)


def render_clip(style: FaceStyle, scene: SceneStyle, mouth: np.ndarray, motion: FaceMotion,
                resolution: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """All frames of a clip: (N, R, R, 3) uint8 and landmarks (N, 68, 2) float32 in pixels, for
    mouth parameters ``mouth`` (N, P) and the ``motion`` tracks."""
    renderer = FaceRenderer(style, scene, resolution)
    num_frames = len(mouth)
    frames = np.empty((num_frames, resolution, resolution, 3), np.uint8)
    landmarks = np.empty((num_frames, 68, 2), np.float32)
    for t in range(num_frames):
        yaw, pitch, roll = motion.head_pose[t]
        frame = face_frame(style, mouth[t], float(motion.eye_openness[t]), float(motion.brow_raise[t]),
                           motion.gaze[t], float(yaw), float(pitch))
        frames[t], landmarks[t] = renderer.render(frame, motion.head_offset[t], float(roll))
    return frames, landmarks
