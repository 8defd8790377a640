"""Lip closures from the words: where /p b m/ are spoken, the predicted lips meet.

The motion predictor hears /p b m/ from the sound alone. On held-out natural voices it closes
the lips on most of them as recorded, on about half under a room, a channel and a background,
and on neither of the two in the real evaluation clips (docs/RESULTS.md). When the words are
known, their bilabials can be timed instead:

- typed text spoken by espeak-ng: its own phoneme events (:mod:`talking.speech`);
- a recording with its transcript: pocketsphinx's forced alignment (:func:`talking.phonemes.align_phones`,
  ~0.1x real time, English; its acoustic model was trained on real speech).

Inside each closure the predicted mouth is held at the corpus's closed-lips viseme (``PP`` of
:data:`talking.corpus.visemes.VISEMES`: jaw, upper-lip raise, lower-lip tuck, teeth and tongue at
0; spread and rounding stay as predicted), and around it the hold fades as the corpus's
coarticulation fades a consonant's dominance (``exp(-d / tau)``, ``d`` the distance to the
closure, ``tau`` 45 ms), so the lips meet for the closure and part again for the next vowel.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from talking.audio import video_frame_times
from talking.corpus.visemes import VISEMES, phoneme_visemes
from talking.phonemes import BILABIALS, Phone
from talking.speech import Phoneme

CLOSED_LIPS = VISEMES["PP"]  # (targets, dominance, tau) of a closure in the corpus
# the parameters a closure holds: those of its strongest dominance (jaw, raise, tuck, teeth, tongue)
HELD = tuple(i for i, strength in enumerate(CLOSED_LIPS[1]) if strength == max(CLOSED_LIPS[1]))


def closures_from_phones(phones: Iterable[Phone]) -> list[tuple[float, float]]:
    """(start, end) seconds of each /p b m/ of an alignment (:func:`talking.phonemes.align_phones`)."""
    return [(phone.start, phone.end) for phone in phones if phone.label in BILABIALS]


def closures_from_phonemes(phonemes: Iterable[Phoneme]) -> list[tuple[float, float]]:
    """(start, end) seconds of each bilabial of espeak-ng's phonemes (IPA; ``p``, ``b``, ``m``...)."""
    return [(p.start, p.end) for p in phonemes if phoneme_visemes(p.symbol) == ["PP"]]


def closure_weights(closures: Iterable[tuple[float, float]], num_frames: int, fps: float,
                    tau: float = CLOSED_LIPS[2]) -> np.ndarray:
    """(N,) float32 in [0, 1]: how firmly each video frame (at its mid-time) holds the lips shut.

    1 for frames inside a closure, and for the frame nearest the middle of a closure shorter
    than a frame (so that every closure shows); ``exp(-d / tau)`` at a distance ``d`` from it."""
    times = video_frame_times(num_frames, fps)  # (N,) mid-times
    weights = np.zeros(num_frames, np.float64)
    for start, end in closures if num_frames else ():
        if end <= 0 or start >= times[-1] + 0.5 / fps:
            continue
        distance = np.maximum(np.maximum(start - times, times - end), 0.0)
        if not (distance == 0).any():
            distance[np.argmin(np.abs(times - (start + end) / 2))] = 0.0
        weights = np.maximum(weights, np.exp(-distance / tau))
    return weights.astype(np.float32)


def close_lips(parameters: torch.Tensor, weights: np.ndarray) -> torch.Tensor:
    """Mouth parameters (N, P) with the held parameters pulled to the closed-lips viseme by
    ``weights`` (N,) (:func:`closure_weights`): a new tensor."""
    weight = torch.from_numpy(weights).to(parameters)[:, None]  # (N, 1)
    target = parameters.new_tensor(CLOSED_LIPS[0])  # (P,)
    held = torch.zeros(parameters.shape[-1], dtype=torch.bool, device=parameters.device)
    held[list(HELD)] = True
    closed = parameters + weight * (target - parameters)
    return torch.where(held, closed, parameters)
