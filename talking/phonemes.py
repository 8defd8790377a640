"""Phone timings of natural speech from an offline aligner: pocketsphinx's forced alignment.

pocketsphinx 5 ships its US-English acoustic model, a word language model and the CMU
pronouncing dictionary inside the wheel, so nothing is downloaded. Given the words spoken,
:func:`align_phones` times every phone (CMU phones, ARPAbet without stress: ``P``, ``AA``, ...)
in two passes: the words first, then the phones within them (~0.1x real time). Without a
transcript, :func:`recognise_words` finds the words first with the language model (~1-2x real
time); a misrecognised word then misplaces its phones, so the evaluation gives the transcript of
every clip it knows (:data:`talking.real_material.TRANSCRIPTS`).

An earlier version decoded phones straight from the audio (pocketsphinx's *allphone* mode, no
words): on gradio's clips it heard /p b m/ where the words have none (two in each clip, where
the words have one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from talking.errors import TalkingError

RECOGNISER_RATE = 16000  # the acoustic model's sample rate
_FRAMES_PER_SECOND = 100  # pocketsphinx's feature frames (10 ms)
SILENCE = frozenset({"SIL", "+SPN+", "+NSN+"})  # silence, spoken noise, noise
BILABIALS = frozenset({"P", "B", "M"})  # the phones for which the lips close
WORD_PENALTY = 0.1  # the aligner's word insertion penalty: wrong transcripts fit half as often


@dataclass(frozen=True)
class Phone:
    """One phone: its ARPAbet ``label`` and where it lies, in seconds."""

    label: str
    start: float
    end: float


def recognise_words(wav: np.ndarray, sample_rate: int) -> str:
    """The words pocketsphinx's US-English language model hears in ``wav`` (S,) float in
    [-1, 1] at ``sample_rate``, lower case; "" when it hears none."""
    from pocketsphinx import Decoder

    decoder = Decoder(samprate=RECOGNISER_RATE, loglevel="FATAL")
    _decode(decoder, _pcm(wav, sample_rate))
    hypothesis = decoder.hyp()
    return hypothesis.hypstr if hypothesis is not None else ""


def align_phones(wav: np.ndarray, sample_rate: int, transcript: str) -> list[Phone]:
    """The phones of ``transcript`` timed in ``wav`` (S,) float in [-1, 1] at ``sample_rate``,
    in time order, silences included (labels in :data:`SILENCE`); raises :class:`TalkingError` when a word is
    not in the dictionary or the words cannot be fitted to the audio.

    Between words the search allows silence, breath and noise (pocketsphinx's fillers). Without
    them every transcript fits, the wrong ones too, by stretching phones over the pauses
    (held-out natural voices: phones of 1.4-2.4 s). With them, and a word insertion penalty of
    :data:`WORD_PENALTY`, the right words fit 30 in 30 of those utterances as recorded and 17 in
    30 under a room, a channel and a background, another utterance's words 7 times in 90 (13
    with pocketsphinx's default penalty, 0.65, chosen on these same utterances). espeak-ng's
    unbroken speech seldom fits (6 of 32 sentences in four voices; 11 with the default penalty):
    typed text needs no aligner, espeak-ng times its own phonemes."""
    from pocketsphinx import Decoder

    pcm = _pcm(wav, sample_rate)
    words = " ".join(re.sub(r"[^\w']+", " ", transcript.lower()).split())
    if not words:
        raise TalkingError("The transcript has no words.")
    decoder = Decoder(samprate=RECOGNISER_RATE, loglevel="FATAL", lm=None, wip=WORD_PENALTY)
    try:
        decoder.set_align_text(words)
    except RuntimeError:
        unknown = list(dict.fromkeys(w for w in words.split() if decoder.lookup_word(w) is None))
        named = ", ".join(repr(w) for w in unknown[:5])
        named += f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise TalkingError(f"Cannot time the words: pocketsphinx's dictionary does not know "
                           f"{named or 'one of them'} (spell numbers out; English only).") from None
    shown = transcript if len(transcript) <= 60 else transcript[:57] + "..."
    no_fit = f"The words {shown!r} cannot be fitted to the audio{{}}: is it the transcript of this speech?"
    try:
        _decode(decoder, pcm)  # pass 1: where the words lie
        decoder.set_alignment()
        _decode(decoder, pcm)  # pass 2: the phones within the words
    except RuntimeError:
        raise TalkingError(no_fit.format("")) from None
    alignment = decoder.get_alignment()
    # the search may end in silence before the last words when they do not fit
    fitted = [word.name.split("(")[0] for word in alignment or [] if not word.name.startswith("<")]
    if fitted != words.split():
        only = " ".join(fitted) if len(fitted) <= 8 else f"the first {len(fitted)} of {len(words.split())}"
        raise TalkingError(no_fit.format(f" (only {only or 'none'})"))
    return [Phone(phone.name, phone.start / _FRAMES_PER_SECOND,
                  (phone.start + phone.duration) / _FRAMES_PER_SECOND)
            for word in alignment for phone in word]


def _pcm(wav: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM at the recogniser's rate."""
    import librosa

    speech = librosa.resample(np.asarray(wav, np.float32), orig_sr=sample_rate, target_sr=RECOGNISER_RATE)
    return (np.clip(speech, -1, 1) * 32767).astype(np.int16).tobytes()


def _decode(decoder, pcm: bytes) -> None:
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
