"""Zero-lag temporal smoothing for streams (face boxes, head motion, crop quads).

Each value is replaced by a Gaussian-weighted local *linear* fit over a centred window of neighbours
(a few frames back and `lookahead` frames ahead): jitter is averaged out while steady motion is kept
exactly (a straight-line trajectory passes through unchanged, so crops do not lag behind the face).
Neighbours only count when they belong to the same segment: a cut, a lost face or a new face starts
a new segment, and nothing is blended across it.
"""
from __future__ import annotations

import math
from collections import deque
from typing import Any, Generic, Hashable, Iterable, TypeVar

import numpy as np

from ..errors import InputError

P = TypeVar("P")


def local_linear(times: np.ndarray, values: np.ndarray, sigma: float) -> np.ndarray:
    """The value at time 0 of a Gaussian-weighted (sigma) least-squares line through (times, values)."""
    weights = np.exp(-0.5 * (times / sigma) ** 2)
    s0, s1, s2 = weights.sum(), (weights * times).sum(), (weights * times * times).sum()
    flat = values.reshape(len(values), -1)
    mean = weights @ flat
    slope_term = (weights * times) @ flat
    det = s0 * s2 - s1 * s1
    if det <= 1e-9 * max(s0 * s2, 1e-12):  # a single sample, or all at one time: plain average
        return (mean / s0).reshape(values.shape[1:])
    return ((s2 * mean - s1 * slope_term) / det).reshape(values.shape[1:])


class TemporalSmoother(Generic[P]):
    """Streaming centred smoother: `push` items in order and get back those whose window is complete.

    An item is (payload, value or None, segment); the payload (a frame, an index...) is passed through
    untouched, the value (any float array shape) comes back smoothed, None stays None. Output lags
    input by `lookahead` = ceil(2.5 sigma) items; `flush()` returns the rest at the end of the stream.
    sigma = 0 turns smoothing off (no look-ahead)."""

    def __init__(self, sigma: float):
        if not sigma >= 0:
            raise InputError(None, f"smoothing must be >= 0 (frames), got {sigma}")
        self.sigma = float(sigma)
        self.lookahead = math.ceil(2.5 * sigma) if sigma > 0 else 0
        self._items: deque[tuple[Any, np.ndarray | None, Hashable]] = deque()
        self._next = 0  # position in _items of the next item to emit; earlier ones are context only

    def push(self, payload: P, value: np.ndarray | None, segment: Hashable = 0) -> list[tuple[P, np.ndarray | None]]:
        """Add one item; return the items (in order) that can now be emitted."""
        self._items.append((payload, None if value is None else np.asarray(value, dtype=np.float64), segment))
        ready = []
        while len(self._items) - 1 - self._next >= self.lookahead:
            ready.append(self._emit())
        return ready

    def flush(self) -> list[tuple[P, np.ndarray | None]]:
        """Emit everything still buffered (end of stream) and reset."""
        ready = [self._emit() for _ in range(len(self._items) - self._next)]
        self._items.clear()
        self._next = 0
        return ready

    def _emit(self) -> tuple[P, np.ndarray | None]:
        payload, value, segment = self._items[self._next]
        result = value
        if value is not None and self.sigma > 0:
            times, values = [], []
            for offset, (_, other, other_segment) in enumerate(self._items):
                if other is not None and other_segment == segment:
                    times.append(offset - self._next)
                    values.append(other)
            result = local_linear(np.asarray(times, dtype=np.float64), np.stack(values), self.sigma)
        self._next += 1
        while self._next > self.lookahead:  # keep `lookahead` items of past context, no more
            self._items.popleft()
            self._next -= 1
        return payload, result


def smooth_sequence(values: Iterable[np.ndarray | None], sigma: float,
                    segments: Iterable[Hashable] | None = None) -> list[np.ndarray | None]:
    """Smooth a whole sequence at once (None entries stay None); same rule as `TemporalSmoother`."""
    smoother: TemporalSmoother[int] = TemporalSmoother(sigma)
    values = list(values)
    segments = [0] * len(values) if segments is None else list(segments)
    out: list[np.ndarray | None] = []
    for index, (value, segment) in enumerate(zip(values, segments)):
        out.extend(v for _, v in smoother.push(index, value, segment))
    out.extend(v for _, v in smoother.flush())
    return out
