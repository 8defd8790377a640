"""talking: audio-driven talking-face generation with Multimodal Adaptive Normalization (MAN).

Data flows top to bottom through the package:
``audio.py`` / ``face.py`` (features) -> ``models/`` (motion and frames) -> ``pipeline.py`` -> ``video.py``.
"""

__version__ = "0.1.0"
