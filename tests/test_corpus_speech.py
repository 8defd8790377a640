"""espeak-ng speech with phoneme timing, and the phoneme -> mouth-parameter model."""

import numpy as np
import pytest

from talking.audio import video_frame_times
from talking.config import MOUTH_PARAMETERS, SAMPLE_RATE
from talking.corpus.visemes import mouth_parameters, phoneme_visemes
from talking.errors import TalkingError
from talking.speech import SILENCE, Phoneme, Voice, phoneme_segments, synthesize

JAW, ROUND, TUCK = (MOUTH_PARAMETERS.index(name) for name in ("jaw_open", "lip_round", "lower_lip_tuck"))


@pytest.mark.parametrize("text, voice", [
    ("place blue at F two now", Voice("en-us", "f3")),
    ("Guten Morgen, wie geht es dir?", Voice("de", "m2", rate=200)),
    ("Bonjour mes amis.", Voice("fr", "Alicia", pitch=70)),
])
def test_phoneme_timings_are_monotonic_contiguous_and_inside_the_audio(text, voice):
    speech = synthesize(text, voice)
    starts = np.array([p.start for p in speech.phonemes])
    ends = np.array([p.end for p in speech.phonemes])
    assert len(speech.audio) / SAMPLE_RATE == pytest.approx(speech.duration)
    assert starts[0] == 0 and ends[-1] == pytest.approx(speech.duration)
    assert np.all(ends > starts)
    np.testing.assert_array_equal(starts[1:], ends[:-1])  # no gaps, no overlaps
    spoken = [p for p in speech.phonemes if p.symbol != SILENCE]
    assert len(spoken) >= len(text.split())  # at least a phoneme per word


def test_speech_is_loud_where_phonemes_are_spoken_and_quiet_in_pauses():
    speech = synthesize("one. two.", Voice("en-us"))
    rms = {}
    for p in speech.phonemes:
        chunk = speech.audio[int(p.start * SAMPLE_RATE):int(p.end * SAMPLE_RATE)]
        rms.setdefault(p.symbol == SILENCE, []).append(np.sqrt(np.mean(chunk ** 2)))
    assert np.median(rms[False]) > 10 * np.median(rms[True])


def test_same_text_and_voice_give_identical_audio():
    voice = Voice("en-us", "m3", rate=160)
    first = synthesize("set green by seven please", voice)
    synthesize("something else entirely", Voice("de"))  # espeak-ng state would leak into the next
    second = synthesize("set green by seven please", voice)
    np.testing.assert_array_equal(first.audio, second.audio)
    assert first.phonemes == second.phonemes


def test_unknown_voice_is_a_clear_error():
    with pytest.raises(TalkingError, match="no voice 'xx-nowhere'"):
        synthesize("hello", Voice("xx-nowhere"))


@pytest.mark.parametrize("name", ["en-gb", "en-gb+f4", "sv", "gmw/en+m3"])
def test_voices_that_espeak_ng_accepts_by_language_or_file_speak(name):
    """The README's `--voice en-gb` and the app's hint `en-gb+f4` (espeak-ng -v accepts both)."""
    assert synthesize("Good morning.", Voice.parse(name)).duration > 0.5


def test_a_variant_changes_the_voice_of_a_language_named_by_its_code():
    plain = synthesize("Good morning.", Voice.parse("en-gb")).audio
    female = synthesize("Good morning.", Voice.parse("en-gb+f4")).audio
    assert len(plain) != len(female) or not np.array_equal(plain, female)


@pytest.mark.parametrize("name", ["en-us+nosuchvariant", "en-gb+F4"])
def test_an_unknown_variant_is_refused_not_replaced_by_the_default(name):
    with pytest.raises(TalkingError, match=f"no voice variant '{name.split('+')[1]}'"):
        synthesize("hello", Voice.parse(name))


@pytest.mark.parametrize("name", ["", "+f3", "en+f3+m1"])
def test_a_malformed_voice_name_is_refused(name):
    with pytest.raises(TalkingError, match="not an espeak-ng voice name"):
        Voice.parse(name)


@pytest.mark.parametrize("text", ["", "   ", "...!?", "– —"])
def test_text_without_words_is_refused_as_text_not_as_short_audio(text):
    with pytest.raises(TalkingError, match="has no words"):
        synthesize(text)


def test_pauses_become_silence_and_language_switch_markers_are_dropped():
    events = [(50, "h"), (90, "ə"), (140, ""), (150, ""), (300, "(en)"), (300, "l"), (380, "oʊ")]
    assert phoneme_segments(events, duration=0.5) == [
        Phoneme(SILENCE, 0.0, 0.05), Phoneme("h", 0.05, 0.09), Phoneme("ə", 0.09, 0.14),
        Phoneme(SILENCE, 0.14, 0.3), Phoneme("l", 0.3, 0.38), Phoneme("oʊ", 0.38, 0.5)]


