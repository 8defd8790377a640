"""Speech with exact phoneme timing, from the espeak-ng C library (through ctypes).

espeak-ng is initialised with ``espeakINITIALIZE_PHONEME_EVENTS | espeakINITIALIZE_PHONEME_IPA``:
while it synthesises it reports every phoneme it speaks, as an IPA name with its position in the
audio (ms), so every synthetic clip knows which phoneme sounds when. espeak-ng synthesises at
22050 Hz, the project's rate. A phoneme lasts until the next one starts; the last one ends with
the audio. espeak-ng's pauses (empty names) become :data:`SILENCE`.

espeak-ng keeps synthesis state between utterances that its API cannot reset, so every utterance
is spoken by a fresh process: the same text and voice always give the same samples.

Voices are named as ``espeak-ng -v`` names them: a language (``en-gb``, ``sv``) or a voice file
(``gmw/en``), optionally with a variant from ``espeak-ng-data/voices/!v`` (``en-gb+f4``). Unlike
``espeak-ng -v``, an unknown variant is refused rather than silently replaced by the default.

Inference speaks ``--text`` through this module and the synthetic corpus (:mod:`talking.corpus`)
builds its clips with it; it depends on nothing else in the project.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from talking.config import SAMPLE_RATE
from talking.errors import TalkingError

SILENCE = "_"

# speak_lib.h (API revision 12)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_PHONEME_EVENTS, _PHONEME_IPA = 0x0001, 0x0002
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EVENT_LIST_TERMINATED, _EVENT_PHONEME = 0, 7
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4
_EXAMPLE_VARIANTS = "f1-f5, m1-m8, Alicia, klatt"
# Below espeak-ng's default of 100, so that loud variants do not clip before we set the level.
_VOLUME_PERCENT = 60


@dataclass(frozen=True)
class Voice:
    """An espeak-ng voice: language, variant (a file in espeak-ng-data/voices/!v) and prosody."""

    language: str = "en-us"
    variant: str = ""  # e.g. "f3", "m2", "Alicia"; "" is the language's default voice
    rate: int = 175  # words per minute, 80-450
    pitch: int = 50  # base pitch, 0-100
    pitch_range: int = 50  # intonation range, 0 (monotone) - 100

    @property
    def name(self) -> str:
        """espeak-ng's name for it, e.g. "en-us+f3"."""
        return f"{self.language}+{self.variant}" if self.variant else self.language

    @classmethod
    def parse(cls, name: str) -> Voice:
        """The voice ``espeak-ng -v NAME`` speaks with: "en-gb", "en-gb+f4", "gmw/en+m3"."""
        language, _, variant = name.strip().partition("+")
        if not language or "+" in variant:
            raise TalkingError(f"{name!r} is not an espeak-ng voice name: use LANGUAGE or "
                               "LANGUAGE+VARIANT, e.g. en-gb or en-gb+f4 (espeak-ng --voices).")
        return cls(language=language, variant=variant)


@dataclass(frozen=True)
class Phoneme:
    """One spoken phoneme: IPA ``symbol`` (or :data:`SILENCE`) over ``[start, end)`` seconds."""

    symbol: str
    start: float
    end: float


@dataclass
class Utterance:
    """Synthesised speech: ``audio`` (S,) float32 at 22050 Hz and its phonemes, in time order,
    covering ``[0, S / 22050)`` without gaps."""

    text: str
    voice: Voice
    audio: np.ndarray
    phonemes: list[Phoneme]

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE

    def padded(self, lead: int, trail: int) -> Utterance:
        """This utterance with ``lead`` and ``trail`` samples of silence around it."""
        shift = lead / SAMPLE_RATE
        audio = np.pad(self.audio, (lead, trail))
        events = [(p.start + shift, p.symbol) for p in self.phonemes]
        return dataclasses.replace(self, audio=audio, phonemes=_segments(events, len(audio) / SAMPLE_RATE))


class _Event(ctypes.Structure):
    class _Id(ctypes.Union):
        _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms from the start of the output
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _Id),
    ]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))


def synthesize(text: str, voice: Voice = Voice()) -> Utterance:
    """Speak ``text`` with ``voice``: audio at 22050 Hz and the timing of every phoneme.

    Deterministic: the same text and voice give the same samples. espeak-ng carries synthesis
    state (wave phase, sample counters) from one utterance into the next and cannot be reset
    through its API, so each utterance is spoken by a fresh process (about 0.1 s of overhead).

    Raises :class:`TalkingError` when espeak-ng is missing, the voice or its variant does not
    exist, or the text has nothing to say.
    """
    if not any(character.isalnum() for character in text):
        raise TalkingError(f"The text to speak {text.strip()!r} has no words: give words for "
                           "espeak-ng to say.")
    request = json.dumps({"text": text, "voice": dataclasses.asdict(voice)}).encode()
    package_root = str(Path(__file__).resolve().parents[1])  # importable from any working dir
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-m", "talking.speech"], input=request,
                            capture_output=True, timeout=120, check=False, env=env)
    if result.returncode != 0:
        lines = result.stderr.decode(errors="replace").strip().splitlines()
        raise TalkingError(lines[-1].removeprefix("talking.errors.TalkingError: ") if lines
                           else f"espeak-ng failed on {text!r} with voice {voice.name!r}.")
    header, _, pcm = result.stdout.partition(b"\n")
    events = [(int(ms), str(name)) for ms, name in json.loads(header)]
    audio = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
    if len(audio) == 0 or not events:
        raise TalkingError(f"espeak-ng produced no speech for {text!r} with voice {voice.name!r}.")
    return Utterance(text=text, voice=voice, audio=audio,
                     phonemes=phoneme_segments(events, len(audio) / SAMPLE_RATE))


