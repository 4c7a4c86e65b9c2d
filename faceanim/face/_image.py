"""Checks and small conversions shared by the face modules (internal)."""
from __future__ import annotations

import cv2
import numpy as np

from ..errors import InputError
from ..media.outputs import rgb_array_problem


def as_rgb_image(image: np.ndarray, what: str = "image") -> np.ndarray:
    """`image` as a C-contiguous uint8 (H, W, 3) array (dlib needs that); InputError if it is not one."""
    problem = rgb_array_problem(image)
    if problem:
        raise InputError(None, f"{what}: {problem}")
    return np.ascontiguousarray(image)


def as_landmarks(landmarks: np.ndarray, what: str = "landmarks") -> np.ndarray:
    """`landmarks` as a float64 (68, 2) array; InputError for any other shape or non-finite values."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (68, 2) or not np.isfinite(points).all():
        raise InputError(None, f"{what}: expected 68 finite (x, y) points, got an array of shape {points.shape}")
    return points


def downscaled(image: np.ndarray, max_side: int | None) -> tuple[np.ndarray, tuple[float, float]]:
    """The image shrunk (area filter) so its longer side is at most `max_side`, and the (x, y) factors."""
    height, width = image.shape[:2]
    if not max_side or max(height, width) <= max_side:
        return image, (1.0, 1.0)
    factor = max_side / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return small, (size[0] / width, size[1] / height)
