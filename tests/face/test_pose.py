"""Head pose: known rotations of a synthetic head, a real frontal face, an in-plane rotation, mirroring."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from faceanim.face import head_pose, largest_face
from faceanim.face.pose import MODEL_3D, POSE_POINTS

# Landmark order after a left-right mirror: each point's counterpart on the other side of the face.
MIRROR = (list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30, 35, 34, 33, 32, 31]
          + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
          + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55] + [64, 63, 62, 61, 60, 67, 66, 65])


def _rotation(axis: int, degrees: float) -> np.ndarray:
    """A right-handed rotation about camera axis 0 (x, right), 1 (y, down) or 2 (z, forward)."""
    vector = np.zeros(3)
    vector[axis] = np.radians(degrees)
    return cv2.Rodrigues(vector)[0]


def _projected_head(turn: np.ndarray, size=(480, 640)) -> np.ndarray:
    """68 landmarks (the pose points filled in) of the generic head turned by `turn`, 600 mm away."""
    points = MODEL_3D @ turn.T + [0.0, 0.0, 600.0]
    height, width = size
    image = points[:, :2] / points[:, 2:] * width + [width / 2, height / 2]
    landmarks = np.repeat(image.mean(axis=0, keepdims=True), 68, axis=0)
    landmarks[POSE_POINTS] = image
    return landmarks


def test_each_angle_is_recovered_with_its_documented_sign():
    # Turning the head about the camera's vertical axis so that the nose moves right is yaw > 0.
    nose_right = _projected_head(_rotation(1, -25))
    assert nose_right[30, 0] > nose_right[27, 0] + 3
    assert head_pose(nose_right, (480, 640)).yaw == pytest.approx(25, abs=0.5)
    # The nose moving up (chin raised) is pitch > 0.
    nose_up = _projected_head(_rotation(0, -15))
    frontal = _projected_head(np.eye(3))
    assert nose_up[30, 1] - nose_up[36, 1] < frontal[30, 1] - frontal[36, 1] - 3
    assert head_pose(nose_up, (480, 640)).pitch == pytest.approx(15, abs=0.5)
    # Counter-clockwise on screen (the right eye corner rises) is roll > 0.
    tilted = _projected_head(_rotation(2, -20))
    assert tilted[45, 1] < tilted[36, 1]
    assert head_pose(tilted, (480, 640)).roll == pytest.approx(20, abs=0.5)


def test_frontal_face(astronaut_face, astronaut):
    pose = head_pose(astronaut_face[1], astronaut.shape[:2])
    assert abs(pose.yaw) < 15 and abs(pose.roll) < 10 and abs(pose.pitch) < 20


@pytest.mark.parametrize("angle", [20, -20])
def test_rotated_image_gives_roll(astronaut, astronaut_face, angle):
    before = head_pose(astronaut_face[1], astronaut.shape[:2])
    center = astronaut_face[0].center
    turned = cv2.warpAffine(astronaut, cv2.getRotationMatrix2D(center, angle, 1.0), (512, 512),
                            borderMode=cv2.BORDER_REFLECT)
    _, landmarks = largest_face(turned)
    after = head_pose(landmarks, turned.shape[:2])
    assert after.roll - before.roll == pytest.approx(angle, abs=5)


def test_mirroring_flips_yaw_and_roll_keeps_pitch(astronaut_face, astronaut):
    _, landmarks = astronaut_face
    turned = landmarks.astype(np.float64).copy()
    turned[[30, 31, 32, 33, 34, 35], 0] += 6  # nose shifted right: a clearly non-zero yaw to flip
    mirrored = turned.copy()
    mirrored[:, 0] = (astronaut.shape[1] - 1) - mirrored[:, 0]
    mirrored = mirrored[MIRROR]
    pose, flipped = head_pose(turned, (512, 512)), head_pose(mirrored, (512, 512))
    assert pose.yaw > 5
    assert flipped.yaw == pytest.approx(-pose.yaw, abs=0.5)
    assert flipped.roll == pytest.approx(-pose.roll, abs=0.5)
    assert flipped.pitch == pytest.approx(pose.pitch, abs=0.5)


def test_degenerate_landmarks_are_an_input_error():
    from faceanim.errors import InputError

    with pytest.raises(InputError, match="degenerate"):
        head_pose(np.zeros((68, 2)), (100, 100))
    with pytest.raises(InputError, match="68"):
        head_pose(np.zeros((5, 2)), (100, 100))
