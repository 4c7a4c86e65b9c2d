"""The pure pieces behind VideoReader: constant-rate resampling, VFR detection, display matrices."""
from __future__ import annotations

import numpy as np
import pytest

from faceanim.media.orientation import (Orientation, apply_orientation, clockwise_rotation,
                                        orientation_from_matrix, orientation_from_rotate_tag)
from faceanim.media.timing import constant_rate, is_variable_rate


def resample(starts, fps, durations=None, **kwargs):
    durations = durations or [None] * len(starts)
    return list(constant_rate(zip(starts, durations, range(len(starts))), fps, **kwargs))


def test_same_rate_passes_every_frame_through():
    assert resample([i / 25 for i in range(10)], 25) == list(range(10))


def test_halving_and_doubling_the_rate():
    assert resample([i / 50 for i in range(10)], 25) == [0, 2, 4, 6, 8]
    assert resample([i / 10 for i in range(3)], 20) == [0, 0, 1, 1, 2, 2]


def test_each_tick_shows_the_frame_on_screen():
    starts = [0.0, 0.1, 0.35, 0.36]
    # ticks at 0, .1, .2, .3, .4 (the last frame lasts 0.1 s: until .46)
    assert resample(starts, 10, [0.1, 0.25, 0.01, 0.1]) == [0, 1, 1, 1, 3]


def test_timestamps_are_relative_to_the_first_frame_and_tolerance_applies():
    starts = [5.0, 5.0403, 5.08]
    assert resample(starts, 25) == [0, 0, 2]  # 0.0403 starts after tick 0.04
    assert resample(starts, 25, tolerance=5e-4) == [0, 1, 2]  # ... within a rounding tolerance


def test_empty_input_and_bad_rate():
    assert resample([], 25) == []
    with pytest.raises(ValueError):
        resample([0.0], 0)


def test_variable_rate_detection():
    assert not is_variable_rate([i / 25 for i in range(50)])
    assert not is_variable_rate(np.round(np.arange(50) * 1001 / 30000, 3), resolution=1e-3)  # ms rounding
    assert is_variable_rate([i * 0.04 for i in range(10)] + [0.4 + 0.1 * i for i in range(5)])
    assert not is_variable_rate([0.0, 0.04])


def test_display_matrices():
    grid = np.arange(6).reshape(2, 3)[:, :, None]
    one = 1 << 16
    ccw90 = [0, -one, 0, one, 0, 0, 0, 0, 1 << 30]  # what FFmpeg writes for a 90 degree counter-clockwise turn
    turned = orientation_from_matrix(ccw90)
    np.testing.assert_array_equal(apply_orientation(grid, turned)[:, :, 0], np.rot90(grid[:, :, 0], 1))
    assert clockwise_rotation(turned) == 270
    mirrored = orientation_from_matrix([-one, 0, 0, 0, one, 0, 0, 0, 1 << 30])
    np.testing.assert_array_equal(apply_orientation(grid, mirrored)[:, :, 0], grid[:, ::-1, 0])
    assert orientation_from_matrix([one, 0, 0, 0, one, 0, 0, 0, 1 << 30]) == Orientation()


@pytest.mark.parametrize("degrees, turns", [(0, 0), (90, -1), (180, 2), (270, 1), (-90, 1), (360, 0)])
def test_rotate_tag_turns_clockwise(degrees, turns):
    grid = np.arange(12).reshape(3, 4)
    orientation = orientation_from_rotate_tag(degrees)
    np.testing.assert_array_equal(apply_orientation(grid[:, :, None], orientation)[:, :, 0], np.rot90(grid, turns))
    assert clockwise_rotation(orientation) == degrees % 360
