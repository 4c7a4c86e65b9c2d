"""Target landmarks for the warp engine: driving landmarks -> source motion (reenact), speech -> motion (talk).

Reenactment follows FOMM's relative motion on 68 landmarks. Each driving frame is split into an
in-plane head pose change (roll, scale, translation: a similarity fitted on points that expressions
barely move, eye corners and nose) and the rest, the landmark displacement once that pose change is
undone: expression, and out-of-plane turns (yaw, pitch), which move the nose and eyes against the
outline. That displacement is added to the source landmarks in image axes, as FOMM adds keypoint
displacements (so a turn of the driving head is a turn about the camera's axes for the source too,
whatever the source face's tilt), through a local linear map per landmark from the first driving face
to the source face: fitted on the landmark's neighbours and pulled towards the plain face-size ratio,
it scales each region's motion to the source's own proportions (without it, the outline of a turning
driving head, added to a wider source face, cuts into the cheek). The pose change is then applied as a
similarity about the source face's centre. Finally the mouth opening,
the expression that matters most to a viewer, is set exactly: the source's opening plus the driving
face's change of opening, both measured as inner-lip gap / face width (head turns leak into the
inner-lip displacement, not into this face-normalised measure).
"""
from __future__ import annotations

import numpy as np

from ...face import as_landmarks, inner_mouth_opening
from ...face.landmarks import convex_hull_area, eye_axis
from ...face.masks import INNER_LIP_PAIRS, face_width
from .expression import set_mouth

RIGID = np.array([27, 28, 29, 30, 31, 33, 35, 36, 39, 42, 45])   # nose bridge and base, eye corners
LID_PAIRS = [(37, 41), (38, 40), (43, 47), (44, 46)]              # upper / lower eyelid
MOUTH = np.arange(48, 68)


NEIGHBOURS = 8          # landmarks each local driving -> source map is fitted on
PULL = 0.5              # weight pulling each local map towards the prior (in units of face size^2)


def local_maps(driving: np.ndarray, source: np.ndarray, prior: np.ndarray, neighbours: int = NEIGHBOURS,
               pull: float = PULL) -> np.ndarray:
    """(68, 2, 2) linear maps J_k with J_k (d_j - d_k) ~ s_j - s_k over the `neighbours` nearest landmarks
    j of each landmark k (driving d, source s), regularised towards `prior` (2, 2):
    J_k = argmin sum_j |J (d_j - d_k) - (s_j - s_k)|^2 + pull * size^2 |J - prior|^2."""
    size = float(np.linalg.norm(driving[45] - driving[36]))   # outer eye corners: a face-size unit
    nearest = np.argsort(np.linalg.norm(driving[:, None] - driving[None], axis=2), axis=1)[:, 1:neighbours + 1]
    d_off = driving[nearest] - driving[:, None]                 # (68, n, 2)
    s_off = source[nearest] - source[:, None]
    reg = pull * size ** 2
    gram = np.einsum("kni,knj->kij", d_off, d_off) + reg * np.eye(2)
    cross = np.einsum("kni,knj->kij", s_off, d_off) + reg * prior
    return cross @ np.linalg.inv(gram)


def fit_similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The (2, 3) similarity (rotation, uniform scale, translation) mapping `source` points onto
    `target` points in the least-squares sense (Umeyama, no reflection)."""
    mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
    s, t = source - mu_s, target - mu_t
    u, sigma, vt = np.linalg.svd(t.T @ s / len(source))
    d = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ d @ vt
    scale = np.trace(np.diag(sigma) @ d) / max(s.var(axis=0).sum(), 1e-12)
    linear = scale * rotation
    return np.hstack([linear, (mu_t - linear @ mu_s)[:, None]])


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def invert(matrix: np.ndarray) -> np.ndarray:
    linear = np.linalg.inv(matrix[:, :2])
    return np.hstack([linear, (-linear @ matrix[:, 2])[:, None]])


def keep_gaps_open(landmarks: np.ndarray) -> np.ndarray:
    """Undo crossings (a lower lip above the upper lip, an eyelid through the other): such points meet
    at their midpoint. Measured along the face's own vertical axis, so rotated faces work."""
    out = landmarks.copy()
    across = eye_axis(landmarks)
    down = np.array([-across[1], across[0]])
    for upper, lower in [*INNER_LIP_PAIRS, *LID_PAIRS]:
        if (out[lower] - out[upper]) @ down < 0:
            out[upper] = out[lower] = (out[upper] + out[lower]) / 2
    return out


