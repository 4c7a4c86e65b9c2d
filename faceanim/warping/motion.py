"""Transfer of driving motion onto a source (FOMM Sec. 3.4, "relative motion transfer").

Absolute: the source takes the driving keypoints as they are. Relative: the source keypoints move by the
driving keypoints' change since an initial driving frame,
    p = p^S + s (p^D - p^D_initial),   J = J^D (J^D_initial)^-1 J^S,
where s = sqrt(area(p^S)) / sqrt(area(p^D_initial)) with `adapt_scale` (convex-hull areas) and 1
otherwise. `find_best_frame` picks the driving frame whose face is most like the source's, the best
initial frame for relative transfer.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import torch
from ..errors import NoFaceError
from ..face.landmarks import convex_hull_area
from .keypoints import Keypoints


def movement_scale(kp_source: Keypoints, kp_initial: Keypoints) -> torch.Tensor:
    """s = sqrt(hull area of the source keypoints / hull area of the initial driving ones), per batch
    element: shape (B, 1, 1), B the larger of the two batches."""
    source = [convex_hull_area(v) for v in kp_source.value.detach().cpu().numpy()]
    initial = [convex_hull_area(v) for v in kp_initial.value.detach().cpu().numpy()]
    scale = np.sqrt(np.array(source)) / np.sqrt(np.array(initial))
    return torch.as_tensor(scale, dtype=kp_source.value.dtype, device=kp_source.value.device).view(-1, 1, 1)


def normalize_keypoints(kp_source: Keypoints, kp_driving: Keypoints, kp_initial: Keypoints, *,
                        relative: bool = True, relative_jacobian: bool | None = None,
                        adapt_scale: bool = False) -> Keypoints:
    """The keypoints the source should take for this driving frame (official `normalize_kp`).

    relative_jacobian defaults to `relative` (as the official demo). adapt_scale only applies to
    relative motion. Batches broadcast: a batch-1 source or initial frame serves every driving frame."""
    if not relative:
        return Keypoints(kp_driving.value, kp_driving.jacobian)
    scale = movement_scale(kp_source, kp_initial) if adapt_scale else 1.0
    value = (kp_driving.value - kp_initial.value) * scale + kp_source.value
    jacobian = kp_driving.jacobian
    use_jacobian = relative if relative_jacobian is None else relative_jacobian
    if use_jacobian and jacobian is not None:
        change = torch.matmul(kp_driving.jacobian, torch.inverse(kp_initial.jacobian))
        jacobian = torch.matmul(change, kp_source.jacobian)
    return Keypoints(value, jacobian)


def _normalised_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """Landmarks centred on their mean, x/y divided by sqrt(hull area): invariant to position and size."""
    points = np.asarray(landmarks, dtype=np.float64)
    points = points - points.mean(axis=0, keepdims=True)
    points[:, :2] /= np.sqrt(convex_hull_area(points[:, :2]))
    return points


def find_best_frame(source_landmarks: np.ndarray, driving_landmarks: Iterable[np.ndarray | None]) -> int:
    """Index of the driving frame whose landmarks (e.g. dlib's 68 points, (N, 2) or (N, 3)) are closest to
    the source's after removing position and scale; frames given as None (no face) are skipped.

    Raises NoFaceError when no driving frame has landmarks."""
    source = _normalised_landmarks(source_landmarks)
    best_index, best_distance = None, np.inf
    for index, landmarks in enumerate(driving_landmarks):
        if landmarks is None:
            continue
        distance = float(((source - _normalised_landmarks(landmarks)) ** 2).sum())
        if distance < best_distance:
            best_index, best_distance = index, distance
    if best_index is None:
        raise NoFaceError(None, "no driving frame has face landmarks to compare with the source")
    return best_index
