"""Face metrics of an animated video: does it follow the reference's motion (AKD, head-pose error) and
keep the right identity (AED, CSIM, TL-ID, TG-ID)?

Landmarks are dlib's 68 points (`FrameView.landmarks`); identity vectors come from dlib (default) or
ArcFace IR-SE50 (`options["identity"] = "arcface"`, see `identity.py`). A frame in which a needed face is
not found is left out of the averages and counted in the `*_missing` fraction.

Identity partner (AED, CSIM): the source photo when the context has one (cross-identity reenactment:
the prediction should look like the source), else the reference frame at the same index (same-identity
reconstruction: a video scored against itself gives CSIM 1 and AED 0). With neither, every frame counts
as missing.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import InputError
from ..face import embedding_distance   # AED of one frame: the L2 distance of two identity embeddings
from .base import EvalContext, FrameView, StreamingMetric
from .face_series import crop_head_pose
from .identity import embedding_of, identity_embedder

NAN = float("nan")

# ---------------------------------------------------------------------------------------------------
# Pure functions of arrays
# ---------------------------------------------------------------------------------------------------


def keypoint_distance(pred: np.ndarray, ref: np.ndarray) -> float:
    """AKD of one frame: mean Euclidean distance in pixels between corresponding (N, 2) landmarks."""
    pred, ref = np.asarray(pred, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    return float(np.linalg.norm(pred - ref, axis=1).mean())


def keypoint_coordinate_difference(pred: np.ndarray, ref: np.ndarray) -> float:
    """AKD of one frame as FOMM's released script computes it (pose-evaluation/cmp_kp.py): the mean
    absolute difference over all x and y coordinates (not a Euclidean distance)."""
    pred, ref = np.asarray(pred, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    return float(np.abs(pred - ref).mean())


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """CSIM of one frame: cosine of the angle between two identity embeddings (NaN if one is zero)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / norms) if norms > 0 else NAN


def pose_difference(pred: Sequence[float], ref: Sequence[float]) -> np.ndarray:
    """(3,) signed yaw, pitch, roll differences in degrees, wrapped to [-180, 180)."""
    delta = np.asarray(pred, dtype=np.float64) - np.asarray(ref, dtype=np.float64)
    return (delta + 180.0) % 360.0 - 180.0


def pose_errors(delta: np.ndarray) -> tuple[float, float]:
    """(mean absolute error, root mean square error) over the three angles of one frame's difference.
    The second is DaGAN's per-frame PRMSE term sqrt((dyaw^2 + dpitch^2 + droll^2) / 3)."""
    delta = np.asarray(delta, dtype=np.float64)
    return float(np.abs(delta).mean()), float(np.sqrt((delta ** 2).mean()))


