"""Motion transfer (relative / absolute / adapt-scale) on known numbers, and best-frame search."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from faceanim.errors import NoFaceError
from faceanim.face.landmarks import convex_hull_area
from faceanim.warping.keypoints import Keypoints
from faceanim.warping.motion import find_best_frame, normalize_keypoints

UNIT_SQUARE = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]


def _kp(points, jacobian) -> Keypoints:
    value = torch.tensor(points, dtype=torch.float32)
    value = value[None] if value.dim() == 2 else value
    jac = torch.as_tensor(jacobian, dtype=torch.float32).expand(value.shape[0], value.shape[1], 2, 2)
    return Keypoints(value, jac)


@pytest.fixture
def frames():
    source = _kp(UNIT_SQUARE, [[2.0, 0.0], [0.0, 1.0]])                        # area 1
    initial = _kp([[2 * x, 2 * y] for x, y in UNIT_SQUARE], [[1.0, 0.0], [0.0, 2.0]])  # area 4
    driving = _kp([[2 * x + 0.2, 2 * y - 0.4] for x, y in UNIT_SQUARE], [[1.0, 1.0], [0.0, 2.0]])
    return source, driving, initial


def test_absolute_motion_is_the_driving_keypoints(frames):
    source, driving, initial = frames
    out = normalize_keypoints(source, driving, initial, relative=False, adapt_scale=True)
    assert torch.equal(out.value, driving.value) and torch.equal(out.jacobian, driving.jacobian)


def test_relative_motion_and_jacobian(frames):
    source, driving, initial = frames
    out = normalize_keypoints(source, driving, initial, relative=True)
    assert torch.allclose(out.value, source.value + torch.tensor([0.2, -0.4]))
    # J_drv J_init^-1 J_src = [[1, 1], [0, 2]] [[1, 0], [0, 0.5]] [[2, 0], [0, 1]] = [[2, 0.5], [0, 1]]
    assert torch.allclose(out.jacobian, torch.tensor([[2.0, 0.5], [0.0, 1.0]]).expand(1, 4, 2, 2))
    without = normalize_keypoints(source, driving, initial, relative=True, relative_jacobian=False)
    assert torch.equal(without.jacobian, driving.jacobian) and torch.allclose(without.value, out.value)


def test_adapt_scale_uses_hull_areas(frames):
    source, driving, initial = frames
    out = normalize_keypoints(source, driving, initial, relative=True, adapt_scale=True)
    # s = sqrt(1) / sqrt(4) = 0.5
    assert torch.allclose(out.value, source.value + torch.tensor([0.1, -0.2]))
    assert convex_hull_area(np.array(UNIT_SQUARE + [[0.5, 0.5]])) == pytest.approx(1.0)


def test_batches_broadcast_with_a_scale_per_element():
    source = _kp([UNIT_SQUARE, [[3 * x, 3 * y] for x, y in UNIT_SQUARE]], torch.eye(2))  # areas 1 and 9
    initial = _kp(UNIT_SQUARE, torch.eye(2))
    driving = _kp([[[x + 0.1, y] for x, y in UNIT_SQUARE]] * 2, torch.eye(2))
    out = normalize_keypoints(source, driving, initial, adapt_scale=True)
    expected_shift = torch.tensor([[[0.1, 0.0]], [[0.3, 0.0]]])  # 0.1 scaled by 1 and by sqrt(9) / 1
    assert torch.allclose(out.value - source.value, expected_shift.expand(2, 4, 2))
    one_source = normalize_keypoints(source[0], driving, initial)  # a batch-1 source serves both frames
    assert one_source.value.shape == (2, 4, 2)


def test_adapt_scale_needs_an_area():
    line = _kp([[0.0, 0.0], [0.5, 0.5], [1.0, 1.0]], torch.eye(2))
    with pytest.raises(ValueError, match="no area"):
        normalize_keypoints(line, line, line, adapt_scale=True)


def test_find_best_frame_ignores_position_and_size():
    rng = np.random.default_rng(0)
    source = rng.uniform(0, 100, (68, 2))
    other = rng.uniform(0, 100, (68, 2))
    scaled_copy = source * 3 + [40.0, -7.0]
    noisy = source + rng.normal(0, 2, (68, 2))
    assert find_best_frame(source, [other, noisy, None, scaled_copy]) == 3
    assert find_best_frame(source, iter([other, None, noisy])) == 2  # any iterable, streamed
    with_z = np.concatenate([source, rng.normal(0, 1, (68, 1))], axis=1)  # 3-D landmarks work too
    assert find_best_frame(with_z, [np.concatenate([other, with_z[:, 2:]], 1), with_z * [2, 2, 1]]) == 1


def test_find_best_frame_without_any_face():
    with pytest.raises(NoFaceError):
        find_best_frame(np.random.default_rng(1).uniform(0, 1, (68, 2)), [None, None])
