"""An open mouth in the photo is closed once per clip: the lips meet, the rest stays the photo's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from faces import render_face

from talking.closed_mouth import close_mouth
from talking.face import align_face, warp_to_crop
from talking.models import MOTION_CLASSES
from talking.models.motion import mouth_opening
from talking.real_metrics import CLOSE_MARGIN
from talking.realface import find_face_mesh
from talking.training.motion import fit_mouth_basis


@pytest.fixture(scope="module")
def predictor():
    model = MOTION_CLASSES["optical"](resolution=128)
    model.basis.copy_(torch.from_numpy(fit_mouth_basis(styles=12, samples=20)))
    return model.eval()


@pytest.mark.parametrize("seed", [0, 1, 3, 5])
def test_an_open_mouth_closes_and_an_independent_tracker_sees_the_lips_meet(seed, predictor):
    photo, _ = render_face(seed, 320, jaw=0.6)
    face = align_face(photo, 128)
    closed, closed_face, _ = close_mouth(photo, face, predictor)
    before, after = find_face_mesh(photo).lip_gap(), find_face_mesh(closed).lip_gap()
    # closed as the real-input evaluation counts lips closed: within its margin of the gap the
    # tracker reads on the same face drawn with its mouth shut
    shut = find_face_mesh(render_face(seed, 320, jaw=0.0)[0]).lip_gap()
    assert before > 0.045 and after < shut + CLOSE_MARGIN and after < 0.6 * before
    assert mouth_opening(closed_face.landmarks) == pytest.approx(0.0, abs=1e-4)
    # the crop the generator sees is the closed photo's
    np.testing.assert_array_equal(closed_face.crop, warp_to_crop(closed, face.matrix, 128))
    assert np.abs(closed_face.crop.astype(int) - face.crop).max() > 20
    # only the mouth's zone changed: the eyes and everything above the nose are the photo's own
    rows = np.flatnonzero(np.abs(closed.astype(int) - photo).max(axis=(1, 2)) > 0)
    eyes = face.landmarks[36:48, 1].max()  # crop pixels
    top = (np.linalg.inv(np.vstack([face.matrix, [0, 0, 1]])) @ [64, eyes, 1])[1]
    assert rows.min() > top


def test_a_closed_mouth_is_left_exactly_as_it_is(predictor):
    photo, _ = render_face(4, 320, jaw=0.0)
    face = align_face(photo, 128)
    closed, closed_face, _ = close_mouth(photo, face, predictor)
    assert closed is photo and closed_face is face
