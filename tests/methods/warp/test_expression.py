"""Landmark geometry on real faces: mouth opening and width, closed eyes, head turns that head_pose sees."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from faceanim.errors import InputError
from faceanim.face import head_pose, inner_mouth_opening, largest_face
from faceanim.methods.warp.expression import close_eyes, face_frame, rotate_head, set_mouth

ROTATION_DEGREES = 35.0
MOUTH_AND_JAW = set(range(4, 13)) | set(range(48, 68))


@pytest.fixture(scope="module")
def astronaut_landmarks(astronaut) -> tuple[np.ndarray, tuple[int, int]]:
    return largest_face(astronaut)[1].astype(np.float64), astronaut.shape[:2]


@pytest.fixture(scope="module", params=["upright", "rotated"])
def face(request, astronaut_landmarks) -> tuple[np.ndarray, tuple[int, int]]:
    """The astronaut's landmarks, as detected or turned 35 degrees in the image (same 512x512 frame)."""
    landmarks, size = astronaut_landmarks
    if request.param == "upright":
        return landmarks, size
    matrix = cv2.getRotationMatrix2D((size[1] / 2, size[0] / 2), ROTATION_DEGREES, 1.0)
    return landmarks @ matrix[:, :2].T + matrix[:, 2], size


@pytest.fixture(scope="module")
def portrait_landmarks(shared_testdata) -> tuple[np.ndarray, tuple[int, int]]:
    image = np.asarray(Image.open(shared_testdata / "portrait_256.png").convert("RGB"))
    return largest_face(image)[1].astype(np.float64), image.shape[:2]


