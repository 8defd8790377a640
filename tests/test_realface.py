"""A detector trained on real faces finds real photos' faces, wherever and however turned, and
reads their landmarks in the corpus's own layout. The real photos are evaluation material only."""

import subprocess
import sys
import threading

import cv2
import numpy as np
import pytest
from faces import render_face, textured_photo
from matplotlib import cbook
from PIL import Image

from talking.corpus.appearance import sample_face_style, sample_scene_style
from talking.corpus.geometry import face_frame
from talking.corpus.render import FaceRenderer
from talking.realface import find_face_mesh, lip_gaps, openings


def grace_hopper() -> np.ndarray:
    """(600, 512, 3) a real portrait, mouth closed (matplotlib's sample data)."""
    return np.array(Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB"))


def astronaut() -> np.ndarray:
    """(512, 512, 3) a real portrait smiling with the teeth showing (scikit-image's data)."""
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="module")
def hopper():
    photo = grace_hopper()
    return photo, find_face_mesh(photo)


def median_error(found, expected: np.ndarray, eye_distance: float) -> float:
    """Median distance of ``found``'s iBUG points from ``expected`` (68, 2), in eye distances."""
    return float(np.median(np.hypot(*(found.ibug68() - expected).T))) / eye_distance


@pytest.mark.parametrize("photo", [grace_hopper, astronaut])
def test_real_portrait_gives_landmarks_in_the_corpus_layout(photo):
    image = photo()
    mesh = find_face_mesh(image)
    points = mesh.ibug68()
    assert points.shape == (68, 2) and points.dtype == np.float32
    left_eye, right_eye = points[36:42].mean(0), points[42:48].mean(0)
    brows, nose_tip, mouth = points[17:27].mean(0), points[30], points[48:68].mean(0)
    assert left_eye[0] < right_eye[0] and points[0, 0] < points[16, 0] and points[48, 0] < points[54, 0]
    assert points[36, 0] < points[39, 0] < points[42, 0] < points[45, 0]  # corners left to right
    assert brows[1] < left_eye[1] < nose_tip[1] < mouth[1] < points[8, 1]  # top to bottom
    assert points[62, 1] <= points[66, 1] and points[51, 1] < points[62, 1]  # upper lip above lower
    assert 0.1 < mesh.eye_distance() / image.shape[1] < 0.4


def test_lip_gap_tells_an_open_smile_from_a_closed_mouth(hopper):
    assert hopper[1].lip_gap() < 0.02
    assert find_face_mesh(astronaut()).lip_gap() > 0.06


@pytest.mark.parametrize("angle", [30, -60, 180])
def test_rolled_face_is_found_where_it_is(hopper, angle):
    photo, upright = hopper
    height, width = photo.shape[:2]
    turn = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), angle, 1.0)
    turned = cv2.warpAffine(photo, turn, (width, height), borderMode=cv2.BORDER_REFLECT)
    expected = cv2.transform(upright.ibug68()[None], turn)[0]
    assert median_error(find_face_mesh(turned), expected, upright.eye_distance()) < 0.05


def test_small_face_in_a_large_photo_is_found(hopper):
    photo, upright = hopper
    scale = 0.15  # the eyes 19 pixels apart in a 1600 x 1200 photo
    small = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    large = textured_photo(1200, 1600)
    large[700:700 + small.shape[0], 300:300 + small.shape[1]] = small
    expected = (upright.ibug68() + 0.5) * scale - 0.5 + (300, 700)
    assert median_error(find_face_mesh(large), expected, upright.eye_distance() * scale) < 0.1


def test_photo_without_a_face_gives_none():
    assert find_face_mesh(textured_photo()) is None


def test_mesh_lands_near_the_renderers_exact_landmarks():
    errors = []
    for seed in range(6):
        rng = np.random.default_rng(seed)
        style, scene = sample_face_style(rng, feminine=bool(seed % 2)), sample_scene_style(rng)
        mouth = np.zeros(7)
        mouth[0] = rng.uniform(0, 0.8)
        frame = face_frame(style, mouth, eye_openness=1.0, brow_raise=0.0, gaze=np.zeros(2))
        image, truth = FaceRenderer(style, scene, 256).render(frame, np.zeros(3), 0.0)
        eye_distance = np.hypot(*(truth[42:48].mean(0) - truth[36:42].mean(0)))
        errors.append(np.hypot(*(find_face_mesh(image).ibug68() - truth).T) / eye_distance)
    errors = np.array(errors)  # (6, 68) in eye distances
    assert np.median(errors) < 0.1  # 0.07 measured over 40 speakers
    assert np.median(errors[:, 36:48]) < 0.05 and np.median(errors[:, 48:68]) < 0.1


def test_lip_gaps_follow_the_mouth_and_are_nan_without_a_face():
    shut, _ = render_face(1, 256)
    open_, _ = render_face(1, 256, jaw=0.8)
    frames = [shut, open_, shut, open_, textured_photo(256, 256), shut]
    gaps = lip_gaps(frames)
    assert gaps.shape == (6,) and np.isnan(gaps[4]) and not np.isnan(np.delete(gaps, 4)).any()
    assert gaps[[1, 3]].min() > gaps[[0, 2, 5]].max() + 0.03  # 0.058 vs 0.013 measured


def test_threads_share_the_graphs_safely(hopper):
    photo, upright = hopper
    results = [None] * 4

    def find(index):
        results[index] = find_face_mesh(photo).points

    threads = [threading.Thread(target=find, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for points in results:
        np.testing.assert_allclose(points, upright.points, atol=1e-3)


def test_first_use_writes_nothing_to_stderr():
    script = ("from matplotlib import cbook; from PIL import Image; import numpy as np; "
              "from talking.realface import find_face_mesh, lip_gaps; "
              "photo = np.array(Image.open(cbook.get_sample_data('grace_hopper.jpg')).convert('RGB')); "
              "assert find_face_mesh(photo) is not None; lip_gaps([photo])")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stderr == ""


def test_openings_read_the_renderers_eyes_and_jaw_back():
    style = sample_face_style(np.random.default_rng(3), feminine=False)
    landmarks, jaws, eyes = [], [0.0, 0.3, 0.9], [1.0, 0.1]
    for jaw in jaws:
        for eye in eyes:
            mouth = np.zeros(7)
            mouth[0] = jaw
            landmarks.append(face_frame(style, mouth, eye_openness=eye, brow_raise=0.0,
                                        gaze=np.zeros(2)).landmarks)
    eye_ratio, opening = openings(np.array(landmarks).reshape(3, 2, 68, 2))
    np.testing.assert_allclose(opening, np.repeat(np.array(jaws)[:, None], 2, 1), atol=0.01)
    assert (eye_ratio[:, 1] < 0.3 * eye_ratio[:, 0]).all()  # a shut eye's aspect ratio collapses
