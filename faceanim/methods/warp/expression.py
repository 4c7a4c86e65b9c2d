"""Expressions and head motion as landmark geometry: open/shape the mouth, close the eyes, turn the head.

Pure geometry on 68 iBUG landmarks ((68, 2) float64 image pixels). Mouth and eyes are moved in the
face's own frame (`face_frame`: centre, the eye line as x axis, face width as unit) and the head is
turned from its own fitted 3D pose, so everything works for any face size, position and in-plane
rotation. The functions return new arrays and never reorder points.
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from ...errors import InputError
from ...face import as_landmarks, head_pose
from ...face.landmarks import STABLE_POINTS, eye_axis
from ...face.masks import INNER_LIP_PAIRS
from ...face.pose import MODEL_3D, POSE_POINTS

# Points that expressions hardly move (eye corners, nose): the frame's centre.
_EYELID_PAIRS = (((37, 41), (38, 40)), ((43, 47), (44, 46)))  # (upper, lower), image-left eye first
_LIPS = slice(48, 68)
_UPPER_OUTER_LIP = slice(49, 54)
_LOWER_OUTER_LIP = slice(55, 60)

# How far each point follows the jaw when the mouth opens (1 = as the lower inner lip): the chin and
# lower lip fully, the jaw outline less towards the ears, the mouth corners about half; the upper lip
# rises a little. Points not listed stay.
_JAW_FOLLOW = {8: 1.0, 7: 0.9, 9: 0.9, 6: 0.7, 10: 0.7, 5: 0.4, 11: 0.4,
               57: 1.0, 56: 0.9, 58: 0.9, 55: 0.7, 59: 0.7, 48: 0.45, 54: 0.45, 60: 0.45, 64: 0.45,
               66: 1.0, 65: 0.95, 67: 0.95,
               61: -0.08, 62: -0.08, 63: -0.08, 50: -0.06, 51: -0.06, 52: -0.06, 49: -0.04, 53: -0.04}
_JAW_WEIGHTS = np.zeros(68)
_JAW_WEIGHTS[list(_JAW_FOLLOW)] = list(_JAW_FOLLOW.values())

ROUND_NARROWING = 0.25  # a fully rounded mouth is this much narrower
ROUND_FULLNESS = 0.2    # ... and each outer lip this much (of its thickness) fuller: lips pushed forward

# Depth of each landmark towards the camera, in mm in front of the outer eye corners, for a generic
# frontal adult face: faceanim.face.pose's 3D face extended to all 68 points (its 11 points keep its
# values: nose tip 35 mm, nose bridge 15, inner eye corners 8, mouth corners 10, under the nose 20;
# the rest are our own estimates). The jaw outline is furthest back, at the cheeks' silhouette.
_DEPTH_MM = np.array([
    -50, -44, -36, -27, -17, -7, 3, 10, 12, 10, 3, -7, -17, -27, -36, -44, -50,   # jaw 0-16
    -8, 2, 9, 13, 14, 14, 13, 9, 2, -8,                                           # brows 17-26
    15, 22, 29, 35, 15, 18, 20, 18, 15,                                           # nose 27-35
    0, 6, 7, 8, 7, 5, 8, 7, 6, 0, 5, 7,                                           # eyes 36-47
    10, 17, 22, 24, 22, 17, 10, 16, 19, 20, 19, 16,                               # outer lips 48-59
    11, 19, 21, 19, 11, 18, 19, 18], dtype=np.float64)                            # inner lips 60-67
# pose's model is centred: where its z axis (away from the camera) puts the outer eye corners
_MODEL_Z_OF_EYE_CORNERS = float(np.mean(MODEL_3D[:, 2] + _DEPTH_MM[POSE_POINTS]))
# Outer eye corners 90 mm apart (pose's model) are 0.645 of the jaw width (points 0-16) on frontal
# dlib landmarks (measured on the astronaut and the shared portrait): a face is 140 mm wide.
FACE_WIDTH_MM = 140.0
PIVOT_MM = 70.0    # the head turns about a point this far behind the eye corners (towards the neck)
_FAR_CAMERA = 100  # focal length in face widths for the weak-perspective fit
PROBE_DEGREES = 4.0         # turn used to measure head_pose's response
_CALIBRATION_FRAMING = 4.0  # image side in face widths that head_pose is calibrated at (a head-and-shoulders photo)


def face_frame(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(centre (2,), unit x axis (2,), face width): the centroid of the eye corners and nose, the
    direction from the image-left eye to the other, and the jaw width (points 0-16) in pixels.
    The frame's y axis is the x axis turned 90 degrees towards the chin."""
    points = as_landmarks(landmarks)
    width = float(np.linalg.norm(points[16] - points[0]))
    if np.linalg.norm(points[42:48].mean(axis=0) - points[36:42].mean(axis=0)) < 1e-6 or width < 1e-6:
        raise InputError(None, "landmarks: degenerate face (eyes or jaw ends coincide)")
    return points[STABLE_POINTS].mean(axis=0), eye_axis(points), width