def _speak(text: str, voice: Voice) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """int16 samples (S,) and (ms, IPA name) phoneme events, from espeak-ng in this process."""
    path = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
    try:
        lib = ctypes.CDLL(path)
    except OSError as error:
        raise TalkingError(
            "espeak-ng is not installed; install it (Debian/Ubuntu: apt-get install espeak-ng)."
        ) from error
    chunks: list[np.ndarray] = []
    events: list[tuple[int, str]] = []

    def receive(wav, num_samples, event_list) -> int:
        if wav and num_samples > 0:
            chunks.append(np.ctypeslib.as_array(wav, (num_samples,)).copy())
        i = 0
        while event_list[i].type != _EVENT_LIST_TERMINATED:
            if event_list[i].type == _EVENT_PHONEME:
                name = event_list[i].id.string.decode("utf-8", errors="replace")
                events.append((event_list[i].audio_position, name))
            i += 1
        return 0

    rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, _PHONEME_EVENTS | _PHONEME_IPA)
    if rate != SAMPLE_RATE:
        raise TalkingError(f"espeak-ng failed to start (it reported sample rate {rate}); "
                           "reinstall espeak-ng and its data (espeak-ng-data).")
    callback = _Callback(receive)
    lib.espeak_SetSynthCallback(callback)
    _select_voice(lib, voice)
    for parameter, value in ((_RATE, voice.rate), (_PITCH, voice.pitch), (_RANGE, voice.pitch_range),
                             (_VOLUME, _VOLUME_PERCENT)):
        lib.espeak_SetParameter(parameter, int(value), 0)
    data = text.encode("utf-8")
    lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                 ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    if lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None) != 0:
        raise TalkingError(f"espeak-ng could not synthesise {text!r}.")
    lib.espeak_Synchronize()
    return (np.concatenate(chunks) if chunks else np.zeros(0, np.int16)), events


class _VoiceProperties(ctypes.Structure):
    """speak_lib.h's espeak_VOICE."""

    _fields_ = [("name", ctypes.c_char_p), ("languages", ctypes.c_char_p),
                ("identifier", ctypes.c_char_p), ("gender", ctypes.c_ubyte), ("age", ctypes.c_ubyte),
                ("variant", ctypes.c_ubyte), ("xx1", ctypes.c_ubyte), ("score", ctypes.c_int),
                ("spare", ctypes.c_void_p)]


def _select_voice(lib: ctypes.CDLL, voice: Voice) -> None:
    """Make ``voice`` espeak-ng's current voice, as ``espeak-ng -v`` chooses it: by voice name or
    file, else by language; then its variant, which must exist."""
    lib.espeak_Info.restype = ctypes.c_char_p
    lib.espeak_GetCurrentVoice.restype = ctypes.POINTER(_VoiceProperties)
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    data = ctypes.c_char_p()
    lib.espeak_Info(ctypes.byref(data))
    variants = Path(os.fsdecode(data.value or b"")) / "voices" / "!v"
    if voice.variant and not (variants / voice.variant).is_file():
        raise TalkingError(f"espeak-ng has no voice variant {voice.variant!r} (in {voice.name!r}); "
                           f"use one of {_EXAMPLE_VARIANTS}, ... (the files in {variants}).")
    if lib.espeak_SetVoiceByName(voice.language.encode()) != 0:
        properties = _VoiceProperties(languages=voice.language.encode())
        if lib.espeak_SetVoiceByProperties(ctypes.byref(properties)) != 0:
            raise TalkingError(f"espeak-ng has no voice {voice.name!r}; see `espeak-ng --voices`.")
    if voice.variant:
        identifier = lib.espeak_GetCurrentVoice().contents.identifier.split(b"+")[0]
        if lib.espeak_SetVoiceByName(identifier + b"+" + voice.variant.encode()) != 0:
            raise TalkingError(f"espeak-ng could not load the voice {voice.name!r}.")


def phoneme_segments(events: list[tuple[int, str]], duration: float) -> list[Phoneme]:
    """espeak-ng's (ms, IPA name) phoneme events -> contiguous :class:`Phoneme` s over
    ``[0, duration)``: time before the first event and pauses are :data:`SILENCE`; language
    switch markers such as "(en)" are dropped; a phoneme ends where the next one starts."""
    return _segments([(ms / 1000.0, name or SILENCE) for ms, name in events if not name.startswith("(")],
                     duration)


def _segments(events: list[tuple[float, str]], duration: float) -> list[Phoneme]:
    """(start seconds, symbol) events -> contiguous phonemes over ``[0, duration)``, silence
    before the first event, consecutive silences merged."""
    starts: list[tuple[float, str]] = [(0.0, SILENCE)]
    for time, symbol in events:
        start = min(max(time, starts[-1][0]), duration)
        if start == starts[-1][0]:
            starts[-1] = (start, symbol)  # a zero-length phoneme: the later one wins
        elif symbol != SILENCE or starts[-1][1] != SILENCE:
            starts.append((start, symbol))
    ends = [start for start, _ in starts[1:]] + [duration]
    return [Phoneme(symbol, start, end) for (start, symbol), end in zip(starts, ends, strict=True)
            if end > start]


if __name__ == "__main__":
    # The fresh process of :func:`synthesize`: JSON request on stdin; JSON events line, then
    # int16 samples, on stdout.
    request = json.loads(sys.stdin.buffer.read())
    samples, events = _speak(request["text"], Voice(**request["voice"]))
    sys.stdout.buffer.write(json.dumps(events).encode() + b"\n" + samples.astype("<i2").tobytes())
