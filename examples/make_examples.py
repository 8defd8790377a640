"""Make the web app's one-click examples with the project's own tools; the output is committed.

    python examples/make_examples.py

- ``face-*.jpg``: speakers drawn by the synthetic-corpus renderer (:mod:`talking.corpus.render`)
  with a closed mouth and open eyes, the head shrunk so the photo has a margin around the face as
  a portrait does. Each is checked to be found by :func:`talking.face.detect_face`, the detector
  the app runs, so that an example never fails with "no face".
- ``speech.wav``: a short English sentence spoken by espeak-ng (:mod:`talking.speech`),
  16-bit mono at 22050 Hz.

No file needs a download, and together they stay small (about 200 KB) for the Space's repo.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile
from PIL import Image

from talking.config import MOUTH_PARAMETERS, SAMPLE_RATE
from talking.corpus.appearance import sample_face_style, sample_scene_style
from talking.corpus.geometry import face_frame
from talking.corpus.render import FaceRenderer
from talking.face import detect_face
from talking.speech import Voice, synthesize

HERE = Path(__file__).resolve().parent
SIZE = 320
# Seeds of speakers that look unlike each other (skin tone, hair) and that the detector finds.
FACES = {"face-1.jpg": (6, True), "face-2.jpg": (17, False)}
HEAD_OFFSET = np.array([0.0, -0.08, -0.35])  # dx, dy, scale - 1: a smaller head, raised a little
SENTENCE = "Hello! I was drawn by a program, and now I can talk."


def draw_speaker(seed: int, feminine: bool) -> np.ndarray:
    """(SIZE, SIZE, 3) uint8 RGB portrait of the corpus speaker ``seed``, mouth closed."""
    rng = np.random.default_rng(seed)
    style = sample_face_style(rng, feminine)
    renderer = FaceRenderer(style, sample_scene_style(rng), SIZE)
    frame = face_frame(style, np.zeros(len(MOUTH_PARAMETERS)), eye_openness=1.0, brow_raise=0.0,
                       gaze=np.zeros(2))
    image, _ = renderer.render(frame, HEAD_OFFSET, roll=0.0)
    return image


def main() -> None:
    for name, (seed, feminine) in FACES.items():
        image = draw_speaker(seed, feminine)
        detect_face(image, name)  # raises TalkingError if the app would not find the face
        Image.fromarray(image).save(HERE / name, quality=88)
    speech = synthesize(SENTENCE, Voice("en-us"))
    soundfile.write(HERE / "speech.wav", speech.audio, SAMPLE_RATE, subtype="PCM_16")
    for path in sorted(HERE.glob("*.*")):
        if path.suffix != ".py":
            print(f"{path.name}: {path.stat().st_size / 1000:.0f} kB")


if __name__ == "__main__":
    main()
