"""idle_motion: seeded blinks at a natural rate and smooth, bounded head motion with speed control."""
from __future__ import annotations

import numpy as np
import pytest

from faceanim.errors import InputError
from faceanim.methods.warp.idle import IdleMotion, idle_motion

FPS = 25.0
MINUTE = int(60 * FPS)


def _blink_peaks(blink: np.ndarray) -> np.ndarray:
    """Frames where a blink is fully closed (each blink closes fully on exactly one frame)."""
    return np.flatnonzero(blink >= 1.0 - 1e-9)


def _zero_crossings_per_second(values: np.ndarray) -> float:
    signs = np.sign(values[values != 0])
    return float((signs[1:] != signs[:-1]).sum() / (len(values) / FPS))


def _head_channels(motion: IdleMotion) -> dict[str, np.ndarray]:
    return {"yaw": motion.yaw, "pitch": motion.pitch, "roll": motion.roll, "shift x": motion.shift[:, 0],
            "shift y": motion.shift[:, 1], "scale": motion.scale - 1.0}


def test_shapes_and_determinism():
    motion = idle_motion(300, FPS, seed=3)
    assert isinstance(motion, IdleMotion) and len(motion) == 300
    for values in (motion.yaw, motion.pitch, motion.roll, motion.scale, motion.blink):
        assert values.shape == (300,) and np.isfinite(values).all()
    assert motion.shift.shape == (300, 2) and np.isfinite(motion.shift).all()
    again, other = idle_motion(300, FPS, seed=3), idle_motion(300, FPS, seed=4)
    for name, values in _head_channels(motion).items():
        np.testing.assert_array_equal(values, _head_channels(again)[name])
        assert not np.allclose(values, _head_channels(other)[name]), name
    np.testing.assert_array_equal(motion.blink, again.blink)
    assert not np.array_equal(motion.blink, other.blink)
    assert len(idle_motion(0, FPS)) == 0 and len(idle_motion(10.0, FPS)) == 10


@pytest.mark.parametrize("rate", [15.0, 30.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_blink_rate_gap_and_shape(rate, seed):
    blink = idle_motion(MINUTE, FPS, seed=seed, blink_rate=rate).blink
    peaks = _blink_peaks(blink)
    assert abs(len(peaks) - rate) <= 0.4 * rate, len(peaks)
    assert np.diff(peaks).min() >= 1.5 * FPS
    assert blink.min() >= 0 and blink.max() == pytest.approx(1.0)
    # each blink: 0.15-0.3 s from open to open (a frame either way), closing faster than opening
    closed = np.concatenate([[False], blink > 0, [False]])
    edges = np.flatnonzero(np.diff(closed.astype(int)))
    runs = [(start, end) for start, end in zip(edges[::2], edges[1::2]) if start > 0 and end < MINUTE]
    assert len(runs) >= len(peaks) - 2
    closing, opening = [], []
    for start, end in runs:
        assert 0.15 - 2 / FPS <= (end - start) / FPS <= 0.3 + 1 / FPS
        peak = start + int(np.argmax(blink[start:end]))
        closing.append(peak - start)
        opening.append(end - peak)
    assert np.mean(closing) < np.mean(opening)


def test_blinks_are_independent_of_head_settings_and_can_be_turned_off():
    base = idle_motion(MINUTE, FPS, seed=5)
    for settings in ({"still": True}, {"head_amplitude": 2.0}, {"head_speed": 3.0}):
        np.testing.assert_array_equal(idle_motion(MINUTE, FPS, seed=5, **settings).blink, base.blink)
    assert not idle_motion(MINUTE, FPS, seed=5, blink_rate=0).blink.any()


def test_still_keeps_the_head_still_but_blinks():
    motion = idle_motion(MINUTE, FPS, seed=1, still=True)
    assert not motion.yaw.any() and not motion.pitch.any() and not motion.roll.any()
    assert not motion.shift.any() and (motion.scale == 1).all()
    assert len(_blink_peaks(motion.blink)) >= 5


def test_head_motion_ranges_and_amplitude():
    limits = {"yaw": 4.0, "pitch": 3.0, "roll": 2.0, "shift x": 0.02, "shift y": 0.02, "scale": 0.01}
    motion = _head_channels(idle_motion(MINUTE, FPS, seed=2))
    doubled = _head_channels(idle_motion(MINUTE, FPS, seed=2, head_amplitude=2.0))
    for name, limit in limits.items():
        assert np.abs(motion[name]).max() <= limit + 1e-12, name
        assert np.abs(motion[name]).max() >= 0.3 * limit, name  # the range is used
        np.testing.assert_allclose(doubled[name], 2 * motion[name], atol=1e-12)
    for name, values in _head_channels(idle_motion(MINUTE, FPS, seed=2, head_amplitude=0.0)).items():
        assert not values.any(), name


def test_head_motion_is_smooth_and_starts_from_the_source_pose():
    motion = idle_motion(MINUTE, FPS, seed=0)
    for name, values in _head_channels(motion).items():
        assert values[0] == 0, name
    # periods of at least 2 s: at most 2 pi x range / 2 s, i.e. 0.5 degrees a frame for yaw
    assert np.abs(np.diff(motion.yaw)).max() <= 0.51 and np.abs(np.diff(motion.roll)).max() <= 0.26
    assert motion.blink[0] == 0  # the first frame shows the source's open eyes


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_head_speed_scales_the_frequency(seed):
    for name in ("yaw", "pitch", "shift x"):
        slow = _zero_crossings_per_second(_head_channels(idle_motion(2 * MINUTE, FPS, seed=seed))[name])
        fast = _zero_crossings_per_second(_head_channels(idle_motion(2 * MINUTE, FPS, seed=seed, head_speed=2.0))[name])
        assert 1 / 6 <= slow / 2 <= 1 / 1.5, (name, slow)  # dominant periods of 2-6 s
        assert fast / slow == pytest.approx(2.0, rel=0.3), (name, slow, fast)


@pytest.mark.parametrize("options", [{"num_frames": -1}, {"num_frames": 2.5}, {"fps": 0.0}, {"head_amplitude": -1.0},
                                     {"head_speed": 0.0}, {"blink_rate": -1.0}, {"blink_rate": float("inf")}])
def test_bad_options_raise_input_error(options):
    arguments = {"num_frames": 100, "fps": FPS, **options}
    with pytest.raises(InputError):
        idle_motion(arguments.pop("num_frames"), arguments.pop("fps"), **arguments)
