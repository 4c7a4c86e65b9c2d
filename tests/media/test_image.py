"""read_image / write_image on every pixel layout the formats allow, EXIF orientation and limits."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from faceanim.errors import InputError
from faceanim.media import read_image
from faceanim.media.image import write_image

from .synthetic import pattern_frame, png_bytes, psnr


def test_rgb_png_is_exact(tmp_path, astronaut):
    Image.fromarray(astronaut).save(tmp_path / "a.png")
    image = read_image(tmp_path / "a.png")
    assert image.dtype == np.uint8 and image.shape == (512, 512, 3)
    np.testing.assert_array_equal(image, astronaut)


def test_rgba_is_flattened_onto_white(tmp_path):
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., :3] = (200, 40, 10)
    rgba[:, :4, 3] = 255  # opaque
    rgba[:, 4:8, 3] = 0  # fully transparent
    rgba[:, 8:, 3] = 128  # half
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    image = read_image(tmp_path / "a.png")
    assert image.shape == (16, 16, 3)
    assert (image[:, :4] == (200, 40, 10)).all()
    assert (image[:, 4:8] == 255).all()
    np.testing.assert_allclose(image[0, 8], [228, 147, 132], atol=1)  # 0.5 * colour + 0.5 * white


def test_grayscale_becomes_three_equal_channels(tmp_path):
    grey = np.tile(np.arange(0, 256, 8, dtype=np.uint8), (10, 1))
    Image.fromarray(grey, "L").save(tmp_path / "g.png")
    image = read_image(tmp_path / "g.png")
    assert image.shape == (10, 32, 3)
    for channel in range(3):
        np.testing.assert_array_equal(image[..., channel], grey)


def test_16bit_grey_is_scaled_not_clipped(tmp_path):
    grey16 = np.tile(np.array([0, 257, 32896, 65535] * 4, dtype=np.uint16), (12, 1))
    (tmp_path / "g16.png").write_bytes(png_bytes(grey16, bit_depth=16, color_type=0))
    image = read_image(tmp_path / "g16.png")
    assert image.shape == (12, 16, 3)
    np.testing.assert_array_equal(image[0, :4, 0], [0, 1, 128, 255])


def test_48bit_rgb_is_scaled(tmp_path):
    rgb16 = np.zeros((10, 10, 3), np.uint16)
    rgb16[..., 0], rgb16[..., 1], rgb16[..., 2] = 65535, 32896, 2000
    (tmp_path / "c48.png").write_bytes(png_bytes(rgb16, bit_depth=16, color_type=2))
    image = read_image(tmp_path / "c48.png")
    np.testing.assert_allclose(image[0, 0], [255, 128, 8], atol=1)


def test_palette_with_and_without_transparency(tmp_path):
    source = Image.fromarray(pattern_frame(24, 24, 0)).quantize(colors=16)
    source.save(tmp_path / "p.png")
    with Image.open(tmp_path / "p.png") as stored:
        assert stored.mode == "P"
    np.testing.assert_array_equal(read_image(tmp_path / "p.png"), np.asarray(source.convert("RGB")))
    source.info["transparency"] = 0  # palette entry 0 becomes see-through
    source.save(tmp_path / "pt.png", transparency=0)
    image = read_image(tmp_path / "pt.png")
    clear = np.asarray(source) == 0
    assert clear.any() and (image[clear] == 255).all()


def test_exif_orientation_6_is_turned_upright(tmp_path):
    stored = pattern_frame(80, 40, 0)  # wide as stored
    stored[:10, :10] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    Image.fromarray(stored).save(tmp_path / "phone.jpg", quality=95, exif=exif)
    image = read_image(tmp_path / "phone.jpg")
    assert image.shape == (80, 40, 3)  # tall as displayed
    assert psnr(image, np.rot90(stored, -1)) > 30
    assert image[:10, -10:, 0].mean() > 200 and image[:10, -10:, 1].mean() < 60  # red now top-right


@pytest.mark.parametrize("suffix, options, exact", [(".webp", {"lossless": True}, True), (".bmp", {}, True),
                                                    (".jpg", {"quality": 95}, False)])
def test_other_formats(tmp_path, astronaut, suffix, options, exact):
    Image.fromarray(astronaut).save(tmp_path / f"a{suffix}", **options)
    image = read_image(tmp_path / f"a{suffix}")
    assert image.shape == astronaut.shape
    if exact:
        np.testing.assert_array_equal(image, astronaut)
    else:
        assert psnr(image, astronaut) > 30


def test_size_limits_are_checked_from_the_header(tmp_path):
    # a header claiming 9000 x 9000 with no pixel data: decoding would fail differently
    (tmp_path / "big.png").write_bytes(png_bytes(None, width=9000, height=9000))
    with pytest.raises(InputError, match=r"big\.png: image of 9000x9000 is too large"):
        read_image(tmp_path / "big.png", max_pixels=50_000_000)
    Image.fromarray(pattern_frame(100, 50, 0)).save(tmp_path / "small.png")
    with pytest.raises(InputError, match="too large"):
        read_image(tmp_path / "small.png", max_pixels=4999)
    assert read_image(tmp_path / "small.png", max_pixels=5000).shape == (50, 100, 3)
    Image.fromarray(pattern_frame(7, 30, 0)).save(tmp_path / "thin.png")
    with pytest.raises(InputError, match=r"7x30 is too small"):
        read_image(tmp_path / "thin.png")


def test_write_image_round_trip(tmp_path, astronaut):
    write_image(tmp_path / "out.png", astronaut)
    np.testing.assert_array_equal(read_image(tmp_path / "out.png"), astronaut)
    write_image(tmp_path / "out.jpeg", astronaut)
    assert psnr(read_image(tmp_path / "out.jpeg"), astronaut) > 30
    with pytest.raises(ValueError):
        write_image(tmp_path / "out.tiff", astronaut)
    with pytest.raises(ValueError):
        write_image(tmp_path / "out.png", astronaut.astype(np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jpeg", "out.png"]
