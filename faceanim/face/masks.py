"""Soft face masks and mouth measurements from 68 landmarks."""
from __future__ import annotations

import cv2
import numpy as np

from ..errors import InputError
from ._image import as_landmarks
from .detect import Box
from .landmarks import eye_axis

JAW = slice(0, 17)
BROWS = slice(17, 27)
MOUTH = slice(48, 68)
INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))  # upper inner lip point, the lower one facing it


def face_width(landmarks: np.ndarray) -> float:
    """Distance between the two ends of the jaw line (points 0 and 16), in pixels."""
    points = as_landmarks(landmarks)
    return float(np.linalg.norm(points[16] - points[0]))


def _face_up(points: np.ndarray) -> np.ndarray:
    """The face's own "up" direction (unit vector): perpendicular to the line between the eyes."""
    across = eye_axis(points)
    return np.array([across[1], -across[0]])


def face_outline(landmarks: np.ndarray, forehead: float = 0.3) -> np.ndarray:
    """The convex outline (N, 2) of jaw and brows, with the brows raised along the face's up direction
    by `forehead` x (brows-to-chin height), so that the forehead is inside."""
    points = as_landmarks(landmarks)
    up = _face_up(points)
    brows = points[BROWS]
    height = float(np.dot(brows.mean(axis=0) - points[8], up))
    raised = brows + up * forehead * max(height, 0.0)
    hull = cv2.convexHull(np.concatenate([points[JAW], brows, raised]).astype(np.float32))
    return hull.reshape(-1, 2).astype(np.float64)


def face_mask(landmarks: np.ndarray, shape: tuple[int, int], *, forehead: float = 0.3,
              feather: float = 0.05) -> np.ndarray:
    """A float32 (h, w) mask in [0, 1]: 1 on the face (jaw, cheeks, brows and forehead), 0 away from it.

    The edge is a Gaussian ramp whose sigma is `feather` x the face width (0 = hard edge); the value
    is 0.5 on the outline itself."""
    if forehead < 0 or feather < 0:
        raise InputError(None, f"face_mask: forehead and feather must be >= 0, got {forehead} and {feather}")
    height, width = int(shape[0]), int(shape[1])
    outline = face_outline(landmarks, forehead)
    sigma = feather * face_width(landmarks)
    margin = int(np.ceil(3 * sigma)) + 2
    # Draw and blur only the face's neighbourhood: a 1080p frame costs no more than a 256 crop.
    x0, y0 = np.floor(outline.min(axis=0)).astype(int) - margin
    x1, y1 = np.ceil(outline.max(axis=0)).astype(int) + margin + 1
    mask = np.zeros((height, width), dtype=np.float32)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if x1 <= x0 or y1 <= y0:
        return mask
    # Pad the drawn patch by the margin so the blur sees the same zeros that lie outside the frame.
    pad_x0, pad_y0 = x0 - margin, y0 - margin
    patch = np.zeros((y1 - y0 + 2 * margin, x1 - x0 + 2 * margin), dtype=np.float32)
    shift = 16  # fixed-point bits: sub-pixel accurate polygon
    polygon = np.rint((outline - [pad_x0, pad_y0]) * (1 << shift)).astype(np.int32)
    cv2.fillConvexPoly(patch, polygon, 1.0, shift=shift)
    if sigma > 0:
        patch = cv2.GaussianBlur(patch, (0, 0), sigma)
    mask[y0:y1, x0:x1] = patch[margin:margin + y1 - y0, margin:margin + x1 - x0]
    return np.clip(mask, 0.0, 1.0)


def mouth_box(landmarks: np.ndarray, scale: float = 1.5) -> Box:
    """A square box on the mouth's centre whose side is `scale` x the longer side of the lips' box."""
    lips = as_landmarks(landmarks)[MOUTH]
    (left, top), (right, bottom) = lips.min(axis=0), lips.max(axis=0)
    side = scale * max(right - left, bottom - top)
    return Box.square((float(left + right) / 2, float(top + bottom) / 2), float(side))


def inner_mouth_opening(landmarks: np.ndarray) -> float:
    """How open the mouth is: the mean gap between the inner lips / face width (0 when closed,
    about 0.1-0.3 when talking, more when wide open)."""
    points = as_landmarks(landmarks)
    gap = np.mean([np.linalg.norm(points[upper] - points[lower]) for upper, lower in INNER_LIP_PAIRS])
    return float(gap / max(face_width(points), 1e-9))
