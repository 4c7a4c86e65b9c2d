"""Distribution metrics: the Fréchet distance between Gaussians fitted to network features of the
predicted and the reference frames. Lower is better; 0 when both feature sets have equal mean and covariance.

FID (Heusel et al. 2017), as pytorch-fid computes it:
  * every frame is scaled to [0, 1], resized to 299x299 (bilinear, align_corners=False, no antialiasing),
    scaled to [-1, 1] and fed to the FID Inception-v3 (TensorFlow's 2015-12-05 graph, the file
    `pt_inception-2015-12-05-6726825d.pth`); the feature is its 2048-d "pool3" output;
  * mean and covariance (ddof=1, as np.cov) of each frame set, then
    d^2 = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrtm(S1 S2)) with scipy's sqrtm, retried with 1e-6 added to
    both diagonals when the root is not finite, and an error when its diagonal has a real imaginary part.
  The frames of one video are far from independent samples, and with fewer frames than 2048 the
  covariances are singular: compare FIDs of the same protocol (same frame count), not against paper values.

FVD (Unterthiner et al. 2018), as the TensorFlow original and its PyTorch ports (StyleGAN-V,
common_metrics_on_video_quality) define it:
  * clips of 16 consecutive frames (non-overlapping by default; option `fvd_stride`), each frame resized
    to 224x224 (bilinear) and scaled to [-1, 1];
  * the feature of a clip is I3D's 400 Kinetics logits averaged over time. This is the tensor the
    original takes (`RGB/inception_i3d/Mean:0` of the TF-Hub i3d-kinetics-400 module, "the
    kinetics-i3d-400-logits layer"; DeepMind's I3D builds it as `reduce_mean(logits, axis=1)`) and the
    400-d "features" of StyleGAN-V's I3D; not the 1024-d pooled activation before the logits;
  * the Fréchet distance of the clip features (same function as FID).
  Differences from the TF-Hub number: the weights are the PyTorch port's `rgb_imagenet.pt` (DeepMind's
  released Kinetics-400 RGB checkpoint), not the TF-Hub export, and the resize uses half-pixel centres
  (PyTorch's align_corners=False, as StyleGAN-V) where TF1's `resize_bilinear` did not; frames are resized
  to 224x224 directly, as the original does (StyleGAN-V crops the centre square first: the same for square
  face videos). FVD is a statistic over many videos: one short video gives only a few clips (a 10 s video at
  25 fps: 15), a covariance of rank < 15 in 400 dimensions, and a value that is noisy and biased by the clip
  count. Use it to compare methods on the same videos, not as an absolute number.
"""
from __future__ import annotations

import logging
import warnings
from collections import deque
from typing import ClassVar, Iterable, Sequence

import numpy as np
import torch
from scipy import linalg

from ..errors import InputError
from ..nn.backbones.i3d import I3D_INPUT_SIZE, InceptionI3d, i3d_preprocess, load_i3d
from ..nn.backbones.inception import FID_INPUT_SIZE, FIDInceptionV3, fid_preprocess, load_fid_inception
from .base import EvalContext, FrameView, StreamingMetric

log = logging.getLogger(__name__)

FVD_CLIP_LENGTH = 16


# --- the Fréchet distance and streaming Gaussian statistics --------------------------------------------