def set_mouth(landmarks: np.ndarray, *, opening: float, width: float = 0.0, rounding: float = 0.0) -> np.ndarray:
    """Landmarks whose `inner_mouth_opening` is `opening` (below the source's own opening, the mouth
    closes to it), with the mouth `width` x wider (corner to corner; -0.1 = 10 % narrower) and lips
    rounded by `rounding` (0..1: narrower and fuller, pushed forward).

    Opening drops the jaw along the face's vertical axis: lower lip and chin fully, the jaw outline
    less towards the ears, the mouth corners half, the upper lip rises slightly. Closing shrinks the
    inner lips' gap proportionally and raises the jaw to match."""
    if not (np.isfinite(opening) and opening >= 0):
        raise InputError(None, f"mouth opening must be >= 0, got {opening}")
    if not (np.isfinite(width) and width > -1):
        raise InputError(None, f"mouth width change must be > -1, got {width}")
    if not (np.isfinite(rounding) and 0 <= rounding <= 1):
        raise InputError(None, f"lip rounding must be in [0, 1], got {rounding}")
    points = as_landmarks(landmarks)
    frame = face_frame(points)
    face_width = frame[2]
    local = _shape_lips(_to_local(points, frame), width, rounding)
    return _to_image(_open_jaw(local, opening * face_width), frame)


def close_eyes(landmarks: np.ndarray, closure: float | tuple[float, float]) -> np.ndarray:
    """Landmarks with the upper eyelids (37, 38 / 43, 44) moved `closure` of the way to the lower ones
    (41, 40 / 47, 46): 0 = as they are, 1 = shut. A pair gives (image-left eye, image-right eye)."""
    amounts = (closure, closure) if np.ndim(closure) == 0 else tuple(closure)
    if len(amounts) != 2 or not all(np.isfinite(a) and 0 <= a <= 1 for a in amounts):
        raise InputError(None, f"eye closure must be in [0, 1] (one value or two), got {closure}")
    points = as_landmarks(landmarks).copy()
    for amount, eyelids in zip(amounts, _EYELID_PAIRS):
        for upper, lower in eyelids:
            points[upper] += amount * (points[lower] - points[upper])
    return points


