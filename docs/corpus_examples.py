"""Pictures of the synthetic corpus for the docs: a contact sheet and a sample clip.

    python docs/corpus_examples.py

writes ``docs/corpus_contact_sheet.png`` (16 speakers of the default corpus, seed 0, each with the
mouth closed and open) and ``docs/corpus_sample.mp4`` (clips of the default corpus rendered at
256 x 256, with their sound).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import numpy as np

from talking.corpus.appearance import sample_scene_style
from talking.corpus.build import CorpusConfig, build_clip, plan_corpus, speaker_style
from talking.corpus.geometry import face_frame
from talking.corpus.render import FaceRenderer
from talking.corpus.visemes import VISEMES
from talking.data import Clip
from talking.video import write_video

DOCS = Path(__file__).parent
SPEAKERS, COLUMNS, SIZE = 16, 4, 128


def contact_sheet(config: CorpusConfig) -> np.ndarray:
    """(rows * SIZE, COLUMNS * 2 * SIZE, 3): each speaker closed-mouthed, then saying "ah"."""
    plans = {plan.speaker: plan for plan in plan_corpus(config)}
    tiles = []
    for speaker in range(SPEAKERS):
        style = speaker_style(config, plans[speaker])
        renderer = FaceRenderer(style, sample_scene_style(np.random.default_rng([config.seed, 9, speaker])),
                                SIZE)
        pair = [renderer.render(face_frame(style, np.array(VISEMES[viseme][0]), 1.0, 0.0, np.zeros(2)),
                                np.zeros(3), 0.0)[0] for viseme in ("sil", "AA")]
        tiles.append(np.concatenate(pair, axis=1))
    rows = [np.concatenate(tiles[i:i + COLUMNS], axis=1) for i in range(0, SPEAKERS, COLUMNS)]
    return np.concatenate(rows, axis=0)


def sample_video(config: CorpusConfig, path: Path, clips: int = 3) -> None:
    """The first ``clips`` clips of the corpus, one after the other, as an mp4 with sound."""
    frames, audio = [], []
    with tempfile.TemporaryDirectory() as tmp:
        config = CorpusConfig(out=tmp, clips=config.clips, seed=config.seed, resolution=256)
        for plan in plan_corpus(config)[:clips]:
            clip = Clip(build_clip(plan, config))
            frames.extend(clip.frames)
            audio.append(clip.audio)
    write_video(path, frames, np.concatenate(audio))


def main() -> None:
    config = CorpusConfig(out="unused")
    sheet = contact_sheet(config)
    cv2.imwrite(str(DOCS / "corpus_contact_sheet.png"), sheet[..., ::-1])
    sample_video(config, DOCS / "corpus_sample.mp4")
    print(f"wrote {DOCS / 'corpus_contact_sheet.png'} and {DOCS / 'corpus_sample.mp4'}")


if __name__ == "__main__":
    main()
