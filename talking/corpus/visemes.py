"""Phonemes -> mouth parameters per video frame, with coarticulation.

Each IPA phoneme maps to one viseme (a diphthong to two, splitting its time); a viseme is a
target value for each of the :data:`~talking.config.MOUTH_PARAMETERS` plus how strongly it holds that target.
Coarticulation follows Cohen & Massaro (1993): every segment exerts a *dominance*
``D(t) = alpha * exp(-d(t) / tau)`` over each parameter, ``d`` being the distance from ``t`` to
the segment (0 inside it), and the mouth at time ``t`` is the dominance-weighted mean of the
targets. Lip closure for p/b/m and lip-teeth contact for f/v are holds: absolute inside their
segment (so they are reached even between open vowels), ordinary outside it. Lip rounding is
free during most consonants, so it spreads from rounded vowels to their neighbours (anticipatory
rounding in "soon", "two"). Silence holds the mouth closed and still.

Parameters, all in [0, 1]: ``jaw_open`` (mouth opening), ``lip_spread`` (corners pulled wide),
``lip_round`` (rounded, protruded lips), ``upper_lip_raise``, ``lower_lip_tuck`` (lower lip
raised against the upper teeth), ``teeth`` and ``tongue`` (how much of each shows).
"""

from __future__ import annotations

import numpy as np

from talking.audio import video_frame_times
from talking.speech import SILENCE, Phoneme

_H, _V, _M, _L, _F = 1000.0, 6.0, 3.0, 1.0, 0.1  # dominance: hold, vowel, medium, low, free
_CONSONANT_TAU, _VOWEL_TAU, _SILENCE_TAU = 0.045, 0.07, 0.06  # seconds

# viseme: ((targets per parameter), (dominance per parameter), tau); parameters in the order of
# MOUTH_PARAMETERS: jaw, spread, round, upper raise, lower tuck, teeth, tongue.
VISEMES: dict[str, tuple[tuple[float, ...], tuple[float, ...], float]] = {
    "sil": ((0.00, 0.00, 0.00, 0.00, 0.0, 0.00, 0.00), (_V, _V, _V, _V, _V, _V, _V), _SILENCE_TAU),
    "PP": ((0.00, 0.10, 0.00, 0.00, 0.0, 0.00, 0.00), (_H, _L, _F, _H, _H, _H, _H), _CONSONANT_TAU),
    "FF": ((0.10, 0.25, 0.00, 0.30, 1.0, 1.00, 0.00), (_H, _L, _F, _M, _H, _H, _M), _CONSONANT_TAU),
    "TH": ((0.22, 0.25, 0.00, 0.20, 0.0, 0.80, 1.00), (_L, _L, _F, _L, _M, _M, _H), _CONSONANT_TAU),
    "DD": ((0.18, 0.25, 0.00, 0.10, 0.0, 0.70, 0.30), (_L, _L, _F, _L, _M, _L, _L), _CONSONANT_TAU),
    "KK": ((0.28, 0.15, 0.00, 0.05, 0.0, 0.40, 0.10), (_L, _F, _F, _L, _M, _L, _L), _CONSONANT_TAU),
    "CH": ((0.16, 0.00, 0.75, 0.45, 0.0, 0.90, 0.00), (_M, _M, _V, _M, _M, _M, _L), _CONSONANT_TAU),
    "SS": ((0.10, 0.55, 0.00, 0.35, 0.0, 1.00, 0.00), (_M, _M, _L, _M, _M, _V, _L), _CONSONANT_TAU),
    "NN": ((0.20, 0.20, 0.00, 0.10, 0.0, 0.60, 0.60), (_L, _L, _F, _L, _M, _L, _M), _CONSONANT_TAU),
    "RR": ((0.20, 0.00, 0.50, 0.10, 0.0, 0.40, 0.10), (_L, _L, _M, _L, _M, _L, _L), _CONSONANT_TAU),
    "HH": ((0.30, 0.20, 0.00, 0.10, 0.0, 0.40, 0.10), (_F, _F, _F, _F, _F, _F, _F), _CONSONANT_TAU),
    "AA": ((0.90, 0.30, 0.00, 0.20, 0.0, 0.50, 0.25), (_V, _M, _M, _L, _M, _L, _L), _VOWEL_TAU),
    "EH": ((0.55, 0.45, 0.00, 0.15, 0.0, 0.50, 0.15), (_V, _M, _M, _L, _M, _L, _L), _VOWEL_TAU),
    "AX": ((0.35, 0.20, 0.00, 0.10, 0.0, 0.35, 0.10), (_M, _L, _L, _L, _M, _L, _L), _VOWEL_TAU),
    "IH": ((0.25, 0.90, 0.00, 0.25, 0.0, 0.80, 0.10), (_V, _V, _M, _L, _M, _L, _L), _VOWEL_TAU),
    "YY": ((0.22, 0.00, 0.90, 0.10, 0.0, 0.30, 0.00), (_V, _M, _V, _L, _M, _L, _L), _VOWEL_TAU),
    "OH": ((0.60, 0.00, 0.70, 0.05, 0.0, 0.20, 0.10), (_V, _M, _V, _L, _M, _L, _L), _VOWEL_TAU),
    "OU": ((0.20, 0.00, 1.00, 0.00, 0.0, 0.10, 0.00), (_V, _M, _V, _L, _M, _L, _L), _VOWEL_TAU),
}

