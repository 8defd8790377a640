"""The synthetic audio-visual speech corpus: talking faces with exact ground truth.

Data flows down this list (see docs/corpus.md):

- ``text``: what is said (GRID-like commands, free sentences in 7 languages);
- ``speech``: espeak-ng audio with the start of every phoneme;
- ``visemes``: phonemes -> mouth parameters per video frame, with coarticulation;
- ``motion``: blinks, brow raises, gaze and head motion per video frame;
- ``appearance``: who the speaker looks like and how each clip is shot;
- ``shapes``, ``mouth``, ``geometry``: the parts to draw and the 68 landmarks, in the canonical
  aligned frame of :mod:`talking.config`;
- ``render``: pixels, with lighting and camera degradations;
- ``build``: the corpus plan, splits, parallel build, in the clip format of :mod:`talking.data`.
"""
