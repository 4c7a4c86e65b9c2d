"""Reading and writing still images as uint8 (H, W, 3) RGB arrays (Pillow).

Reading checks the header's size before decoding anything (decompression bombs), applies the EXIF
orientation, flattens transparency onto white (a face photo's cut-out background is usually white),
and scales 16-bit images down to 8 bits.
"""
from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..errors import InputError
from ..fileio import atomic_path
from .inputs import check_input_file
from .limits import MAX_IMAGE_PIXELS, MAX_SIDE, MIN_SIDE
from .outputs import IMAGE_WRITE_FORMATS, rgb_array_problem

# Pillow format names accepted (MPO is what many cameras' JPEGs open as).
IMAGE_FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "MPO": "JPEG", "WEBP": "WebP", "BMP": "BMP"}
BACKGROUND = 255  # grey level that transparent pixels are composited onto


def read_image(path: str | os.PathLike, *, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode a PNG, JPEG, WebP or BMP file into an upright uint8 (H, W, 3) RGB array.

    Raises InputError for a missing, empty, corrupt, truncated or unsupported file, and for an image
    larger than `max_pixels` or smaller than MIN_SIDE pixels a side (checked from the header)."""
    path = check_input_file(path)
    rgb = to_rgb_array(_exif_upright(_decode(path, max_pixels)))
    _check_size(path, rgb.shape[1], rgb.shape[0], max_pixels)
    return rgb


def _decode(path: Path, max_pixels: int) -> Image.Image:
    """The decoded image, its size checked from the header first; any parsing failure -> InputError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit applies
            with Image.open(path) as image:
                _check_header(path, image, max_pixels)
                image.load()
                return image
    except InputError:
        raise
    except Image.DecompressionBombError as error:
        declared = re.search(r"\((\d+) pixels\)", str(error))
        size = f"of {int(declared.group(1)):,} pixels " if declared else ""
        raise InputError(path, f"image {size}is too large (limit {max_pixels:,} pixels)") from error
    except Image.UnidentifiedImageError as error:
        raise InputError(path, "not a readable image (unknown format or damaged header)") from error
    except MemoryError:
        raise
    except Exception as error:  # anything else Pillow raises while parsing a file means a bad file
        raise InputError(path, f"not a readable image ({_describe(error)})") from error


def _exif_upright(image: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation tag says; a damaged EXIF block is ignored, as
    image viewers do."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - Pillow's EXIF parser raises many types on bad data
        return image


def _describe(error: Exception) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _check_header(path: Path, image: Image.Image, max_pixels: int) -> None:
    if image.format not in IMAGE_FORMATS:
        raise InputError(path, f"unsupported image format {image.format} "
                               f"(supported: {', '.join(sorted(set(IMAGE_FORMATS.values())))})")
    _check_size(path, *image.size, max_pixels)


def _check_size(path: Path, width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels or max(width, height) > MAX_SIDE:
        raise InputError(path, f"image of {width}x{height} is too large "
                               f"(limit {max_pixels:,} pixels and {MAX_SIDE} px a side)")
    if min(width, height) < MIN_SIDE:
        raise InputError(path, f"image of {width}x{height} is too small (need {MIN_SIDE} px a side)")


def to_rgb_array(image: Image.Image) -> np.ndarray:
    """Any Pillow image as uint8 (H, W, 3) RGB: 16-bit scaled to 8, transparency onto white."""
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":  # 16-bit grey (mode I holds it widened to 32 bits)
        grey = np.asarray(image).astype(np.float64)
        grey8 = np.clip(np.round(grey / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(grey8[:, :, None], 3, axis=2)
    if (mode == "P" and "transparency" in image.info) or mode in ("PA", "LA", "La", "RGBa", "RGBA"):
        return _flatten_alpha(np.asarray(image.convert("RGBA")))
    if mode != "RGB":
        image = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


def _flatten_alpha(rgba: np.ndarray) -> np.ndarray:
    alpha = rgba[:, :, 3:].astype(np.float32) / 255.0
    blended = rgba[:, :, :3].astype(np.float32) * alpha + BACKGROUND * (1.0 - alpha)
    return np.round(blended).astype(np.uint8)


def write_image(path: str | os.PathLike, image: np.ndarray, *, quality: int = 95) -> Path:
    """Write a uint8 (H, W, 3) RGB array as PNG, JPEG, WebP or BMP (chosen by the suffix), atomically."""
    path = Path(path)
    image_format = IMAGE_WRITE_FORMATS.get(path.suffix.lower())
    if image_format is None:
        raise ValueError(f"{path}: the image file name must end in one of {', '.join(IMAGE_WRITE_FORMATS)}")
    problem = rgb_array_problem(image)
    if problem:
        raise ValueError(f"write_image: {problem}")
    options = {"quality": quality} if image_format == "JPEG" else {}
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(image)).save(tmp, format=image_format, **options)
    return path


def resize_square(image: np.ndarray, size: int | None) -> np.ndarray:
    """`image` resized to size x size: area filter when shrinking, bicubic when enlarging; the image
    itself when it has that size already or `size` is None."""
    if size is None or image.shape[:2] == (size, size):
        return image
    import cv2

    shrinking = min(image.shape[:2]) > size
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
