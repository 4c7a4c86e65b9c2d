"""frame_count's rounding rule and context_windows' shapes and edge clamping, for numpy and torch."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from faceanim.audio import context_windows, frame_count
from faceanim.errors import InputError


@pytest.mark.parametrize(("duration", "fps", "expected"), [
    (4.0, 25, 100), (1.234, 25, 31), (1.234, 30, 37), (0.0, 25, 0), (0.02, 25, 1), (0.0199, 25, 0),
    (6.89, 29.97, 206), (0.7, 30, 21),
])
def test_frame_count_rounds_to_nearest_frame_halves_up(duration, fps, expected):
    assert frame_count(duration, fps) == expected


@pytest.mark.parametrize(("duration", "fps"), [(-1.0, 25), (float("nan"), 25), (1.0, 0), (1.0, -25),
                                               (1.0, float("inf"))])
def test_frame_count_rejects_bad_numbers(duration, fps):
    with pytest.raises(InputError):
        frame_count(duration, fps)


def _features(count: int) -> np.ndarray:
    return np.arange(count * 3, dtype=np.float32).reshape(count, 3)


@pytest.mark.parametrize("as_tensor", [False, True])
def test_context_windows_shape_centre_and_clamped_ends(as_tensor):
    features = _features(7)
    stacked = context_windows(torch.from_numpy(features) if as_tensor else features, m=2)
    assert isinstance(stacked, torch.Tensor) == as_tensor
    stacked = np.asarray(stacked)
    assert stacked.shape == (7, 5, 3)
    np.testing.assert_array_equal(stacked[:, 2], features)           # centre row is the frame itself
    for t in range(7):
        for j, offset in enumerate(range(-2, 3)):
            np.testing.assert_array_equal(stacked[t, j], features[min(max(t + offset, 0), 6)])
    np.testing.assert_array_equal(stacked[0, :3], np.repeat(features[:1], 3, axis=0))   # start repeats frame 0
    np.testing.assert_array_equal(stacked[6, 2:], np.repeat(features[6:], 3, axis=0))   # end repeats frame 6


def test_context_windows_keeps_trailing_axes_and_handles_tiny_inputs():
    assert context_windows(np.zeros((4, 2, 5)), m=1).shape == (4, 3, 2, 5)
    single = context_windows(_features(1), m=2)
    assert single.shape == (1, 5, 3) and (single == _features(1)[0]).all()
    assert context_windows(_features(0), m=2).shape == (0, 5, 3)
    np.testing.assert_array_equal(context_windows(_features(3), m=0)[:, 0], _features(3))


def test_context_windows_rejects_bad_arguments():
    with pytest.raises(ValueError):
        context_windows(_features(3), m=-1)
    with pytest.raises(TypeError):
        context_windows([[1.0], [2.0]], m=1)