def _local(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Points in the face frame of `reference` (x along the eyes, y towards the chin), in face widths."""
    centre, x_axis, width = face_frame(reference)
    return (points - centre) @ np.array([x_axis, [-x_axis[1], x_axis[0]]]).T / width


def _eye_aspect_ratio(points: np.ndarray, first: int) -> float:
    p = points[first:first + 6]
    vertical = np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4])
    return float(vertical / (2 * np.linalg.norm(p[0] - p[3])))


def _assert_face_layout(points: np.ndarray, reference: np.ndarray) -> None:
    """Finite, and every landmark still plays its part: eyes and mouth corners left to right, brows
    over eyes over nose tip over mouth over chin, the jaw running from ear to ear."""
    assert points.shape == (68, 2) and np.isfinite(points).all()
    local = _local(points, reference)
    x, y = local[:, 0], local[:, 1]
    assert x[36] < x[39] < x[42] < x[45] and x[48] < x[62] < x[54] and x[0] < x[8] < x[16]
    assert y[19] < y[37] < y[30] < y[51] < y[57] < y[8] and y[24] < y[44]
    jaw_angles = np.arctan2(y[0:17], x[0:17])  # seen from the centre, the jaw sweeps under the face
    assert np.all(np.diff(np.unwrap(jaw_angles)) < 0)


def test_face_frame_turns_with_the_face(astronaut_landmarks):
    landmarks, size = astronaut_landmarks
    centre, x_axis, width = face_frame(landmarks)
    assert np.linalg.norm(x_axis) == pytest.approx(1.0) and abs(x_axis[1]) < 0.1  # an upright face
    assert landmarks[39, 0] < centre[0] < landmarks[42, 0] and landmarks[39, 1] < centre[1] < landmarks[51, 1]
    assert width == pytest.approx(np.linalg.norm(landmarks[16] - landmarks[0]))
    matrix = cv2.getRotationMatrix2D((size[1] / 2, size[0] / 2), ROTATION_DEGREES, 1.0)
    turned_centre, turned_axis, turned_width = face_frame(landmarks @ matrix[:, :2].T + matrix[:, 2])
    np.testing.assert_allclose(turned_centre, matrix[:, :2] @ centre + matrix[:, 2], atol=1e-9)
    np.testing.assert_allclose(turned_axis, matrix[:, :2] @ x_axis, atol=1e-9)
    assert turned_width == pytest.approx(width)


@pytest.mark.parametrize("opening", [0.0, 0.1, 0.2, 0.3])
def test_set_mouth_hits_the_opening(face, opening):
    landmarks, _ = face
    moved = set_mouth(landmarks, opening=opening)
    assert inner_mouth_opening(moved) == pytest.approx(opening, abs=0.01)
    _assert_face_layout(moved, landmarks)
    changed = set(np.flatnonzero(np.abs(moved - landmarks).max(axis=1) > 1e-9))
    assert changed <= MOUTH_AND_JAW  # eyes, brows, nose and the jaw's upper part stay
    if opening >= 0.1:  # the jaw drops along the face's own vertical axis; the upper lip hardly moves
        drop = _local(moved, landmarks) - _local(landmarks, landmarks)
        assert drop[8, 1] > 0 and abs(drop[8, 0]) < 1e-9
        assert drop[66, 1] > 0.5 * (opening - inner_mouth_opening(landmarks))
        assert abs(drop[51, 1]) < 0.1 * drop[57, 1] and drop[5, 1] < drop[7, 1] < drop[8, 1]


def test_set_mouth_closes_from_an_open_mouth(face):
    landmarks, _ = face
    wide_open = set_mouth(landmarks, opening=0.3)
    for opening in (0.15, 0.0):
        closed = set_mouth(wide_open, opening=opening)
        assert inner_mouth_opening(closed) == pytest.approx(opening, abs=0.01)
        assert _local(closed, landmarks)[8, 1] < _local(wide_open, landmarks)[8, 1]  # the chin comes back up


@pytest.mark.parametrize("width", [-0.1, 0.1, 0.2])
def test_set_mouth_width_changes_the_corner_distance(face, width):
    landmarks, _ = face
    moved = set_mouth(landmarks, opening=0.1, width=width)
    before, after = (np.linalg.norm(p[54] - p[48]) for p in (landmarks, moved))
    assert after / before == pytest.approx(1 + width, abs=0.01)
    assert inner_mouth_opening(moved) == pytest.approx(0.1, abs=0.01)
    _assert_face_layout(moved, landmarks)


def test_rounding_narrows_and_fills_the_lips(face):
    landmarks, _ = face
    plain, rounded = (set_mouth(landmarks, opening=0.1, rounding=r) for r in (0.0, 1.0))
    width = {name: np.linalg.norm(p[54] - p[48]) for name, p in (("plain", plain), ("rounded", rounded))}
    height = {name: np.linalg.norm(p[57] - p[51]) for name, p in (("plain", plain), ("rounded", rounded))}
    assert width["rounded"] < 0.85 * width["plain"] and height["rounded"] > height["plain"]
    assert inner_mouth_opening(rounded) == pytest.approx(0.1, abs=0.01)


def test_close_eyes(face):
    landmarks, _ = face
    open_ratio = _eye_aspect_ratio(landmarks, 36), _eye_aspect_ratio(landmarks, 42)
    assert min(open_ratio) > 0.15
    shut = close_eyes(landmarks, 1.0)
    assert _eye_aspect_ratio(shut, 36) < 0.01 and _eye_aspect_ratio(shut, 42) < 0.01
    half = close_eyes(landmarks, 0.5)
    assert _eye_aspect_ratio(half, 36) == pytest.approx(open_ratio[0] / 2, rel=0.05)
    one = close_eyes(landmarks, (1.0, 0.0))
    assert _eye_aspect_ratio(one, 36) < 0.01 and _eye_aspect_ratio(one, 42) == pytest.approx(open_ratio[1])
    np.testing.assert_array_equal(close_eyes(landmarks, 0.0), landmarks)
    changed = np.flatnonzero(np.abs(shut - landmarks).max(axis=1) > 0)
    assert set(changed) <= {37, 38, 43, 44}


def _pose_change(landmarks: np.ndarray, size: tuple[int, int], **motion) -> np.ndarray:
    before, after = head_pose(landmarks, size), head_pose(rotate_head(landmarks, **motion), size)
    return np.array([after.yaw - before.yaw, after.pitch - before.pitch, after.roll - before.roll])


@pytest.mark.parametrize("motion, expected, tolerance", [
    ({"yaw": 5.0}, (5, 0, 0), (2, 1.5, 1)), ({"yaw": -5.0}, (-5, 0, 0), (2, 1.5, 1)),
    ({"pitch": 5.0}, (0, 5, 0), (1.5, 3, 1)), ({"pitch": -5.0}, (0, -5, 0), (1.5, 3, 1)),
    ({"roll": 5.0}, (0, 0, 5), (1.5, 1.5, 1)), ({"roll": -5.0}, (0, 0, -5), (1.5, 1.5, 1)),
    ({"yaw": 4.0, "pitch": -3.0, "roll": 2.0}, (4, -3, 2), (2, 3, 1)),
])
def test_rotate_head_changes_the_measured_pose(face, motion, expected, tolerance):
    landmarks, size = face
    change = _pose_change(landmarks, size, **motion)
    assert np.all(np.abs(change - expected) <= tolerance), change
    _assert_face_layout(rotate_head(landmarks, **motion), landmarks)


def test_the_shared_portrait(portrait_landmarks):
    landmarks, size = portrait_landmarks
    for motion, axis in (({"yaw": 5.0}, 0), ({"pitch": 5.0}, 1), ({"roll": 5.0}, 2)):
        assert _pose_change(landmarks, size, **motion)[axis] == pytest.approx(5.0, abs=(2, 3, 1)[axis])
    for opening in (0.0, 0.2):
        assert inner_mouth_opening(set_mouth(landmarks, opening=opening)) == pytest.approx(opening, abs=0.01)
    assert _eye_aspect_ratio(close_eyes(landmarks, 1.0), 42) < 0.01


def test_rotate_head_geometry(face):
    landmarks, _ = face
    centre, _, width = face_frame(landmarks)
    np.testing.assert_allclose(rotate_head(landmarks), landmarks, atol=1e-9)
    scaled = rotate_head(landmarks, scale=1.1)
    np.testing.assert_allclose(scaled - centre, 1.1 * (landmarks - centre), atol=1e-9)
    shifted = rotate_head(landmarks, shift=(0.1, -0.05))
    np.testing.assert_allclose(shifted - landmarks, np.tile([0.1 * width, -0.05 * width], (68, 1)), atol=1e-9)
    # yaw to the image's right: the nose tip moves right relative to the jaw's ends
    turned = rotate_head(landmarks, yaw=10.0)
    x_axis = face_frame(landmarks)[1]
    nose_offset = lambda p: float((p[30] - (p[0] + p[16]) / 2) @ x_axis)  # noqa: E731
    assert nose_offset(turned) - nose_offset(landmarks) > 0.02 * width


def test_combined_motion_keeps_every_point(face):
    landmarks, _ = face
    moved = set_mouth(landmarks, opening=0.25, width=0.1, rounding=0.5)
    moved = close_eyes(moved, 0.7)
    moved = rotate_head(moved, yaw=-4.0, pitch=3.0, roll=-2.0, scale=0.99, shift=(0.02, -0.02))
    _assert_face_layout(moved, landmarks)


@pytest.mark.parametrize("call", [
    lambda p: set_mouth(p[:60], opening=0.1), lambda p: set_mouth(p * np.nan, opening=0.1),
    lambda p: set_mouth(p, opening=-0.1), lambda p: set_mouth(p, opening=0.1, width=-1.0),
    lambda p: set_mouth(p, opening=0.1, rounding=1.5), lambda p: close_eyes(p, 1.2),
    lambda p: close_eyes(p, (0.5, 0.5, 0.5)), lambda p: rotate_head(p, yaw=float("nan")),
    lambda p: rotate_head(p, scale=0.0), lambda p: face_frame(np.zeros((68, 2))),
])
def test_bad_input_raises_input_error(astronaut_landmarks, call):
    with pytest.raises(InputError):
        call(astronaut_landmarks[0])
