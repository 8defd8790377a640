"""/p b m/ closed by the motion predictor alone, from the speech it hears, and given the words.

    python benchmarks/word_closures.py [--natural data/natural] [--checkpoint checkpoints/man-optical]

On the held-out natural voices of a natural-speech set (``python -m talking natural-speech``; every
tenth utterance, never trained on), as recorded, with one augmented copy each (room, channel,
noise, music or another voice: the training's ``val_natural_augmented`` draw, by
:func:`~talking.training.motion.augmented_copies`), with procedural music 10 dB below the voice
and 25 dB quieter. For each, the mouth predicted from the audio as it is ("predicted"), from what
the pipeline hears by default ("lifted": :func:`talking.clean_speech.lift_quiet`, a quiet
recording brought to the training level) and with ``--clean-speech`` ("heard":
:func:`talking.clean_speech.heard_speech`, levelled and the voice alone), and the predicted mouth
with its lips shut on the /p b m/ that
pocketsphinx's forced alignment of the utterance's text finds (as
``TalkingFacePipeline(..., transcript=...)`` does);
both are judged against the synthesiser's own phoneme timings, which the aligner never sees, as
training's validation judges them (the lips' gap read off the predicted landmarks). Prints the
share of /p b m/ closed and of open vowels opened, the parameters' L1, utterances the aligner
could not fit, and the aligner's and the voice separation's time per second of audio.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from talking.audio import extract_features
from talking.clean_speech import heard_speech, lift_quiet
from talking.config import FPS, SAMPLE_RATE
from talking.errors import TalkingError
from talking.lip_closures import close_lips, closure_weights, closures_from_phones
from talking.models.motion import MotionPredictor
from talking.phonemes import align_phones
from talking.real_metrics import CLOSE_MARGIN, OPEN_MARGIN
from talking.training.motion import (
    NATURAL_VAL_EVERY,
    Sequence,
    augmented_copies,
    lip_gap,
    natural_speech,
    stretch,
)
from talking.training.speech_augment import background_music, unit_rms

AUGMENT_SEED = 1  # the training's val_natural_augmented draw (seed 0 + 1)
MUSIC_SEED = 7
MUSIC_DB = -10.0  # the score's level under the voice (RMS)
QUIET_DB = -25.0  # how much quieter the quiet copy is
KINDS = ("as recorded", "augmented", "music 10 dB", "25 dB quieter")
WAYS = ("predicted", "lifted", "heard", "words")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--natural", default="data/natural")
    parser.add_argument("--checkpoint", default="checkpoints/man-optical")
    args = parser.parse_args()
    model = MotionPredictor.from_pretrained(Path(args.checkpoint) / "motion_predictor").eval()
    index = json.loads((Path(args.natural) / "natural.json").read_text())["utterances"]
    texts = [json.loads((Path(args.natural) / name / "phonemes.json").read_text())["text"]
             for i, name in enumerate(index) if i % NATURAL_VAL_EVERY == 0]
    _, held_out = natural_speech(args.natural)
    results = {(kind, way): [] for kind in KINDS for way in WAYS}
    failures, align_seconds, heard_seconds, audio_seconds = 0, 0.0, 0.0, 0.0
    for i, (item, text) in enumerate(zip(held_out, texts, strict=True)):
        altered, retimed = next(augmented_copies(held_out, i, 1, AUGMENT_SEED))
        music = unit_rms(background_music(len(item.audio), np.random.default_rng([MUSIC_SEED, i])))
        scored = item.audio + music * np.sqrt(np.mean(item.audio**2)) * 10 ** (MUSIC_DB / 20)
        quiet = item.audio * np.float32(10 ** (QUIET_DB / 20))
        for kind, audio, phonemes in zip(KINDS, (item.audio, altered, scored.astype(np.float32), quiet),
                                         (item.phonemes, retimed, item.phonemes, item.phonemes), strict=True):
            started = time.perf_counter()
            heard = heard_speech(audio, SAMPLE_RATE)
            heard_seconds += time.perf_counter() - started
            predictions = {}
            for way, speech in (("predicted", audio), ("lifted", lift_quiet(audio, SAMPLE_RATE)),
                                ("heard", heard)):
                if speech is audio and way != "predicted":  # nothing lifted: the same prediction
                    predictions[way] = predictions["predicted"]
                    continue
                features = extract_features(speech)
                sequence = Sequence.from_features(features, stretch(item.targets, features.num_video_frames),
                                                  phonemes)
                with torch.no_grad():
                    predictions[way] = model(*(torch.from_numpy(getattr(sequence, name))[None]
                                               for name in ("mel", "pitch", "energy"))).parameters[0]
            predicted = predictions["predicted"]
            started = time.perf_counter()
            try:
                closures = closures_from_phones(align_phones(audio, SAMPLE_RATE, text))
            except TalkingError:
                failures, closures = failures + 1, []
            align_seconds += time.perf_counter() - started
            audio_seconds += len(audio) / SAMPLE_RATE
            predictions["words"] = close_lips(predicted, closure_weights(closures, len(predicted), FPS))
            for way, parameters in predictions.items():
                gap = lip_gap(parameters, model.basis).numpy()
                results[kind, way].append((
                    [gap[frames].min() <= CLOSE_MARGIN for frames in sequence.bilabials],
                    [gap[frames].max() >= OPEN_MARGIN for frames in sequence.vowels],
                    float(np.abs(parameters.numpy() - sequence.targets).mean())))
    print(f"{len(held_out)} held-out utterances of {args.natural}, {args.checkpoint}")
    for (kind, way), rows in results.items():
        closed = np.concatenate([r[0] for r in rows])
        opened = np.concatenate([r[1] for r in rows])
        print(f"{kind:12s} {way:10s} /p b m/ closed {closed.mean():.2f} of {len(closed)}, open vowels "
              f"open {opened.mean():.2f} of {len(opened)}, L1 {np.mean([r[2] for r in rows]):.4f}")
    print(f"aligner: {failures} of {len(KINDS) * len(held_out)} not fitted (left as predicted); "
          f"{align_seconds / audio_seconds:.3f} s per second of audio; voice separation "
          f"{heard_seconds / audio_seconds:.3f} s per second of audio")


if __name__ == "__main__":
    main()
