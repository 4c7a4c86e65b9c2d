"""The zero-lag temporal smoother and the crop-box smoother."""
from __future__ import annotations

import numpy as np
import pytest

from faceanim.face import Box, CropSmoother, TemporalSmoother, smooth_sequence


def test_straight_motion_passes_unchanged_and_noise_is_reduced():
    t = np.arange(80, dtype=np.float64)
    line = np.stack([3.0 * t + 5, -0.5 * t], axis=1)
    smoothed = np.stack(smooth_sequence(list(line), sigma=2.0))
    np.testing.assert_allclose(smoothed, line, atol=1e-9)  # no lag, also at both ends

    rng = np.random.default_rng(0)
    noisy = line + rng.normal(0, 2.0, line.shape)
    denoised = np.stack(smooth_sequence(list(noisy), sigma=2.0))
    assert np.abs(denoised - line)[5:-5].std() < 0.5 * np.abs(noisy - line)[5:-5].std()
    assert np.abs(np.diff(denoised[:, 0]) - 3.0).mean() < 0.3 * np.abs(np.diff(noisy[:, 0]) - 3.0).mean()


def test_streaming_order_lookahead_and_gaps():
    smoother = TemporalSmoother(sigma=2.0)
    assert smoother.lookahead == 5
    emitted = []
    for index in range(12):
        value = None if index in (6, 7) else np.array([float(index)])
        out = smoother.push(index, value, segment=0 if index < 6 else 1)
        assert len(emitted) + len(out) == max(0, index + 1 - smoother.lookahead)
        emitted += out
    emitted += smoother.flush()
    assert [payload for payload, _ in emitted] == list(range(12))
    assert emitted[6][1] is None and emitted[7][1] is None
    # Each segment is a straight line on its own; nothing from one leaks into the other.
    assert [float(v[0]) for i, v in emitted if v is not None] == pytest.approx([0, 1, 2, 3, 4, 5, 8, 9, 10, 11])


def test_segments_are_not_blended():
    values = [np.array([0.0])] * 10 + [np.array([100.0])] * 10
    smoothed = smooth_sequence(values, sigma=3.0, segments=[0] * 10 + [1] * 10)
    assert [float(v[0]) for v in smoothed] == pytest.approx([0.0] * 10 + [100.0] * 10, abs=1e-9)
    blended = smooth_sequence(values, sigma=3.0)  # one segment: the step is smoothed
    assert 0 < float(blended[9][0]) < 100


def test_zero_sigma_is_off():
    values = [np.array([float(v)]) for v in (1, 5, 2, 8)]
    assert [float(v[0]) for v in smooth_sequence(values, 0.0)] == [1, 5, 2, 8]


def test_crop_smoother_follows_and_steadies_boxes():
    rng = np.random.default_rng(1)
    truth = [Box.square((100 + 4 * i, 200.0), 120.0) for i in range(40)]
    jittered = [Box.square((b.center[0] + rng.normal(0, 3), b.center[1] + rng.normal(0, 3)), 120 + rng.normal(0, 3))
                for b in truth]
    items = [(i, box) for i, box in enumerate(jittered)]
    items[20] = (20, None)
    out = list(CropSmoother(sigma=2.0).smooth(items))
    assert [i for i, _ in out] == list(range(40)) and out[20][1] is None
    error_in = np.mean([np.hypot(*np.subtract(j.center, t.center)) for j, t in zip(jittered, truth)])
    error_out = np.mean([np.hypot(*np.subtract(b.center, t.center)) for (_, b), t in zip(out, truth) if b])
    assert error_out < 0.6 * error_in
    assert abs(np.mean([b.center[0] - t.center[0] for (_, b), t in zip(out, truth) if b])) < 1.0  # no lag
