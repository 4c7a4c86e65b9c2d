"""What the writers accept, checked once for everyone: RGB frame arrays and output file suffixes.

Tasks call `check_output_path` before any work starts, so a wrong output name fails in one line
(exit 2) instead of after minutes of computing.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InputError

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv")
IMAGE_WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP"}


def rgb_array_problem(image: object) -> str | None:
    """Why `image` is not a non-empty uint8 (H, W, 3) RGB array, or None if it is one."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        return f"expected a uint8 RGB array (H, W, 3), got {got}"
    if min(image.shape[:2]) < 1:
        return f"empty image of shape {image.shape}"
    return None


def check_output_path(path: str | os.PathLike, kind: str) -> Path:
    """`path` if a writer of `kind` ("video" or "image") can write it, else InputError naming it."""
    path = Path(path)
    wanted = VIDEO_SUFFIXES if kind == "video" else tuple(IMAGE_WRITE_FORMATS)
    if path.suffix.lower() not in wanted:
        raise InputError(path, f"a{'n' if kind == 'image' else ''} {kind} output must end in {', '.join(wanted)}")
    return path
