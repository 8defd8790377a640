"""One source of truth for the signal-processing defaults shared by every stage.

Audio is mono float32 at 22050 Hz; the mel spectrogram uses 1024-sample frames and a hop of 256
(paper 4.3.3); video runs at 25 fps. Audio<->video frame arithmetic lives in ``talking.audio``.
"""

from __future__ import annotations

from dataclasses import dataclass

SAMPLE_RATE = 22050
FPS = 25
N_FFT = 1024
HOP_LENGTH = 256
N_MELS = 80
PITCH_BINS = 256
RESOLUTION = 128
# Generated videos are at most this many pixels on their long side: the face is made at
# RESOLUTION anyway, and encoding a phone photo's 12 megapixels 25 times a second is what is slow.
MAX_PHOTO_SIDE = 1024

# The canonical aligned face frame, in [0, 1] coordinates of the square crop (x right, y down):
# eye centres and mouth centre of a neutral frontal face. The synthetic renderer draws faces here
# and the photo aligner maps real faces here, so what the model learns transfers.
CANONICAL_LEFT_EYE = (0.36, 0.42)
CANONICAL_RIGHT_EYE = (0.64, 0.42)
CANONICAL_MOUTH = (0.50, 0.74)

# The mouth's articulation, each in [0, 1]: the synthetic corpus draws mouths from them
# (talking.corpus.visemes) and the motion predictor predicts them (talking.models.motion).
MOUTH_PARAMETERS = ("jaw_open", "lip_spread", "lip_round", "upper_lip_raise", "lower_lip_tuck",
                    "teeth", "tongue")
# How wide generated mouths open, relative to the corpus's articulation (the jaw opening scaled, at
# most fully open). The corpus's viseme table is timid: MediaPipe Face Mesh reads a lip-gap spread
# of 0.037 eye distances on its clips and 0.052-0.061 on real talking-head videos (issue 16's
# measurement, on videos outside this project's evaluation material): 1.4 is the low end of that
# ratio. The synthetic evaluation measures what users get (this scale) unless told the corpus's own (1).
ARTICULATION = 1.4
MAX_ARTICULATION = 3.0


@dataclass(frozen=True)
class AudioConfig:
    """How speech becomes per-video-frame features (paper 4.3.3-4.3.5)."""

    sample_rate: int = SAMPLE_RATE
    fps: int = FPS
    n_fft: int = N_FFT
    hop_length: int = HOP_LENGTH
    n_mels: int = N_MELS
    f_min: float = 0.0
    f_max: float = 8000.0
    # Pitch: PyWorld F0, log-quantised to `pitch_bins` bins; bin 0 means unvoiced.
    f0_method: str = "dio"  # "dio" (+ stonemask, fast) or "harvest" (slower, more robust)
    dio_speed: int = 2  # dio's internal downsampling (1..12); stonemask refines the F0 afterwards
    f0_min: float = 50.0
    f0_max: float = 800.0
    pitch_bins: int = PITCH_BINS
    # Mel frames in the window centred on each video frame (16 hops = 186 ms at 22050 Hz).
    window: int = 16
    min_seconds: float = 0.2
    max_seconds: float = 300.0

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"window must be at least 1 mel frame, got {self.window}")
        if not 0 < self.f0_min < self.f0_max:
            raise ValueError(f"need 0 < f0_min < f0_max, got {self.f0_min}, {self.f0_max}")
        if self.f0_method not in ("dio", "harvest"):
            raise ValueError(f"f0_method must be 'dio' or 'harvest', got {self.f0_method!r}")
