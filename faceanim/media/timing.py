"""Frame timing: resampling a stream of timestamped frames to a constant rate, and VFR detection."""
from __future__ import annotations

from typing import Iterable, Iterator, Sequence, TypeVar

import numpy as np

T = TypeVar("T")


def constant_rate(timed_frames: Iterable[tuple[float, float | None, T]], fps: float, *,
                  tolerance: float = 1e-4) -> Iterator[T]:
    """Resample `(start_time, duration, frame)` triples (presentation order) to `fps` frames per second.

    Output frame k is the source frame on screen at time k / fps, counted from the first frame's start:
    frames are repeated or dropped as needed. A frame that starts less than `tolerance` seconds after a
    tick counts as on screen at it (timestamps are rounded to the container's time base). The last frame
    stays on screen for its `duration` (None: the mean spacing of the frames before it, or 1 / fps).
    Streams: holds one frame at a time."""
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    tick = 0
    shown: T | None = None
    first_start = last_start = last_duration = None
    count = 0
    for start, duration, frame in timed_frames:
        if first_start is None:
            first_start = start
        offset = start - first_start
        while shown is not None and tick / fps + tolerance < offset:
            yield shown
            tick += 1
        shown, last_start, last_duration, count = frame, offset, duration, count + 1
    if shown is None:
        return
    if not last_duration or last_duration <= 0:
        last_duration = last_start / (count - 1) if count > 1 and last_start > 0 else 1.0 / fps
    end = last_start + last_duration
    while tick / fps + tolerance < end:
        yield shown
        tick += 1


def is_variable_rate(timestamps: Sequence[float], *, resolution: float = 0.0) -> bool:
    """True when frame timestamps (seconds, any order) are not evenly spaced.

    Spacings may differ by the timestamp `resolution` (one time-base tick) plus 10 % of their median
    before the stream counts as variable-rate."""
    times = np.unique(np.asarray(timestamps, dtype=np.float64))
    if times.size < 3:
        return False
    spacings = np.diff(times)
    median = float(np.median(spacings))
    return bool(np.any(np.abs(spacings - median) > 1.5 * resolution + 0.1 * median))
