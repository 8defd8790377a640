"""Lip closures from the words: /p b m/ timed from espeak-ng's phonemes or a forced alignment
shut the predicted lips there, and nowhere else."""

import numpy as np
import pytest
import torch

from talking.config import FPS, MOUTH_PARAMETERS
from talking.errors import TalkingError
from talking.lip_closures import (
    CLOSED_LIPS,
    close_lips,
    closure_weights,
    closures_from_phonemes,
    closures_from_phones,
)
from talking.phonemes import Phone, align_phones
from talking.speech import synthesize

SENTENCE = "The baby played with a bubble."  # one of the few espeak-ng readings that fit


def test_frames_inside_a_closure_hold_it_and_its_neighbours_fade():
    weights = closure_weights([(0.49, 0.61)], num_frames=30, fps=FPS)  # frame mid-times 0.02 + 0.04 k
    assert weights[12:15].tolist() == [1.0, 1.0, 1.0]  # mid-times 0.50, 0.54, 0.58
    assert weights[11] == pytest.approx(np.exp(-0.03 / CLOSED_LIPS[2]), rel=1e-5)
    assert weights[15] == pytest.approx(np.exp(-0.01 / CLOSED_LIPS[2]), rel=1e-5)
    assert weights[11] > weights[10] > weights[9] > 0
    assert weights[:3].max() < 1e-3 and weights[25:].max() < 1e-3


def test_a_closure_shorter_than_a_frame_still_shuts_one_frame():
    weights = closure_weights([(0.505, 0.53)], num_frames=30, fps=FPS)  # no mid-time inside
    assert weights.max() == 1.0 and int(np.argmax(weights)) == 12  # mid-time 0.50, nearest to 0.5175
    assert closure_weights([], num_frames=5, fps=FPS).tolist() == [0.0] * 5


def test_closing_holds_jaw_tuck_teeth_and_tongue_and_leaves_spread_and_rounding():
    parameters = torch.full((4, len(MOUTH_PARAMETERS)), 0.6)
    closed = close_lips(parameters, np.array([0.0, 1.0, 0.5, 0.0], np.float32))
    jaw, spread, rounding = (MOUTH_PARAMETERS.index(n) for n in ("jaw_open", "lip_spread", "lip_round"))
    assert torch.equal(closed[[0, 3]], parameters[[0, 3]])
    assert closed[1, jaw] == 0 and closed[2, jaw] == pytest.approx(0.3)
    assert closed[1, MOUTH_PARAMETERS.index("lower_lip_tuck")] == 0
    assert torch.equal(closed[:, [spread, rounding]], parameters[:, [spread, rounding]])
    assert torch.equal(parameters, torch.full_like(parameters, 0.6))  # the input is left alone


def test_closures_are_the_bilabials_of_espeaks_phonemes_and_of_an_alignment():
    utterance = synthesize(SENTENCE)
    spoken = closures_from_phonemes(utterance.phonemes)
    # b, b, p, b, b
    assert len(spoken) == 5 and all(end > start for start, end in spoken)
    aligned = closures_from_phones([Phone("M", 0.1, 0.2), Phone("AA", 0.2, 0.3), Phone("B", 0.3, 0.35)])
    assert aligned == [(0.1, 0.2), (0.3, 0.35)]


def test_the_aligner_times_each_bilabial_where_espeak_spoke_it():
    """Forced alignment of speech it never trained on (espeak-ng's) finds every /p b m/ within a
    frame and a half of where the synthesiser put it."""
    utterance = synthesize(SENTENCE)
    spoken = closures_from_phonemes(utterance.phonemes)
    aligned = closures_from_phones(align_phones(utterance.audio, 22050, SENTENCE))
    assert len(aligned) == len(spoken)
    for (s0, s1), (a0, a1) in zip(spoken, aligned, strict=True):
        assert abs((s0 + s1) / 2 - (a0 + a1) / 2) < 0.06


def test_a_transcript_that_cannot_be_timed_is_named_in_one_short_message():
    audio = synthesize(SENTENCE).audio
    unknown = r"does not know 'zq0x', 'zq1x', 'zq2x', 'zq3x', 'zq4x' and 3 more \("
    with pytest.raises(TalkingError, match=unknown):
        align_phones(audio, 22050, " ".join(f"zq{i}x" for i in range(8)))
    with pytest.raises(TalkingError) as refused:
        align_phones(audio, 22050, "the " * 500)
    assert len(str(refused.value)) < 200 and "the t...' cannot be fitted" in str(refused.value)
    with pytest.raises(TalkingError, match="has no words"):
        align_phones(audio, 22050, " !? ")
