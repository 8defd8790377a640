"""Photos in: any image file, array or PIL image -> (H, W, 3) uint8 RGB, upright.

EXIF orientation is applied (phone photos are stored sideways); transparency is composited on
white; greyscale, palette, CMYK and 16-bit images are converted. Photos above ``MAX_PIXELS`` are
refused, and PIL's decompression-bomb guard becomes a :class:`TalkingError`, as does any file
that is missing or not an image, with the file's name in the message.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from talking.errors import TalkingError

MAX_PIXELS = 64_000_000  # 8000 x 8000; larger photos are refused rather than exhaust memory
_REDUCE_AS = {"1": "L", "I;16": "I", "I;16B": "I", "I;16L": "I"}  # modes Image.reduce lacks


def load_image(source: str | os.PathLike | np.ndarray | Image.Image,
               max_side: int | None = None) -> np.ndarray:
    """Any photo -> (H, W, 3) uint8 RGB, upright, at most ``max_side`` pixels on its long side.

    EXIF orientation is applied; transparency is composited on white; greyscale, palette, CMYK
    and 16-bit images are converted. An array is read as RGB(A) or greyscale, uint8, uint16 or
    float in [0, 1]. Raises :class:`TalkingError` for a missing, unreadable or oversized image.
    """
    if isinstance(source, np.ndarray):
        image = _to_rgb8(source, "the image array")
    elif isinstance(source, Image.Image):
        image = _from_pil(source, "the image", max_side)
    else:
        path = Path(source)
        image = _from_pil(_open(path), path.name, max_side)
    if max_side is not None and max(image.shape[:2]) > max_side:
        scale = max_side / max(image.shape[:2])
        # At least one pixel across: a 1 x 2000 strip stays a strip.
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image


def _open(path: Path) -> Image.Image:
    if not path.is_file():
        raise TalkingError(f"Image file not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
            _check_size(image.width, image.height, path.name)
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise TalkingError(f"{path.name}: the image is too large to open safely ({error}).") from error
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise TalkingError(
            f"{path.name}: cannot read this file as an image (use a JPEG, PNG or WebP photo)."
        ) from error
    return image


def _check_size(width: int, height: int, name: str) -> None:
    if width * height > MAX_PIXELS:
        raise TalkingError(
            f"{name}: the image is {width}x{height} pixels; the limit is "
            f"{MAX_PIXELS // 1_000_000} megapixels. Downscale it and try again."
        )
    if width == 0 or height == 0:
        raise TalkingError(f"{name}: the image is empty.")


def _from_pil(image: Image.Image, name: str, max_side: int | None) -> np.ndarray:
    image = ImageOps.exif_transpose(image)
    if image.mode in ("P", "PA", "La", "RGBa"):
        image = image.convert("RGBA")
    elif image.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        image = image.convert("RGB")
    factor = 0 if max_side is None else max(image.size) // max_side
    if factor >= 2:
        # Shrink by a whole factor (a box filter, alpha-weighted) while the pixels are PIL's
        # bytes: as the floats of _to_rgb8, a 64-megapixel RGBA photo would take 3.6 GB.
        if image.mode in _REDUCE_AS:
            image = image.convert(_REDUCE_AS[image.mode])
        image = image.reduce(factor)
    return _to_rgb8(np.asarray(image), name)


def _to_rgb8(array: np.ndarray, name: str) -> np.ndarray:
    """(H, W), (H, W, 1|2|3|4) of bool, unsigned int or float in [0, 1] -> (H, W, 3) uint8."""
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise TalkingError(f"{name}: expected an image (H, W), (H, W, 3) or (H, W, 4), "
                           f"got shape {array.shape}.")
    _check_size(array.shape[1], array.shape[0], name)
    channels = array.shape[2]
    if array.dtype == np.uint8 and channels in (1, 3):
        return np.ascontiguousarray(np.repeat(array, 3, axis=2) if channels == 1 else array)
    unit = _to_unit(array, name)
    if channels in (2, 4):
        alpha = unit[..., -1:]
        unit = unit[..., :-1] * alpha + (1.0 - alpha)
    if unit.shape[2] == 1:
        unit = np.repeat(unit, 3, axis=2)
    return (unit * 255.0 + 0.5).astype(np.uint8)


def _to_unit(array: np.ndarray, name: str) -> np.ndarray:
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.floating):
        return np.clip(np.nan_to_num(array), 0.0, 1.0).astype(np.float32)
    if np.issubdtype(array.dtype, np.integer):
        # PIL reads 16-bit greyscale as uint16 ("I;16") or int32 ("I") holding 0..65535.
        peak = 255.0 if array.dtype == np.uint8 or array.max() <= 255 else 65535.0
        return np.clip(array.astype(np.float32) / peak, 0.0, 1.0)
    raise TalkingError(f"{name}: unsupported pixel type {array.dtype}.")