def test_padding_shifts_the_phonemes_and_merges_the_silences():
    speech = synthesize("two", Voice("en-us"))
    padded = speech.padded(SAMPLE_RATE // 2, SAMPLE_RATE // 5)
    assert padded.duration == pytest.approx(speech.duration + 0.7)
    assert [p.symbol for p in padded.phonemes] == [p.symbol for p in speech.phonemes]
    for before, after in zip(speech.phonemes[1:], padded.phonemes[1:], strict=True):
        assert after.start == pytest.approx(before.start + 0.5)
    assert padded.phonemes[0] == Phoneme(SILENCE, 0.0, speech.phonemes[1].start + 0.5)
    assert padded.phonemes[-1].end == pytest.approx(padded.duration)


@pytest.mark.parametrize("symbol, visemes", [
    ("p", ["PP"]), ("m", ["PP"]), ("f", ["FF"]), ("tʃ", ["CH"]), ("uː", ["OU"]), ("aɪ", ["AA", "IH"]),
    ("ɔ̃", ["OH"]), ("ʔ", ["HH"]), ("ˌ", ["HH"]), (SILENCE, ["sil"]),
])
def test_ipa_phonemes_map_to_visemes(symbol, visemes):
    assert phoneme_visemes(symbol) == visemes


def spoken(*symbols, length=0.08):
    """Phonemes of ``length`` seconds each after 0.2 s of silence, then 0.3 s of silence."""
    phonemes = [Phoneme(SILENCE, 0.0, 0.2)]
    for symbol in symbols:
        start = phonemes[-1].end
        phonemes.append(Phoneme(symbol, start, start + length))
    return phonemes + [Phoneme(SILENCE, phonemes[-1].end, phonemes[-1].end + 0.3)]


def frames_inside(phonemes, symbol, fps=25):
    duration = phonemes[-1].end
    t = video_frame_times(int(np.ceil(duration * fps)), fps)
    inside = np.zeros(len(t), bool)
    for p in phonemes:
        if p.symbol == symbol:
            inside |= (t >= p.start) & (t < p.end)
    return inside


def test_bilabial_closes_the_lips_between_open_vowels():
    phonemes = spoken("a", "a", "m", "a", "a", "b", "a", "p", "a")
    mouth = mouth_parameters(phonemes, int(np.ceil(phonemes[-1].end * 25)), 25)
    for bilabial in ("m", "b", "p"):
        inside = frames_inside(phonemes, bilabial)
        assert inside.any()
        assert mouth[inside, JAW].max() < 0.03
    assert mouth[frames_inside(phonemes, "a"), JAW].max() > 0.6


def test_lower_lip_tucks_for_f_and_v():
    phonemes = spoken("a", "f", "a", "v", "a")
    mouth = mouth_parameters(phonemes, int(np.ceil(phonemes[-1].end * 25)), 25)
    assert mouth[frames_inside(phonemes, "f"), TUCK].min() > 0.9
    assert mouth[frames_inside(phonemes, "a"), TUCK].min() < 0.6


def test_rounding_spreads_from_a_rounded_vowel_to_the_consonant_before_it():
    rounded = spoken("s", "uː", length=0.1)
    spread = spoken("s", "iː", length=0.1)
    n = int(np.ceil(rounded[-1].end * 25))
    s_frames = frames_inside(rounded, "s")
    assert mouth_parameters(rounded, n, 25)[s_frames, ROUND].mean() > 0.3
    assert mouth_parameters(spread, n, 25)[s_frames, ROUND].mean() < 0.05


def test_silence_keeps_the_mouth_closed_and_still():
    phonemes = [Phoneme(SILENCE, 0.0, 0.6), Phoneme("a", 0.6, 0.7), Phoneme("m", 0.7, 0.76),
                Phoneme("a", 0.76, 0.86), Phoneme(SILENCE, 0.86, 2.5)]
    mouth = mouth_parameters(phonemes, int(2.5 * 25), 25)
    quiet = video_frame_times(len(mouth), 25) > 1.5
    assert mouth[quiet].max() < 0.02
    assert np.abs(np.diff(mouth[quiet], axis=0)).max() < 0.005
    # Lips part at most 0.25 s before the speech (0.05 = under half a pixel of lip gap at 128 px).
    before = video_frame_times(len(mouth), 25) < 0.6 - 0.25
    assert mouth[before].max() < 0.05
