"""Phone timings of natural speech from an offline recogniser: pocketsphinx's phone decoder.

pocketsphinx 5 ships its US-English acoustic model and a phonetic language model inside the
wheel, so nothing is downloaded. Its *allphone* mode decodes the speech straight into CMU
phones (ARPAbet without stress: ``P``, ``AA``, ...) with their start and end, no transcript
needed. Recognising the words first and force-aligning them would be more accurate, but the
word decoder with the large language model takes ~20x real time on a busy 2-core machine, the
phone decoder ~1-2x; for where the lips close (``P B M``) and open (open vowels) its timings are
what the evaluation needs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

RECOGNISER_RATE = 16000  # the acoustic model's sample rate
_FRAMES_PER_SECOND = 100  # pocketsphinx's feature frames (10 ms)
SILENCE = frozenset({"SIL", "+SPN+", "+NSN+"})  # silence, spoken noise, noise


@dataclass(frozen=True)
class Phone:
    """One recognised phone: its ARPAbet ``label`` and where it lies, in seconds."""

    label: str
    start: float
    end: float


def recognise_phones(wav: np.ndarray, sample_rate: int) -> list[Phone]:
    """The phones of speech ``wav`` (S,) float in [-1, 1] at ``sample_rate``, in time order.

    Silences and noises come back as phones too (labels in :data:`SILENCE`).
    """
    import librosa
    from pocketsphinx import Decoder, get_model_path

    speech = librosa.resample(np.asarray(wav, np.float32), orig_sr=sample_rate, target_sr=RECOGNISER_RATE)
    pcm = (np.clip(speech, -1, 1) * 32767).astype(np.int16).tobytes()
    # lw, pip and the beams as in pocketsphinx's phone-recognition example
    decoder = Decoder(samprate=RECOGNISER_RATE, loglevel="FATAL", lm=None, lw=2.0, pip=0.1,
                      beam=1e-20, pbeam=1e-20,
                      allphone=os.path.join(get_model_path(), "en-us", "en-us-phone.lm.bin"))
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    return [Phone(segment.word, segment.start_frame / _FRAMES_PER_SECOND,
                  (segment.end_frame + 1) / _FRAMES_PER_SECOND) for segment in decoder.seg()]
