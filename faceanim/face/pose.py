"""Head pose (yaw, pitch, roll in degrees) from 68 landmarks, by PnP against a generic 3D face.

Sign convention, as seen in the image (the viewer's point of view):
  yaw   > 0: the face turns towards the image's right (the nose moves right; the person turns to their left);
  pitch > 0: the face turns up (the nose moves up, chin raised);
  roll  > 0: the head leans counter-clockwise in the image (the same sense as a positive angle of
             `cv2.getRotationMatrix2D`; the person tilts towards their right shoulder).
Mirroring an image left-right flips the sign of yaw and roll and keeps pitch.
A frontal, upright face looking into the camera is (0, 0, 0).
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from ..errors import InputError
from ._image import as_landmarks

# A generic adult head in millimetres, for the landmarks that move least with expression (the chin,
# which drops when the mouth opens, is left out). Axes as the camera sees a frontal face: x to the image
# right, y down, z away from the camera; origin between the outer eye corners. Values are rough
# anthropometric averages (our own estimates, checked against dlib landmarks of frontal faces): outer
# eye corners 90 mm apart, the nose tip 35 mm below and 35 mm in front of them, the mouth corners
# 52 mm apart and 60 mm below.
_MODEL_POINTS = {
    36: (-45.0, 0.0, 0.0), 39: (-16.0, 1.0, -8.0), 42: (16.0, 1.0, -8.0), 45: (45.0, 0.0, 0.0),
    27: (0.0, -3.0, -15.0), 30: (0.0, 35.0, -35.0), 33: (0.0, 45.0, -20.0),
    31: (-13.0, 42.0, -15.0), 35: (13.0, 42.0, -15.0),
    48: (-26.0, 60.0, -10.0), 54: (26.0, 60.0, -10.0),
}
POSE_POINTS = list(_MODEL_POINTS)
_MODEL = np.array([_MODEL_POINTS[i] for i in POSE_POINTS], dtype=np.float64)
# Centred, so that the principal point we put on the landmarks' centroid is where the model's origin projects.
MODEL_3D = _MODEL - _MODEL.mean(axis=0)


@dataclasses.dataclass
class HeadPose:
    """Head rotation in degrees (see the module docstring for the signs)."""

    yaw: float
    pitch: float
    roll: float


def camera_matrix(image_size: tuple[int, int], principal_point: tuple[float, float] | None = None) -> np.ndarray:
    """A pinhole camera for an image of (h, w): focal length = image width, principal point in the
    middle unless given."""
    height, width = image_size
    cx, cy = principal_point if principal_point is not None else ((width - 1) / 2, (height - 1) / 2)
    return np.array([[width, 0, cx], [0, width, cy], [0, 0, 1]], dtype=np.float64)


def _angles(rotation: np.ndarray) -> HeadPose:
    """Yaw and pitch from where the face points, roll from the turn that remains about that axis."""
    forward = -rotation[:, 2]  # the face's own "towards the camera" axis, in camera coordinates
    yaw = np.arctan2(forward[0], -forward[2])
    pitch = np.arctan2(-forward[1], np.hypot(forward[0], forward[2]))
    # Undo yaw then pitch; what is left is a rotation about the camera axis.
    c_y, s_y, c_p, s_p = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    undo_yaw = np.array([[c_y, 0, s_y], [0, 1, 0], [-s_y, 0, c_y]])
    undo_pitch = np.array([[1, 0, 0], [0, c_p, -s_p], [0, s_p, c_p]])
    rest = undo_pitch @ undo_yaw @ rotation
    roll = -np.arctan2(rest[1, 0], rest[0, 0])  # camera z rotation is clockwise on screen; ours is not
    return HeadPose(float(np.degrees(yaw)), float(np.degrees(pitch)), float(np.degrees(roll)))


def head_pose(landmarks: np.ndarray, image_size: tuple[int, int]) -> HeadPose:
    """The head's yaw, pitch and roll (degrees) from its 68 landmarks in an image of size (h, w).

    The camera is taken to look straight at the face (principal point on the face, focal length = image
    width): the angles say how the face appears, wherever it sits in the frame and whether or not the
    image is a crop (crops do not keep the principal point, so the frame centre would bias pitch and yaw).
    """
    image_points = as_landmarks(landmarks)[POSE_POINTS]
    center = image_points.mean(axis=0)
    if np.ptp(image_points, axis=0).min() < 1e-3:
        raise InputError(None, "head_pose: degenerate landmarks (the face points lie on a line or a point)")
    camera = camera_matrix(image_size, (float(center[0]), float(center[1])))
    ok, rvec, tvec = cv2.solvePnP(MODEL_3D, image_points, camera, None, flags=cv2.SOLVEPNP_EPNP)
    if ok:  # EPnP gives a good start; Levenberg-Marquardt refines it
        rvec, tvec = cv2.solvePnPRefineLM(MODEL_3D, image_points, camera, None, rvec, tvec)
    rotation, _ = cv2.Rodrigues(rvec)
    return _angles(rotation)
