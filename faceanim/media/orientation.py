"""Making video frames upright from the display matrix (or legacy `rotate` tag) that phones write.

FFmpeg's display matrix maps a stored pixel (x, y) to its display position
(x', y') = (a*x + c*y, b*x + d*y) (plus a shift), with a, b, c, d = matrix[0], [1], [3], [4].
Only quarter turns and mirrors are applied: other angles are rounded to the nearest quarter turn.
"""
from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np


@dataclass(frozen=True)
class Orientation:
    """How to turn a stored frame into the displayed one: transpose first, then mirror the axes."""

    transpose: bool = False
    flip_x: bool = False
    flip_y: bool = False

    @property
    def is_identity(self) -> bool:
        return not (self.transpose or self.flip_x or self.flip_y)


UPRIGHT = Orientation()
# Turning the stored frame clockwise by 0, 90, 180, 270 degrees (90: np.rot90(image, -1)).
_CLOCKWISE_TURNS = (UPRIGHT, Orientation(True, True, False), Orientation(False, True, True),
                    Orientation(True, False, True))


def orientation_from_matrix(matrix: np.ndarray | list[int]) -> Orientation:
    """The quarter-turn/mirror equivalent of a 3x3 display matrix given as 9 numbers (any scale)."""
    m = np.asarray(matrix, dtype=np.float64).reshape(-1)
    a, b, c, d = m[0], m[1], m[3], m[4]
    if abs(a) + abs(d) >= abs(b) + abs(c):
        return Orientation(transpose=False, flip_x=bool(a < 0), flip_y=bool(d < 0))
    # Transposed: the display x comes from the stored y (scaled by c), display y from stored x (by b).
    return Orientation(transpose=True, flip_x=bool(c < 0), flip_y=bool(b < 0))


def orientation_from_rotate_tag(clockwise_degrees: float) -> Orientation:
    """The orientation for the legacy `rotate` metadata tag (degrees clockwise, e.g. 90 on phones)."""
    quarter_turns = int(round(clockwise_degrees / 90.0)) % 4
    return _CLOCKWISE_TURNS[quarter_turns]


def frame_orientation(frame: av.VideoFrame, stream_metadata: dict[str, str]) -> Orientation:
    """The orientation a decoded frame asks for: its display matrix, else the stream's `rotate` tag."""
    matrix = frame.side_data.get("DISPLAYMATRIX")
    if matrix is not None:
        values = np.frombuffer(bytes(matrix), dtype=np.int32)
        if values.size == 9:
            return orientation_from_matrix(values)
    try:
        return orientation_from_rotate_tag(float(stream_metadata.get("rotate", 0)))
    except (ValueError, OverflowError):  # a malformed tag is ignored, as players do
        return UPRIGHT


def clockwise_rotation(orientation: Orientation) -> int:
    """Degrees clockwise (0, 90, 180, 270) a player turns the stored frame; a mirror is left out."""
    for degrees, turned in zip((0, 90, 180, 270), _CLOCKWISE_TURNS):
        mirrored = Orientation(turned.transpose, not turned.flip_x, turned.flip_y)
        if orientation in (turned, mirrored):
            return degrees
    raise AssertionError(f"unreachable: {orientation}")  # the 8 orientations are all listed above


def apply_orientation(image: np.ndarray, orientation: Orientation) -> np.ndarray:
    """The displayed (upright) version of a stored `(H, W, C)` image, as a contiguous array."""
    if orientation.is_identity:
        return image
    if orientation.transpose:
        image = image.transpose(1, 0, *range(2, image.ndim))
    if orientation.flip_x:
        image = image[:, ::-1]
    if orientation.flip_y:
        image = image[::-1]
    return np.ascontiguousarray(image)
