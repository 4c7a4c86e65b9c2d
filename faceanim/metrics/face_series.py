"""Per-frame face measurements of a video, each frame measured on its own (no tracking, no smoothing):
is a face found, its identity embedding, head pose and mouth opening. Used to check that an animation
keeps the identity and follows the driving motion, and by `benchmarks/warp_acceptance.py`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from ..errors import NoFaceError
from ..face import FaceEmbedder, head_pose, inner_mouth_opening, largest_face


@dataclass
class FaceSeries:
    """found (N,) bool; the rest (N, ...) with NaN where no face was found."""

    found: np.ndarray
    embeddings: np.ndarray      # (N, 128) dlib identity embeddings
    yaw: np.ndarray             # (N,) degrees
    pitch: np.ndarray
    roll: np.ndarray
    mouth_opening: np.ndarray   # (N,) inner-lip distance / face width

    def identity_distance(self, reference: np.ndarray) -> np.ndarray:
        """(N,) Euclidean embedding distance of each frame's face to `reference` (NaN without a face)."""
        return np.linalg.norm(self.embeddings - np.asarray(reference)[None], axis=1)


def face_series(frames: Iterable[np.ndarray], *, embeddings: bool = True) -> FaceSeries:
    embedder = FaceEmbedder() if embeddings else None
    rows = []
    for frame in frames:
        try:
            _, landmarks = largest_face(frame)
        except NoFaceError:
            rows.append(None)
            continue
        pose = crop_head_pose(landmarks)
        embedding = embedder(frame, landmarks) if embedder else np.full(128, np.nan)
        rows.append((embedding, pose.yaw, pose.pitch, pose.roll, inner_mouth_opening(landmarks)))
    found = np.array([row is not None for row in rows], dtype=bool)
    blank = (np.full(128, np.nan), np.nan, np.nan, np.nan, np.nan)
    columns = list(zip(*[row if row is not None else blank for row in rows])) or [[]] * 5
    return FaceSeries(found, np.asarray(columns[0], dtype=np.float64).reshape(-1, 128),
                      *[np.asarray(c, dtype=np.float64) for c in columns[1:]])


def crop_head_pose(landmarks: np.ndarray):
    """Head pose as a face-crop model sees it: the landmarks centred in a square frame twice the face
    width (the framing of a VoxCeleb crop), so the result does not depend on where the face sits in the
    frame or how large it is (a full-frame estimate folds an off-centre face's viewing angle into yaw
    and pitch)."""
    from ..face.masks import face_width

    side = 2.0 * max(face_width(landmarks), 1.0)
    centred = landmarks - landmarks[27:36].mean(axis=0) + side / 2
    return head_pose(centred, (side, side))


def lagged_correlation(a: np.ndarray, b: np.ndarray, max_lag: int = 0) -> tuple[float, int]:
    """The largest Pearson correlation of a[t] with b[t + lag] over |lag| <= max_lag, ignoring NaNs,
    and that lag."""
    best = (-np.inf, 0)
    for lag in range(-max_lag, max_lag + 1):
        x = a[max(0, -lag): len(a) - max(0, lag)]
        y = b[max(0, lag): len(b) - max(0, -lag)]
        n = min(len(x), len(y))
        x, y = x[:n], y[:n]
        keep = np.isfinite(x) & np.isfinite(y)
        if keep.sum() < 3 or np.std(x[keep]) == 0 or np.std(y[keep]) == 0:
            continue
        r = float(np.corrcoef(x[keep], y[keep])[0, 1])
        best = max(best, (r, lag))
    return best
