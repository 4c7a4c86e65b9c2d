"""Motion transfer: relative (FOMM-style) and absolute, pose as a similarity, face-size normalisation."""
from __future__ import annotations

import numpy as np
import pytest

from faceanim.face import inner_mouth_opening, largest_face
from faceanim.methods.warp.conditioning import (MotionTransfer, apply, fit_similarity, invert, keep_gaps_open)


@pytest.fixture(scope="module")
def source(astronaut):
    return largest_face(astronaut)[1]


def similarity(angle_deg: float, scale: float, shift) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), shift[0]], [scale * np.sin(a), scale * np.cos(a), shift[1]]])


def test_fit_similarity_recovers_a_known_transform(source):
    matrix = similarity(12, 0.7, (30, -5))
    assert np.allclose(fit_similarity(source, apply(matrix, source)), matrix)
    assert np.allclose(apply(invert(matrix), apply(matrix, source)), source)


def test_first_driving_frame_gives_the_source(source):
    driving = apply(similarity(-8, 0.45, (20, 60)), source) + np.random.default_rng(0).normal(0, 1, (68, 2))
    transfer = MotionTransfer(source, driving)
    assert np.abs(transfer(driving) - source).max() < 1e-6


def test_expression_and_pose_are_normalised_to_the_source_face(source):
    to_driving = similarity(0, 0.5, (10, 10))            # the driving face is half the size
    initial = apply(to_driving, source)
    transfer = MotionTransfer(source, initial, motion_limit=0)
    brows_up = initial.copy()
    brows_up[17:27, 1] -= 3                              # 3 driving pixels = 6 source pixels
    target = transfer(brows_up)
    assert np.allclose(target[17:27, 1] - source[17:27, 1], -6, atol=0.6)
    assert np.abs(np.delete(target - source, range(17, 27), axis=0)).max() < 1.0
    moved = transfer(initial + [4, 0])                   # head moves 4 driving px right = 8 source px
    assert np.allclose((moved - source).mean(axis=0), [8, 0], atol=0.2)
    tilted = transfer(apply(similarity(10, 1, (0, 0)), initial - initial[27:36].mean(0)) + initial[27:36].mean(0))
    angle = np.degrees(np.arctan2(*(tilted[45] - tilted[36])[::-1]) - np.arctan2(*(source[45] - source[36])[::-1]))
    assert angle == pytest.approx(10, abs=0.5)


def test_mouth_opening_follows_the_driving_change_exactly(source):
    initial = apply(similarity(5, 0.6, (0, 0)), source)
    transfer = MotionTransfer(source, initial)
    driving = initial.copy()
    driving[[56, 57, 58, 65, 66, 67]] += apply(similarity(5, 0.6, (0, 0)), np.array([[0, 12.0]]))[0]
    change = inner_mouth_opening(driving) - inner_mouth_opening(initial)
    assert change > 0.03
    assert inner_mouth_opening(transfer(driving)) == pytest.approx(inner_mouth_opening(source) + change, abs=0.01)


def test_absolute_mode_takes_the_driving_shape(source):
    initial = apply(similarity(0, 0.5, (10, 10)), source)
    wider = initial.copy()
    wider[:, 0] = initial[:, 0].mean() + 1.2 * (initial[:, 0] - initial[:, 0].mean())
    target = MotionTransfer(source, wider, relative=False)(wider)
    width = lambda p: np.ptp(p[:, 0])
    assert width(target) / np.ptp(target[:, 1]) == pytest.approx(width(wider) / np.ptp(wider[:, 1]), rel=0.05)


def test_adapt_scale_uses_face_areas(source):
    initial = apply(similarity(0, 0.5, (0, 0)), source)
    plain, adapted = MotionTransfer(source, initial), MotionTransfer(source, initial, adapt_scale=True)
    assert plain.motion_scale == pytest.approx(2, rel=0.02) and adapted.motion_scale == pytest.approx(2, rel=0.02)
    narrow = initial.copy()
    narrow[:, 0] *= 0.8                                   # a narrower driving face: larger area ratio
    assert MotionTransfer(source, narrow, adapt_scale=True).motion_scale > 2.1


def test_crossing_lips_and_lids_are_undone(source):
    crossed = source.copy()
    crossed[66] = crossed[62] + [0, -5]                    # lower inner lip above the upper one
    fixed = keep_gaps_open(crossed)
    assert np.allclose(fixed[62], fixed[66])
    with pytest.raises(Exception, match="68 finite"):
        MotionTransfer(source, np.zeros((5, 2)))


def test_motion_limit_compresses_big_motions_but_not_the_mouth(source):
    initial = apply(similarity(0, 0.5, (0, 0)), source)
    limited, free = MotionTransfer(source, initial), MotionTransfer(source, initial, motion_limit=0)
    width = np.linalg.norm(source[16] - source[0])
    for shift, expected_ratio in ((1.0, 0.99), (0.3 * width, 0.4)):   # driving px -> twice in source px
        driving = initial.copy()
        driving[:17, 0] += shift / 2                           # the outline slides sideways (a head turn)
        moved = (limited(driving) - source)[:17, 0].mean()
        assert moved / (free(driving) - source)[:17, 0].mean() == pytest.approx(expected_ratio, abs=0.1)
        assert moved <= 0.1 * width + 1e-6
    wide_open = initial.copy()
    wide_open[[56, 57, 58, 65, 66, 67], 1] += 0.2 * width / 2
    assert inner_mouth_opening(limited(wide_open)) == pytest.approx(inner_mouth_opening(free(wide_open)), abs=0.01)