def _matrix_sqrt(matrix: np.ndarray) -> np.ndarray:
    """scipy.linalg.sqrtm without its error printout. SciPy < 1.18 takes `disp=False` and then returns
    (root, error estimate), except for 1x1 input (the root alone); later versions have no `disp`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        # a singular product (no finite root) is handled by the caller
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            result = linalg.sqrtm(matrix, disp=False)
        except TypeError:
            result = linalg.sqrtm(matrix)
    return result[0] if isinstance(result, tuple) else result


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """Squared Fréchet distance of N(mu1, sigma1) and N(mu2, sigma2), computed as pytorch-fid does.

    When sqrtm(sigma1 sigma2) is not finite (a nearly singular product) it is recomputed with `eps` added
    to both diagonals. Rounding gives the root a small imaginary part, which is dropped; an imaginary part
    above 1e-3 on its diagonal means the input is not a pair of covariances and raises ValueError."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"mismatched statistics: means {mu1.shape} vs {mu2.shape}, "
                         f"covariances {sigma1.shape} vs {sigma2.shape}")
    covmean = _matrix_sqrt(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        log.warning("Fréchet distance: singular covariance product; adding %g to the diagonals", eps)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = _matrix_sqrt((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"Fréchet distance: matrix square root has an imaginary component "
                             f"{np.max(np.abs(covmean.imag)):.3g}")
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


class FeatureStats:
    """Mean and covariance of feature vectors added in batches, without keeping the vectors.

    Float64 throughout. Batches are merged with Chan et al.'s pairwise update (count, mean and the
    scatter matrix about the mean), which equals np.mean / np.cov(ddof=1) over all rows and does not lose
    precision the way a raw sum of outer products does when the mean is large against the spread."""

    def __init__(self, dim: int):
        self.dim = dim
        self.count = 0
        self._mean = np.zeros(dim, dtype=np.float64)
        self._scatter = np.zeros((dim, dim), dtype=np.float64)

    def add(self, features: np.ndarray) -> None:
        """Add (n, dim) feature rows (or one (dim,) row)."""
        batch = np.atleast_2d(np.asarray(features, dtype=np.float64))
        if batch.shape[1] != self.dim:
            raise ValueError(f"features of size {batch.shape[1]}, expected {self.dim}")
        n = batch.shape[0]
        if n == 0:
            return
        batch_mean = batch.mean(axis=0)
        centred = batch - batch_mean
        delta = batch_mean - self._mean
        total = self.count + n
        self._scatter += centred.T @ centred + np.outer(delta, delta) * (self.count * n / total)
        self._mean += delta * (n / total)
        self.count = total

    @property
    def mean(self) -> np.ndarray:
        """(dim,) mean of all rows (NaN before any)."""
        return self._mean.copy() if self.count else np.full(self.dim, np.nan)

    @property
    def covariance(self) -> np.ndarray:
        """(dim, dim) sample covariance, ddof=1 as np.cov (NaN with fewer than two rows)."""
        if self.count < 2:
            return np.full((self.dim, self.dim), np.nan)
        return self._scatter / (self.count - 1)


def frechet_distance_of_stats(a: FeatureStats, b: FeatureStats) -> float:
    """Fréchet distance of two feature sets; NaN when either has fewer than two vectors (no covariance)."""
    if a.count < 2 or b.count < 2:
        return float("nan")
    return frechet_distance(a.mean, a.covariance, b.mean, b.covariance)


def frechet_distance_of_features(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance of two (n, dim) feature arrays (FID / FVD once features are extracted)."""
    stats = []
    for features in (a, b):
        features = np.atleast_2d(np.asarray(features, dtype=np.float64))
        stats.append(FeatureStats(features.shape[1]))
        stats[-1].add(features)
    return frechet_distance_of_stats(*stats)


# --- network inputs and features ------------------------------------------------------------------------

def _unit_tensor(frame: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """RGB uint8 (H, W, 3) -> float32 (3, H, W) in [0, 1] on `device` (as torchvision's ToTensor)."""
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an RGB frame (H, W, 3), got shape {frame.shape}")
    tensor = torch.from_numpy(np.ascontiguousarray(frame)).to(device)
    return tensor.permute(2, 0, 1).float() / 255.0


def inception_input(frame: np.ndarray, device: torch.device | str = "cpu", size: int = FID_INPUT_SIZE) -> torch.Tensor:
    """One RGB uint8 frame -> the FID Inception input (3, size, size) in [-1, 1]."""
    return fid_preprocess(_unit_tensor(frame, device)[None], size)[0]


def i3d_input(frame: np.ndarray, device: torch.device | str = "cpu", size: int = I3D_INPUT_SIZE) -> torch.Tensor:
    """One RGB uint8 frame -> one I3D input frame (3, size, size) in [-1, 1]."""
    return i3d_preprocess(_unit_tensor(frame, device)[None], size)[:, 0]


def _parameter_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def inception_features(frames: Iterable[np.ndarray], model: FIDInceptionV3, *, size: int = FID_INPUT_SIZE,
                       batch_size: int = 16) -> np.ndarray:
    """(n, 2048) float64 pool3 features of RGB uint8 frames, run on the model's device in batches."""
    device = _parameter_device(model)
    rows: list[np.ndarray] = []
    batch: list[torch.Tensor] = []
    for frame in frames:
        batch.append(inception_input(frame, device, size))
        if len(batch) == batch_size:
            rows.append(_pool3(model, batch))
            batch = []
    if batch:
        rows.append(_pool3(model, batch))
    return np.concatenate(rows) if rows else np.zeros((0, model.fc.in_features))


def _pool3(model: FIDInceptionV3, inputs: Sequence[torch.Tensor]) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.stack(list(inputs))).double().cpu().numpy()


def i3d_clip_features(clips: np.ndarray, model: InceptionI3d) -> np.ndarray:
    """(n, 400) float64 FVD features (time-averaged logits) of (n, T, H, W, 3) RGB uint8 clips."""
    device = _parameter_device(model)
    inputs = [torch.stack([i3d_input(frame, device) for frame in clip], dim=1) for clip in clips]
    return _clip_logits(model, inputs)


def _clip_logits(model: InceptionI3d, clips: Sequence[torch.Tensor]) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.stack(list(clips))).double().cpu().numpy()


class ClipWindow:
    """The last `length` items of a stream; `push` returns them (oldest first) each time a clip is due:
    clips start at items 0, stride, 2*stride, ... (stride > length skips items between clips)."""

    def __init__(self, length: int = FVD_CLIP_LENGTH, stride: int = FVD_CLIP_LENGTH):
        if length < 1 or stride < 1:
            raise ValueError(f"clip length and stride must be positive, got {length} and {stride}")
        self.length, self.stride = length, stride
        self._items: deque = deque(maxlen=length)
        self._seen = 0

    def push(self, item) -> list | None:
        self._items.append(item)
        self._seen += 1
        start = self._seen - self.length
        if start >= 0 and start % self.stride == 0:
            return list(self._items)
        return None


# --- streaming metrics ----------------------------------------------------------------------------------

def _positive_int(value, option: str) -> int:
    """An option given as a whole number (int or its text, as a command line gives it)."""
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if isinstance(value, bool) or number < 1:
        raise InputError(None, f"{option} must be a positive whole number of frames, got {value!r}")
    return number


def _summary_distance(metric: str, pred: FeatureStats, ref: FeatureStats) -> float:
    """The metric's value; NaN (with the reason logged) where pytorch-fid would stop with an error, so
    that one degenerate video does not end a whole evaluation."""
    try:
        return frechet_distance_of_stats(pred, ref)
    except ValueError as err:
        log.warning("%s is NaN: %s", metric, err)
        return float("nan")


def _require_ref(metric: str, ref: FrameView | None) -> FrameView:
    if ref is None:
        raise ValueError(f"{metric} compares the prediction with reference frames; none were given")
    return ref


class FIDMetric(StreamingMetric):
    """FID between the set of predicted frames and the set of reference frames (pytorch-fid protocol).

    No per-frame value. Frames are resized on arrival and run through Inception `batch_frames` per side at
    a time; only their 2048-d statistics are kept. NaN with fewer than two frames, or (logged) where
    pytorch-fid would raise on a matrix root with an imaginary part."""

    name = "fid"
    needs = frozenset({"ref"})
    weights = ("inception",)
    higher_is_better = {"fid": False}
    input_size: ClassVar[int] = FID_INPUT_SIZE
    batch_frames: ClassVar[int] = 16

    def __init__(self, context: EvalContext):
        super().__init__(context)
        self.model = load_fid_inception(context.weight("inception")).to(context.device)
        dim = self.model.fc.in_features
        self.pred_stats, self.ref_stats = FeatureStats(dim), FeatureStats(dim)
        self._pending: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])

    def update(self, pred: FrameView, ref: FrameView | None) -> dict[str, float]:
        ref = _require_ref("FID", ref)
        for pending, view in zip(self._pending, (pred, ref)):
            pending.append(inception_input(view.image, self.context.device, self.input_size))
        if len(self._pending[0]) >= self.batch_frames:
            self._flush()
        return {}

    def _flush(self) -> None:
        pred_inputs, ref_inputs = self._pending
        if not pred_inputs:
            return
        features = _pool3(self.model, pred_inputs + ref_inputs)   # one forward for both sides
        self.pred_stats.add(features[:len(pred_inputs)])
        self.ref_stats.add(features[len(pred_inputs):])
        self._pending = ([], [])

    def compute(self) -> dict[str, float]:
        self._flush()
        return {"fid": _summary_distance("FID", self.pred_stats, self.ref_stats)}