def rotate_head(landmarks: np.ndarray, *, yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0,
                scale: float = 1.0, shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Landmarks of the head turned by `yaw` and `pitch` (degrees, about the camera's axes, signs as
    `faceanim.face.pose`), then rolled by `roll` degrees (counter-clockwise in the image), scaled by
    `scale` about the face centre and shifted by `shift` face widths (image x, y).

    Yaw and pitch are a pseudo-3D rotation: the head's pose is fitted to `faceanim.face.pose`'s 3D face
    (weak perspective), each landmark gets its depth in the head's own frame from the `_DEPTH_MM`
    table (which extends that 3D face to all 68 points), turns about a pivot PIVOT_MM behind the eye
    corners and is projected back; what the 3D face does not explain (this face's own shape) turns
    with the head. The angles are head_pose's: the turn is scaled so that `head_pose` measures the
    requested change (see `_as_measured`)."""
    values = np.array([yaw, pitch, roll, scale, *shift], dtype=np.float64)
    if not np.isfinite(values).all() or scale <= 0:
        raise InputError(None, f"head motion must be finite with scale > 0, got {values.tolist()}")
    points = as_landmarks(landmarks)
    centre, _, face_width = face_frame(points)
    turn = _head_turner(points, face_width)
    turned = turn(*_as_measured(turn, yaw, pitch, face_width)) if yaw or pitch else points
    return centre + scale * (turned - centre) @ _roll_matrix(roll).T + np.asarray(shift) * face_width


def _head_turner(points: np.ndarray, face_width: float) -> Callable[[float, float], np.ndarray]:
    """turn(yaw, pitch) -> the landmarks with the head turned (pseudo-3D, degrees about the camera axes)."""
    rotation, pixels_per_mm, origin = _fit_head(points, face_width)
    pivot = np.array([0.0, 0.0, _MODEL_Z_OF_EYE_CORNERS + PIVOT_MM])
    head = _head_coordinates(points, rotation, pixels_per_mm, origin) - pivot
    pivot_in_camera = rotation @ pivot
    facing = -rotation[:, 2]  # the face's "towards the camera" axis, in camera coordinates
    head_yaw = float(np.degrees(np.arctan2(facing[0], -facing[2])))

    def turn(yaw: float, pitch: float) -> np.ndarray:
        camera = head @ (_turn_matrix(yaw, pitch, head_yaw) @ rotation).T + pivot_in_camera
        return origin + pixels_per_mm * camera[:, :2]

    return turn


def _as_measured(turn: Callable[[float, float], np.ndarray], yaw: float, pitch: float,
                 face_width: float) -> tuple[float, float]:
    """The geometric (yaw, pitch) turn that `head_pose` measures as a change of (yaw, pitch).

    head_pose fits a generic 3D face; where a face differs from it, its answer to a geometric turn is
    0.5 to 2 times the angle (the astronaut's pitch: 1.9 times; the 1080p test face's yaw: 1.5 times).
    That response, a 2x2 gain from central differences of PROBE_DEGREES measured in an image
    _CALIBRATION_FRAMING face widths wide, is undone; gains are kept within [1/2, 2]."""
    framing = (round(_CALIBRATION_FRAMING * face_width),) * 2
    gains = np.empty((2, 2))
    for column, (probe_yaw, probe_pitch) in enumerate(((PROBE_DEGREES, 0.0), (0.0, PROBE_DEGREES))):
        ahead = head_pose(turn(probe_yaw, probe_pitch), framing)
        behind = head_pose(turn(-probe_yaw, -probe_pitch), framing)
        gains[:, column] = [ahead.yaw - behind.yaw, ahead.pitch - behind.pitch]
    left, singular, right = np.linalg.svd(gains / (2 * PROBE_DEGREES))
    inverse = right.T @ np.diag(1.0 / np.clip(singular, 0.5, 2.0)) @ left.T
    applied = inverse @ np.array([yaw, pitch])
    return float(applied[0]), float(applied[1])


def _fit_head(points: np.ndarray, face_width: float) -> tuple[np.ndarray, float, np.ndarray]:
    """The head's rotation (model -> camera, OpenCV axes: x right, y down, z away from the camera),
    pixels per mm and the image position of the model's origin, by PnP with a far camera (weak
    perspective). A failed fit (hardly a face) counts as frontal, sized by the face width."""
    image_points = points[POSE_POINTS]
    principal = image_points.mean(axis=0)
    focal = _FAR_CAMERA * face_width
    camera = np.array([[focal, 0, principal[0]], [0, focal, principal[1]], [0, 0, 1]])
    ok, rvec, tvec = cv2.solvePnP(MODEL_3D, image_points, camera, None, flags=cv2.SOLVEPNP_EPNP)
    if ok:
        rvec, tvec = cv2.solvePnPRefineLM(MODEL_3D, image_points, camera, None, rvec, tvec)
    distance = float(tvec[2, 0]) if ok else 0.0
    if not ok or distance <= 0:
        return np.eye(3), face_width / FACE_WIDTH_MM, principal
    rotation, _ = cv2.Rodrigues(rvec)
    return rotation, focal / distance, principal + focal * tvec[:2, 0] / distance


def _head_coordinates(points: np.ndarray, rotation: np.ndarray, pixels_per_mm: float,
                      origin: np.ndarray) -> np.ndarray:
    """(68, 3) points in the model's frame (mm) that project onto `points` under the fitted pose and
    whose model-frame depth is the generic one."""
    depth = _MODEL_Z_OF_EYE_CORNERS - _DEPTH_MM
    in_camera = (points - origin) / pixels_per_mm - depth[:, None] * rotation[:2, 2]
    planar = np.linalg.solve(rotation[:2, :2], in_camera.T).T  # rotation[:2, :2] is regular short of 90 degrees
    return np.column_stack([planar, depth])


def _to_local(points: np.ndarray, frame: tuple[np.ndarray, np.ndarray, float]) -> np.ndarray:
    """Image pixels -> the face frame (pixels along the face's x axis and its chin-ward y axis)."""
    centre, x_axis, _ = frame
    axes = np.array([x_axis, [-x_axis[1], x_axis[0]]])
    return (points - centre) @ axes.T


def _to_image(local: np.ndarray, frame: tuple[np.ndarray, np.ndarray, float]) -> np.ndarray:
    centre, x_axis, _ = frame
    axes = np.array([x_axis, [-x_axis[1], x_axis[0]]])
    return local @ axes + centre


def _shape_lips(local: np.ndarray, width: float, rounding: float) -> np.ndarray:
    """Stretch the lips about the mouth's centre along the face's x axis; rounding also narrows them
    and moves the outer lips away from the inner ones (a protruded lip shows more of itself)."""
    local = local.copy()
    centre_x = (local[48, 0] + local[54, 0]) / 2
    factor = (1.0 + width) * (1.0 - ROUND_NARROWING * rounding)
    local[_LIPS, 0] = centre_x + (local[_LIPS, 0] - centre_x) * factor
    upper_thickness = max(local[62, 1] - local[51, 1], 0.0)
    lower_thickness = max(local[57, 1] - local[66, 1], 0.0)
    local[_UPPER_OUTER_LIP, 1] -= ROUND_FULLNESS * rounding * upper_thickness
    local[_LOWER_OUTER_LIP, 1] += ROUND_FULLNESS * rounding * lower_thickness
    return local


def _inner_gap(local: np.ndarray) -> float:
    """The mean distance between facing inner lip points, in pixels."""
    return float(np.mean([np.linalg.norm(local[lower] - local[upper]) for upper, lower in INNER_LIP_PAIRS]))


def _open_jaw(local: np.ndarray, target_gap: float) -> np.ndarray:
    """`local` with the inner lips' mean gap set to `target_gap` pixels."""
    current = _inner_gap(local)
    if target_gap <= current:
        return _close_to(local, target_gap / current if current > 0 else 1.0)
    low, high = 0.0, 2.0 * (target_gap + current) + 1.0  # the gap grows by >= 1 pixel per pixel of drop
    for _ in range(50):  # bisection: the gap is a convex function of the drop, below target at 0
        middle = (low + high) / 2
        low, high = (middle, high) if _inner_gap(_drop_jaw(local, middle)) < target_gap else (low, middle)
    return _drop_jaw(local, (low + high) / 2)


def _drop_jaw(local: np.ndarray, drop: float) -> np.ndarray:
    moved = local.copy()
    moved[:, 1] += drop * _JAW_WEIGHTS
    return moved


def _close_to(local: np.ndarray, share: float) -> np.ndarray:
    """Shrink each inner lip pair's offset to `share` of itself (the lower lip moves), and move the
    rest of the lower lip and the jaw up by the lower inner lip's mean rise, as they follow it."""
    moved = local.copy()
    rises = []
    for upper, lower in INNER_LIP_PAIRS:
        target = local[upper] + share * (local[lower] - local[upper])
        rises.append(target[1] - local[lower, 1])
        moved[lower] = target
    followers = [i for i in _JAW_FOLLOW if _JAW_FOLLOW[i] > 0 and i not in (65, 66, 67)]
    moved[followers, 1] += np.mean(rises) * _JAW_WEIGHTS[followers]
    return moved


def _turn_matrix(yaw: float, pitch: float, head_yaw: float = 0.0) -> np.ndarray:
    """A turn on OpenCV column vectors (x right, y down, z away from the camera) that changes a head
    facing `head_yaw` by `pitch` about its own left-right axis, then by `yaw` about the camera's
    vertical axis (head_pose's order, so neither changes its roll): yaw > 0 moves what is in front of
    the pivot to the right, pitch > 0 moves it up. Degrees."""
    def about_vertical(degrees: float) -> np.ndarray:
        a = np.radians(degrees)
        return np.array([[np.cos(a), 0, -np.sin(a)], [0, 1, 0], [np.sin(a), 0, np.cos(a)]])

    b = np.radians(pitch)
    about_left_right = np.array([[1, 0, 0], [0, np.cos(b), np.sin(b)], [0, -np.sin(b), np.cos(b)]])
    return about_vertical(yaw + head_yaw) @ about_left_right @ about_vertical(-head_yaw)


def _roll_matrix(roll: float) -> np.ndarray:
    """Counter-clockwise on screen (y down) for roll > 0, on row vectors via `points @ matrix.T`."""
    c = np.radians(roll)
    return np.array([[np.cos(c), np.sin(c)], [-np.sin(c), np.cos(c)]])
