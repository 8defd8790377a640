"""Head pose registration: frames moved into a reference pose by their landmarks."""

import cv2
import numpy as np

from talking.ibug import LIPS, RIGID
from talking.pose import register_frames


def test_register_frames_undoes_each_frames_head_motion():
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), (9, 9), 3)
    reference = rng.uniform(12, 52, (68, 2)).astype(np.float32)
    frames, landmarks = [], []
    for angle, scale, shift in ((0.0, 1.0, (0.0, 0.0)), (3.0, 1.02, (2.0, -1.0)),
                                (-2.0, 0.98, (-1.5, 2.5))):
        move = cv2.getRotationMatrix2D((32.0, 32.0), angle, scale)
        move[:, 2] += shift
        frames.append(cv2.warpAffine(base, move, (64, 64), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REPLICATE))
        marks = reference @ move[:, :2].T + move[:, 2]
        marks[LIPS] += rng.normal(0, 2, (20, 2))  # the lips move with speech: ignored
        landmarks.append(marks)
    assert not set(range(68)[LIPS]) & set(RIGID.tolist())
    registered, _ = register_frames(np.stack(frames), np.stack(landmarks), reference)
    inner = (slice(None), slice(10, -10), slice(10, -10))
    moved_error = np.abs(np.stack(frames)[1:][inner].astype(float) - base[inner[1:]]).mean()
    error = np.abs(registered[1:][inner].astype(float) - base[inner[1:]]).mean()
    assert error < 2.0 < moved_error  # grey levels: interpolation only, against the motion
    assert np.abs(registered[0].astype(int) - frames[0]).max() <= 1  # already in the pose
