"""Any photo a user has becomes an upright RGB array, or a message naming the file."""

import numpy as np
import pytest
from PIL import Image

from talking.errors import TalkingError
from talking.image import load_image


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((40, 60, 3), np.uint8)
    pixels[:20, :20] = 255  # white block top-left as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    Image.fromarray(pixels).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    image = load_image(tmp_path / "phone.jpg")
    assert image.shape == (60, 40, 3)
    assert image[:20, -20:].mean() > 240 and image[-20:, :20].mean() < 15


def test_transparency_is_composited_on_white(tmp_path):
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, 16:, 3] = 255  # right half opaque red, left half fully transparent
    Image.fromarray(rgba).save(tmp_path / "cut.png")
    image = load_image(tmp_path / "cut.png")
    assert image.dtype == np.uint8 and image.shape == (32, 32, 3)
    assert (image[:, :16] == 255).all()
    assert (image[:, 16:] == (200, 0, 0)).all()


def test_greyscale_becomes_three_equal_channels(tmp_path):
    Image.fromarray(np.full((8, 8), 77, np.uint8)).save(tmp_path / "grey.png")
    image = load_image(tmp_path / "grey.png")
    assert image.shape == (8, 8, 3) and (image == 77).all()


def test_sixteen_bit_greyscale_is_scaled_to_eight_bits(tmp_path):
    levels = np.arange(256).reshape(16, 16)
    Image.fromarray((levels * 257).astype(np.uint16)).save(tmp_path / "deep.png")
    image = load_image(tmp_path / "deep.png")
    assert image.dtype == np.uint8 and (image == levels[..., None]).all()


def test_palette_image_is_converted(tmp_path):
    rgb = Image.fromarray(np.full((8, 8, 3), (10, 200, 30), np.uint8))
    rgb.convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "p.gif")
    assert (load_image(tmp_path / "p.gif") == (10, 200, 30)).all()


def test_float_array_in_unit_range_is_accepted():
    assert (load_image(np.full((4, 4, 3), 0.5, np.float32)) == 128).all()


def test_max_side_downscales_keeping_aspect():
    assert load_image(np.zeros((4000, 6000, 3), np.uint8), max_side=900).shape == (600, 900, 3)


def test_non_image_file_is_a_talking_error_naming_it(tmp_path):
    (tmp_path / "notes.jpg").write_text("not a picture")
    with pytest.raises(TalkingError, match="notes.jpg"):
        load_image(tmp_path / "notes.jpg")


def test_missing_file_is_a_talking_error(tmp_path):
    with pytest.raises(TalkingError, match="not found"):
        load_image(tmp_path / "absent.png")


def test_oversized_image_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr("talking.image.MAX_PIXELS", 1000)
    Image.new("RGB", (50, 50)).save(tmp_path / "big.png")
    with pytest.raises(TalkingError, match="megapixels"):
        load_image(tmp_path / "big.png")


def test_decompression_bomb_guard_becomes_talking_error(tmp_path, monkeypatch):
    Image.new("RGB", (50, 50)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(TalkingError, match="bomb.png"):
        load_image(tmp_path / "bomb.png")