class MotionTransfer:
    """Driving landmarks -> target source landmarks (see the module docstring).

    relative=False (absolute): the target is the driving face itself, mapped into the source frame by the
    similarity aligning the first driving face to the source face (the source then takes on the driving
    face's shape). adapt_scale: motion is scaled by the ratio of face sizes measured as sqrt(hull area)
    (FOMM's adapt_movement_scale); by default by the rigid alignment's scale (eye-corner and nose
    distances), the same up to face shape. motion_limit: displacements beyond about this many source face
    widths are compressed smoothly (0 = no limit), see `_soft_limit`."""

    def __init__(self, source: np.ndarray, driving_initial: np.ndarray, *, relative: bool = True,
                 adapt_scale: bool = False, motion_limit: float = 0.1):
        self.source = as_landmarks(source, "source")
        self.initial = as_landmarks(driving_initial, "first driving frame")
        self.relative = relative
        self.align = fit_similarity(self.initial[RIGID], self.source[RIGID])   # driving_0 frame -> source frame
        self.centre = self.source[RIGID].mean(axis=0)
        self.source_opening = inner_mouth_opening(self.source)
        self.motion_limit = motion_limit * face_width(self.source)
        self.initial_opening = inner_mouth_opening(self.initial)
        # motion is carried in image axes, scaled to the source face (not rotated into it)
        self.motion_scale = float(np.sqrt(abs(np.linalg.det(self.align[:, :2]))))
        if adapt_scale:
            self.motion_scale = float(np.sqrt(convex_hull_area(self.source) / max(convex_hull_area(self.initial), 1e-9)))
        self.maps = local_maps(self.initial, self.source, self.motion_scale * np.eye(2))

    def decompose(self, driving: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """((2, 3) in-plane pose change about the source face centre, (68, 2) displacement of the source
        landmarks) for one driving frame."""
        in_plane = fit_similarity(self.initial[RIGID], driving[RIGID])
        displacement = apply(invert(in_plane), driving) - self.initial          # in the first driving frame
        displacement = np.einsum("kij,kj->ki", self.maps, displacement)
        return self._in_source(in_plane), self._soft_limit(displacement)

    def _soft_limit(self, displacement: np.ndarray) -> np.ndarray:
        """Compress displacements longer than about `motion_limit` smoothly (tanh): a driving head turned
        by 30 degrees moves the far cheek and outline by a third of the face, which a 2D warp can only
        render by crushing that side of the source face. The mouth is exempt (its opening is set exactly)."""
        if self.motion_limit <= 0:
            return displacement
        length = np.linalg.norm(displacement, axis=1, keepdims=True)
        limited = displacement * (self.motion_limit * np.tanh(length / self.motion_limit) / np.maximum(length, 1e-9))
        limited[MOUTH] = displacement[MOUTH]
        return limited

    def _in_source(self, in_plane: np.ndarray) -> np.ndarray:
        """The driving in-plane pose change as a similarity about the source face centre."""
        linear = in_plane[:, :2]
        start = self.initial[RIGID].mean(axis=0)
        shift = (apply(in_plane, start[None])[0] - start) * self.motion_scale
        return np.hstack([linear, (self.centre + shift - linear @ self.centre)[:, None]])

    def __call__(self, driving: np.ndarray) -> np.ndarray:
        """Target landmarks for one driving frame."""
        driving = as_landmarks(driving, "driving frame")
        if not self.relative:
            return keep_gaps_open(apply(self.align, driving))
        in_plane, displacement = self.decompose(driving)
        target = keep_gaps_open(apply(in_plane, self.source + displacement))
        opening = max(self.source_opening + inner_mouth_opening(driving) - self.initial_opening, 0.0)
        return set_mouth(target, opening=opening)

