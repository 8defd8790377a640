"""Head pose registration: move a frame into another frame's head pose by its landmarks.

Audio cannot tell where a head wanders, only what the mouth, eyes and brows do. Training moves
each target frame into the source's pose (``align_to_source``, :mod:`talking.training.batches`)
and evaluation compares frames in the first frame's pose too (the registered lip L1 of
:mod:`talking.evaluate`), by the same transform: a similarity fitted on the landmarks that do not
move with speech or blinks (eye corners, nose, upper jaw).
"""

from __future__ import annotations

import cv2
import numpy as np

from talking.ibug import RIGID


def pose_alignment(landmarks: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(2, 3) similarity transform taking ``landmarks`` (68, 2) onto ``reference`` (68, 2), in
    pixels, fitted by least squares on :data:`RIGID`."""
    matrix, _ = cv2.estimateAffinePartial2D(landmarks[RIGID].astype(np.float32),
                                            reference[RIGID].astype(np.float32),
                                            method=cv2.LMEDS)
    return np.eye(2, 3) if matrix is None else matrix


def align_frame(frame: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``frame`` (H, W, 3) uint8 moved by the (2, 3) transform; edges repeat the border."""
    height, width = frame.shape[:2]
    return cv2.warpAffine(frame, matrix, (width, height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def move_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``points`` (..., 2) in pixels moved by the (2, 3) transform, in their own dtype."""
    return (points @ matrix[:, :2].T + matrix[:, 2]).astype(points.dtype)


def register_frames(frames: np.ndarray, landmarks: np.ndarray,
                    reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``frames`` (N, H, W, 3) uint8 with ``landmarks`` (N, 68, 2), each moved into the head pose
    of ``reference`` (68, 2) landmarks: the frames (N, H, W, 3) uint8 and their landmarks."""
    matrices = [pose_alignment(marks, reference) for marks in landmarks]
    return (np.stack([align_frame(frame, m) for frame, m in zip(frames, matrices, strict=True)]),
            np.stack([move_points(marks, m) for marks, m in zip(landmarks, matrices, strict=True)]))