class FVDMetric(StreamingMetric):
    """FVD between the 16-frame clips of the prediction and those of the reference (see the module notes:
    one video gives few clips, so the value is noisy).

    Option `fvd_stride` (default 16): frames between clip starts; 16 gives non-overlapping clips, a smaller
    value overlapping ones. Only the current 16-frame window of each side is kept (frames already resized to
    224x224); a trailing partial clip is not used. No per-frame value; NaN with fewer than two clips (or,
    logged, where the matrix root has an imaginary part)."""

    name = "fvd"
    needs = frozenset({"ref"})
    weights = ("i3d",)
    higher_is_better = {"fvd": False}
    clip_length: ClassVar[int] = FVD_CLIP_LENGTH

    def __init__(self, context: EvalContext):
        super().__init__(context)
        stride = _positive_int(context.options.get("fvd_stride", FVD_CLIP_LENGTH), "fvd_stride")
        self.model = load_i3d(context.weight("i3d")).to(context.device)
        self._windows = (ClipWindow(self.clip_length, stride), ClipWindow(self.clip_length, stride))
        dim = self.model.logits.conv3d.out_channels
        self.pred_stats, self.ref_stats = FeatureStats(dim), FeatureStats(dim)

    def update(self, pred: FrameView, ref: FrameView | None) -> dict[str, float]:
        ref = _require_ref("FVD", ref)
        clips = [window.push(i3d_input(view.image, self.context.device))
                 for window, view in zip(self._windows, (pred, ref))]
        if clips[0] is not None and clips[1] is not None:
            features = _clip_logits(self.model, [torch.stack(clip, dim=1) for clip in clips])
            self.pred_stats.add(features[:1])
            self.ref_stats.add(features[1:])
        return {}

    def compute(self) -> dict[str, float]:
        return {"fvd": _summary_distance("FVD", self.pred_stats, self.ref_stats)}