def _unit_rows(embeddings: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return embeddings / np.where(norms > 0, norms, np.nan)


def adjacent_similarity(embeddings: Sequence[np.ndarray | None]) -> float:
    """Mean cosine similarity of consecutive frames (t, t+1) that both have a face (STIT's TL-ID term);
    NaN when there is no such pair. A frame without a face breaks the chain: its neighbours are not paired."""
    pairs = [(a, b) for a, b in zip(embeddings[:-1], embeddings[1:]) if a is not None and b is not None]
    if not pairs:
        return NAN
    first, second = (_unit_rows(np.asarray(side, dtype=np.float64)) for side in zip(*pairs))
    return float(np.mean(np.sum(first * second, axis=1)))


def pairwise_similarity(embeddings: Sequence[np.ndarray | None]) -> float:
    """Mean cosine similarity over all unordered pairs of distinct frames with a face (STIT's TG-ID term);
    NaN with fewer than two faces.

    Uses sum_{i<j} u_i . u_j = (|sum_i u_i|^2 - sum_i |u_i|^2) / 2 for unit vectors u, so it needs only
    O(N) time and memory, not the N x N similarity matrix."""
    present = [e for e in embeddings if e is not None]
    count = len(present)
    if count < 2:
        return NAN
    units = _unit_rows(np.asarray(present, dtype=np.float64))
    total = units.sum(axis=0)
    pair_sum = (float(total @ total) - float(np.sum(units * units))) / 2.0
    return pair_sum / (count * (count - 1) / 2)


def relative_consistency(pred_value: float, ref_value: float) -> float:
    """STIT's normalisation: the prediction's similarity divided by the original video's (1 = as
    consistent as the original); NaN when the original's value is not positive or not known."""
    return pred_value / ref_value if np.isfinite(ref_value) and ref_value > 0 else NAN


# ---------------------------------------------------------------------------------------------------
# Streaming metrics
# ---------------------------------------------------------------------------------------------------


class _FrameAverage:
    """Mean of per-frame values over frames that had one, and the fraction of frames that did not."""

    def __init__(self) -> None:
        self.values: dict[str, list[float]] = {}
        self.frames = 0
        self.missing = 0

    def add(self, values: dict[str, float] | None) -> None:
        self.frames += 1
        if values is None:
            self.missing += 1
            return
        for key, value in values.items():
            self.values.setdefault(key, []).append(value)

    def mean(self, key: str) -> float:
        values = self.values.get(key)
        return float(np.mean(values)) if values else NAN

    def missing_fraction(self) -> float:
        return self.missing / self.frames if self.frames else NAN


class AKDMetric(StreamingMetric):
    """Average Keypoint Distance (FOMM, Siarohin et al. 2019; protocol of AliaksandrSiarohin/pose-evaluation).

    Per frame: the mean Euclidean distance in pixels between the 68 landmarks of the prediction and of
    the reference frame. Landmarks are dlib's here (FOMM used face-alignment's), so values are comparable
    between methods scored by faceanim, not with published tables. `akd_fomm` is the same comparison
    with the released script's formula (mean absolute x/y coordinate difference). Frames where either
    face is not found are left out; `akd_missing` is their fraction. Both videos must have one frame size."""

    name = "akd"
    needs = frozenset({"ref"})
    higher_is_better = {"akd": False, "akd_fomm": False, "akd_missing": False}

    def __init__(self, context: EvalContext):
        super().__init__(context)
        self._frames = _FrameAverage()

    def update(self, pred: FrameView, ref: FrameView | None) -> dict[str, float]:
        ref = _require_ref(self.name, ref)
        if pred.image.shape[:2] != ref.image.shape[:2]:
            raise InputError(None, f"akd: frame {pred.index} of the prediction is {_size(pred)} but the "
                                   f"reference's is {_size(ref)}; keypoint distances need one frame size")
        if pred.landmarks is None or ref.landmarks is None:
            self._frames.add(None)
            return {"akd": NAN, "akd_fomm": NAN}
        values = {"akd": keypoint_distance(pred.landmarks, ref.landmarks),
                  "akd_fomm": keypoint_coordinate_difference(pred.landmarks, ref.landmarks)}
        self._frames.add(values)
        return values

    def compute(self) -> dict[str, float]:
        return {"akd": self._frames.mean("akd"), "akd_fomm": self._frames.mean("akd_fomm"),
                "akd_missing": self._frames.missing_fraction()}


class _IdentityPairMetric(StreamingMetric):
    """Compares each predicted frame's identity vector with its identity partner's (module doc)."""

    needs = frozenset()
    needs_any = frozenset({"ref", "source"})   # the identity partner: the source photo, else the reference
    key: str

    def __init__(self, context: EvalContext):
        super().__init__(context)
        self.embedder = identity_embedder(context)
        self._frames = _FrameAverage()

    def score(self, pred: np.ndarray, partner: np.ndarray) -> float:
        raise NotImplementedError

    def update(self, pred: FrameView, ref: FrameView | None) -> dict[str, float]:
        partner = self.context.source if self.context.source is not None else ref
        if partner is None:
            self._frames.add(None)
            return {self.key: NAN}
        pred_vector, partner_vector = embedding_of(pred, self.embedder), embedding_of(partner, self.embedder)
        if pred_vector is None or partner_vector is None:
            self._frames.add(None)
            return {self.key: NAN}
        values = {self.key: self.score(pred_vector, partner_vector)}
        self._frames.add(values)
        return values

    def compute(self) -> dict[str, float]:
        return {self.key: self._frames.mean(self.key), f"{self.key}_missing": self._frames.missing_fraction()}


class AEDMetric(_IdentityPairMetric):
    """Average Euclidean Distance (FOMM protocol): per frame, the L2 distance between the identity vectors
    of the prediction and its identity partner (module doc); `aed` averages over frames with both faces,
    `aed_missing` is the fraction without. FOMM used OpenFace on the whole frame and its released
    cmp.py sums squared differences; here the embedder is dlib (or ArcFace) on the face and the distance
    is not squared, so values compare between methods scored by faceanim only."""

    name = "aed"
    key = "aed"
    higher_is_better = {"aed": False, "aed_missing": False}

    def score(self, pred: np.ndarray, partner: np.ndarray) -> float:
        return embedding_distance(pred, partner)


class CSIMMetric(_IdentityPairMetric):
    """Cosine similarity of identity (CSIM; introduced for talking heads by Zakharov et al. 2019 with
    ArcFace, and used by most reenactment papers since): per frame, the cosine between the identity
    vectors of the prediction and its identity partner (module doc); `csim` averages over frames with
    both faces, `csim_missing` is the fraction without. dlib by default, ArcFace IR-SE50 with
    options["identity"] = "arcface" (the usual choice in papers)."""

    name = "csim"
    key = "csim"
    higher_is_better = {"csim": True, "csim_missing": False}

    def score(self, pred: np.ndarray, partner: np.ndarray) -> float:
        return cosine_similarity(pred, partner)


class PoseErrorMetric(StreamingMetric):
    """Head-pose error against the reference: per frame, yaw/pitch/roll of both faces (`crop_head_pose`:
    PnP of the dlib landmarks against a generic 3-D head, independent of where the face sits in the frame).

    `pose_error`: mean absolute difference in degrees, averaged over the three angles and the frames;
    `pose_prmse`: DaGAN's PRMSE (Hong et al. 2022), the mean over frames of sqrt(sum of squared angle
    differences / 3) (DaGAN releases no evaluation code; this follows the paper's description);
    `pose_yaw_error` / `pose_pitch_error` / `pose_roll_error`: each angle's mean absolute difference;
    `pose_missing`: fraction of frames without a face in one of the two."""

    name = "pose"
    needs = frozenset({"ref"})
    higher_is_better = {"pose_error": False, "pose_prmse": False, "pose_yaw_error": False,
                        "pose_pitch_error": False, "pose_roll_error": False, "pose_missing": False}
    _ANGLES = ("yaw", "pitch", "roll")
    _PER_FRAME = ("pose_error", "pose_prmse", "pose_yaw_error", "pose_pitch_error", "pose_roll_error")

    def __init__(self, context: EvalContext):
        super().__init__(context)
        self._frames = _FrameAverage()

    def update(self, pred: FrameView, ref: FrameView | None) -> dict[str, float]:
        ref = _require_ref(self.name, ref)
        if pred.landmarks is None or ref.landmarks is None:
            self._frames.add(None)
            return dict.fromkeys(self._PER_FRAME, NAN)
        delta = pose_difference(_angles(pred.landmarks), _angles(ref.landmarks))
        mean_abs, rms = pose_errors(delta)
        values = {"pose_error": mean_abs, "pose_prmse": rms}
        values.update({f"pose_{angle}_error": float(abs(d)) for angle, d in zip(self._ANGLES, delta)})
        self._frames.add(values)
        return values

    def compute(self) -> dict[str, float]:
        summary = {key: self._frames.mean(key) for key in self._PER_FRAME}
        summary["pose_missing"] = self._frames.missing_fraction()
        return summary


def _angles(landmarks: np.ndarray) -> tuple[float, float, float]:
    pose = crop_head_pose(landmarks)
    return pose.yaw, pose.pitch, pose.roll


class _TemporalIdentityMetric(StreamingMetric):
    """Shared part of TL-ID and TG-ID (STIT, Tzaban et al. 2022): keeps each frame's identity vector of
    the prediction (and of the reference, when given); only these small vectors are held.

    With a reference for every frame, `<key>` is the prediction's similarity divided by the reference's
    (STIT's normalisation by the original video), `<key>_raw` and `<key>_ref` are the two unnormalised
    values; without one, only `<key>_raw` is reported. `<key>_missing`: fraction of predicted frames
    without a face. STIT's repository has no metric code; this follows the paper's text."""

    needs = frozenset()
    key: str

    def __init__(self, context: EvalContext):
        super().__init__(context)
        self.embedder = identity_embedder(context)
        self.pred_embeddings: list[np.ndarray | None] = []
        self.ref_embeddings: list[np.ndarray | None] = []
        self.every_frame_has_ref = True

    @staticmethod
    def similarity(embeddings: Sequence[np.ndarray | None]) -> float:
        raise NotImplementedError

    def update(self, pred: FrameView, ref: FrameView | None) -> dict[str, float]:
        self.pred_embeddings.append(embedding_of(pred, self.embedder))
        if ref is None:
            self.every_frame_has_ref = False
        else:
            self.ref_embeddings.append(embedding_of(ref, self.embedder))
        return {}

    def compute(self) -> dict[str, float]:
        raw = self.similarity(self.pred_embeddings)
        frames = len(self.pred_embeddings)
        missing = sum(e is None for e in self.pred_embeddings) / frames if frames else NAN
        if not self.every_frame_has_ref or not frames:
            return {f"{self.key}_raw": raw, f"{self.key}_missing": missing}
        reference = self.similarity(self.ref_embeddings)
        return {self.key: relative_consistency(raw, reference), f"{self.key}_raw": raw,
                f"{self.key}_ref": reference, f"{self.key}_missing": missing}


class TLIDMetric(_TemporalIdentityMetric):
    """TL-ID, temporally local identity consistency (STIT): mean cosine identity similarity of adjacent
    frames of the prediction, divided by the same for the reference video. Per frame: the prediction's
    similarity to its previous frame (`tl_id_raw`)."""

    name = "tl_id"
    key = "tl_id"
    higher_is_better = {"tl_id": True, "tl_id_raw": True, "tl_id_ref": True, "tl_id_missing": False}
    similarity = staticmethod(adjacent_similarity)

    def update(self, pred: FrameView, ref: FrameView | None) -> dict[str, float]:
        super().update(pred, ref)
        return {"tl_id_raw": adjacent_similarity(self.pred_embeddings[-2:])}


class TGIDMetric(_TemporalIdentityMetric):
    """TG-ID, temporally global identity consistency (STIT): mean cosine identity similarity over all
    pairs of frames of the prediction, divided by the same for the reference video. No per-frame value."""

    name = "tg_id"
    key = "tg_id"
    higher_is_better = {"tg_id": True, "tg_id_raw": True, "tg_id_ref": True, "tg_id_missing": False}
    similarity = staticmethod(pairwise_similarity)


def _require_ref(metric: str, ref: FrameView | None) -> FrameView:
    if ref is None:
        raise InputError(None, f"{metric} compares with a reference video; none was given")
    return ref


def _size(view: FrameView) -> str:
    height, width = view.image.shape[:2]
    return f"{width}x{height}"


FACE_METRICS: tuple[type[StreamingMetric], ...] = (AKDMetric, AEDMetric, CSIMMetric, PoseErrorMetric,
                                                    TLIDMetric, TGIDMetric)