# IPA symbol -> viseme. Two-letter affricates are matched before single letters; diacritics,
# stress and length marks are skipped.
IPA_VISEMES = {
    **dict.fromkeys("pbmɸβ", "PP"), **dict.fromkeys("fvʋɱ", "FF"), **dict.fromkeys("θð", "TH"),
    **dict.fromkeys("tdɾʈɖcɟɽ", "DD"), **dict.fromkeys("kgɡŋxɣχqɢʁʀ", "KK"),
    **dict.fromkeys(("tʃ", "dʒ", "tɕ", "dʑ", "ʃ", "ʒ", "ʂ", "ʐ", "ɕ", "ʑ"), "CH"),
    **dict.fromkeys(("ts", "dz", "s", "z", "ç", "ʝ"), "SS"), **dict.fromkeys("nlɫɬɮʎɲɳɭ", "NN"),
    **dict.fromkeys("rɹɻɚ", "RR"), **dict.fromkeys("hɦʔħʕ", "HH"),
    **dict.fromkeys("aɑɐæʌ", "AA"), **dict.fromkeys("eɛɜɤ", "EH"), **dict.fromkeys("əɘ", "AX"),
    **dict.fromkeys("iɪɨɯj", "IH"), **dict.fromkeys("yʏ", "YY"),
    **dict.fromkeys("oɔɒøœɶɵɞ", "OH"), **dict.fromkeys("uʊʉwʍɥ", "OU"),
}
_TWO_LETTER = sorted((s for s in IPA_VISEMES if len(s) == 2), key=len, reverse=True)


def phoneme_visemes(symbol: str) -> list[str]:
    """Visemes of one espeak-ng IPA phoneme: "p" -> ["PP"], "aɪ" -> ["AA", "IH"], "tʃ" -> ["CH"].

    :data:`SILENCE` is ["sil"]; a phoneme with no known letter is ["HH"] (it takes its shape from
    its neighbours).
    """
    if symbol == SILENCE:
        return ["sil"]
    visemes, i = [], 0
    while i < len(symbol):
        pair = next((p for p in _TWO_LETTER if symbol.startswith(p, i)), None)
        letter = pair or symbol[i]
        if letter in IPA_VISEMES and (not visemes or visemes[-1] != IPA_VISEMES[letter]):
            visemes.append(IPA_VISEMES[letter])
        i += len(letter)
    return visemes or ["HH"]


def mouth_parameters(phonemes: list[Phoneme], num_frames: int, fps: float,
                     articulation: float = 1.0) -> np.ndarray:
    """Mouth parameters at each video frame's mid-time: (N, len(MOUTH_PARAMETERS)) float32.

    ``articulation`` scales how far the jaw opens (a speaker's style; 1 = the table's targets).
    """
    starts, ends, targets, dominance, taus = [], [], [], [], []
    for phoneme in phonemes:
        visemes = phoneme_visemes(phoneme.symbol)
        step = (phoneme.end - phoneme.start) / len(visemes)
        for k, name in enumerate(visemes):
            target, strength, tau = VISEMES[name]
            starts.append(phoneme.start + k * step)
            ends.append(phoneme.start + (k + 1) * step)
            targets.append(target)
            dominance.append(strength)
            taus.append(tau)
    targets = np.array(targets)  # (K, P)
    targets[:, 0] *= articulation
    t = video_frame_times(num_frames, fps)[:, None]  # (N, 1)
    distance = np.maximum(np.maximum(np.array(starts)[None] - t, t - np.array(ends)[None]), 0.0)  # (N, K)
    # A hold (lip closure, lip-teeth contact) is absolute inside its segment and an ordinary
    # vowel-strength dominance outside it, so a short vowel between two holds still opens.
    inside = (distance == 0)[..., None]
    dominance = np.array(dominance)[None]  # (1, K, P)
    decay = np.exp(-distance[:, :, None] / np.array(taus)[None, :, None])
    weight = np.where(inside, dominance, np.minimum(dominance, _V) * decay)  # (N, K, P)
    mouth = (weight * targets[None]).sum(axis=1) / weight.sum(axis=1)
    return np.clip(mouth, 0.0, 1.0).astype(np.float32)
