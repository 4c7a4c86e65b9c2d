"""Pixel metrics of a prediction against its reference: L1, MSE, PSNR and SSIM.

All of them work on the [0, 1] scale: uint8 frames are divided by 255, float frames are taken as they are
(expected in [0, 1]). Prediction and reference must have the same size; nothing is resized.

- `l1`: mean absolute error over all pixels and channels (the reconstruction L1 of FOMM and DaGAN).
- `mse`: mean squared error over all pixels and channels.
- `psnr`: 10 log10(data_range^2 / MSE); float('inf') for identical images.
- `ssim`, two variants with the same 11x11 Gaussian window (sigma 1.5) and C1 = (0.01 R)^2,
  C2 = (0.03 R)^2 (R = data_range):
  * mode="paper" (default): the `ssim.py` of DiffAE and Diffusion Video Autoencoders (pytorch-ssim).
    Local statistics come from a per-channel filtering with zero padding of 5 pixels, so the SSIM map has
    the image's size, and its mean over all pixels and channels is the score. The zero-padded border
    statistics make it differ from the "skimage" value by a little (more for small images). Computed here
    in float64 where the papers ran float32: their rounding moves the value by about 1e-5.
  * mode="skimage": Wang et al. 2004 as scikit-image's `structural_similarity(gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False)` computes it: the map is averaged only where the window fits
    inside the image (a 5-pixel border is left out), per channel, then over channels.

Video summaries are means of the per-frame values. PSNR's summary: the mean over frames whose PSNR is
finite; float('inf') when every frame is identical to its reference; `psnr_identical_frames` counts the
frames left out of the mean for being identical (infinite PSNR).
"""
from __future__ import annotations

import math
from abc import abstractmethod
from typing import ClassVar, Literal, Mapping

import cv2
import numpy as np

from ..errors import InputError
from .base import EvalContext, FrameView, StreamingMetric

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
SSIM_MODES = ("paper", "skimage")
SSIMMode = Literal["paper", "skimage"]


def to_unit_float(image: np.ndarray) -> np.ndarray:
    """An image on the [0, 1] scale as float64: integer images are divided by their type's maximum
    (255 for uint8); float images are returned as float64 unchanged."""
    image = np.asarray(image)
    if np.issubdtype(image.dtype, np.integer):
        return image.astype(np.float64) / np.iinfo(image.dtype).max
    if np.issubdtype(image.dtype, np.floating):
        return image.astype(np.float64, copy=False)
    raise TypeError(f"expected an integer or float image, got dtype {image.dtype}")


def check_same_size(pred: np.ndarray, ref: np.ndarray, metric: str = "pixel metrics") -> None:
    """InputError unless prediction and reference have the same shape: these metrics compare pixel to
    pixel, and numpy would otherwise broadcast mismatched shapes into a meaningless number."""
    if np.shape(pred) != np.shape(ref):
        raise InputError(None, f"{metric}: the prediction is {_describe(pred)} but the reference is "
                               f"{_describe(ref)}; they must have the same size (resize one of the videos)")


def _describe(image: np.ndarray) -> str:
    shape = np.shape(image)
    if len(shape) >= 2:
        channels = f"x{shape[2]}" if len(shape) == 3 else ""
        return f"{shape[1]}x{shape[0]}{channels} (WxH)"
    return f"of shape {shape}"


def _pair(pred: np.ndarray, ref: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray]:
    check_same_size(pred, ref, metric)
    return to_unit_float(pred), to_unit_float(ref)


def l1(pred: np.ndarray, ref: np.ndarray) -> float:
    """Mean absolute difference on the [0, 1] scale."""
    a, b = _pair(pred, ref, "l1")
    return float(np.mean(np.abs(a - b)))


def mse(pred: np.ndarray, ref: np.ndarray) -> float:
    """Mean squared difference on the [0, 1] scale."""
    a, b = _pair(pred, ref, "mse")
    return float(np.mean((a - b) ** 2))


def psnr_from_mse(mean_squared_error: float, data_range: float = 1.0) -> float:
    """10 log10(data_range^2 / MSE) in dB; float('inf') when the MSE is 0."""
    if mean_squared_error == 0:
        return float("inf")
    return float(10.0 * math.log10(data_range ** 2 / mean_squared_error))


def psnr(pred: np.ndarray, ref: np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB on the [0, 1] scale (`data_range` is the peak of that scale);
    float('inf') for identical images."""
    a, b = _pair(pred, ref, "psnr")
    return psnr_from_mse(float(np.mean((a - b) ** 2)), data_range)


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """The normalised 1-D Gaussian of SSIM (its 2-D window is the outer product with itself)."""
    offsets = np.arange(size, dtype=np.float64) - size // 2
    weights = np.exp(-offsets ** 2 / (2.0 * sigma ** 2))
    return weights / weights.sum()


def _local_mean(channel: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Gaussian-weighted local mean, zero outside the image (same size as `channel`, float64). The 2-D
    window is separable, and zero padding commutes with the two 1-D passes, so two passes equal one 2-D
    filter; OpenCV's separable filter does them several times faster than scipy.ndimage on HD frames."""
    return cv2.sepFilter2D(channel, cv2.CV_64F, window, window, borderType=cv2.BORDER_CONSTANT)


def ssim_map(pred_channel: np.ndarray, ref_channel: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """The SSIM map of one channel (2-D float arrays), statistics from a zero-padded Gaussian window."""
    window = gaussian_window()
    mu_x, mu_y = _local_mean(pred_channel, window), _local_mean(ref_channel, window)
    var_x = _local_mean(pred_channel * pred_channel, window) - mu_x * mu_x
    var_y = _local_mean(ref_channel * ref_channel, window) - mu_y * mu_y
    cov_xy = _local_mean(pred_channel * ref_channel, window) - mu_x * mu_y
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    return ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))


def ssim(pred: np.ndarray, ref: np.ndarray, *, mode: SSIMMode = "paper", data_range: float = 1.0) -> float:
    """Structural similarity on the [0, 1] scale of (H, W) or (H, W, C) images; 1.0 for identical ones.

    mode="paper" (default): DiffAE/DVA's pytorch-ssim (zero-padded window, mean over the whole map);
    mode="skimage": scikit-image / Wang et al. (border of 5 pixels left out; needs images of 11x11 or more).
    Computed in float64 channel by channel, so a 1080p frame never holds more than a few 2-D maps."""
    if mode not in SSIM_MODES:
        raise ValueError(f"ssim mode must be one of {', '.join(SSIM_MODES)}, got {mode!r}")
    a, b = _pair(pred, ref, "ssim")
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    if a.ndim != 3:
        raise ValueError(f"ssim expects (H, W) or (H, W, C) images, got shape {a.shape}")
    border = SSIM_WINDOW // 2 if mode == "skimage" else 0
    if mode == "skimage" and min(a.shape[:2]) < SSIM_WINDOW:
        raise ValueError(f"ssim mode 'skimage' needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, "
                         f"got {a.shape[1]}x{a.shape[0]}")
    total, count = 0.0, 0
    for c in range(a.shape[2]):
        values = ssim_map(np.ascontiguousarray(a[..., c]), np.ascontiguousarray(b[..., c]), data_range)
        # Away from the border the zero padding is never reached, so cropping it leaves exactly the
        # "valid" map of scikit-image.
        values = values[border:values.shape[0] - border, border:values.shape[1] - border]
        total += float(values.sum())
        count += values.size
    return total / count


class _FrameMean(StreamingMetric):
    """A per-frame value of the frame pair, summarised by its mean over frames (nan with no frames)."""

    needs: ClassVar[frozenset[str]] = frozenset({"ref"})

    def __init__(self, context: EvalContext):
        super().__init__(context)
        self._sum = 0.0
        self._frames = 0

    @abstractmethod
    def frame_value(self, pred: np.ndarray, ref: np.ndarray) -> float:
        """The metric of one pair of [0, 1] float64 frames of the same size."""

    def _value(self, pred: FrameView, ref: FrameView | None) -> float:
        if ref is None:
            raise InputError(None, f"{self.name} compares with a reference video, and none was given")
        check_same_size(pred.image, ref.image, f"{self.name} (frame {pred.index})")
        # FrameView.float_image is shared by every pixel metric of the frame: converted once.
        return self.frame_value(pred.float_image, ref.float_image)

    def update(self, pred: FrameView, ref: FrameView | None) -> Mapping[str, float]:
        value = self._value(pred, ref)
        self._sum += value
        self._frames += 1
        return {self.name: value}

    def compute(self) -> dict[str, float]:
        return {self.name: self._sum / self._frames if self._frames else float("nan")}


class L1Metric(_FrameMean):
    """Mean absolute error per frame ([0, 1] scale); summary `l1` = mean over frames."""

    name = "l1"
    higher_is_better = {"l1": False}

    def frame_value(self, pred: np.ndarray, ref: np.ndarray) -> float:
        return l1(pred, ref)


class MSEMetric(_FrameMean):
    """Mean squared error per frame ([0, 1] scale); summary `mse` = mean over frames."""

    name = "mse"
    higher_is_better = {"mse": False}

    def frame_value(self, pred: np.ndarray, ref: np.ndarray) -> float:
        return mse(pred, ref)


class SSIMMetric(_FrameMean):
    """SSIM per frame; summary `ssim` = mean over frames. Variant: `context.options["ssim_mode"]`,
    "paper" (default, DiffAE/DVA) or "skimage"."""

    name = "ssim"
    higher_is_better = {"ssim": True}

    def __init__(self, context: EvalContext):
        super().__init__(context)
        self.mode = context.options.get("ssim_mode", "paper")
        if self.mode not in SSIM_MODES:
            raise InputError(None, f"ssim_mode must be one of {', '.join(SSIM_MODES)}, got {self.mode!r}")

    def frame_value(self, pred: np.ndarray, ref: np.ndarray) -> float:
        return ssim(pred, ref, mode=self.mode)


class PSNRMetric(_FrameMean):
    """PSNR per frame (dB, [0, 1] scale, inf for an identical frame).

    Summary: `psnr` = mean of the finite per-frame values, float('inf') when all frames are identical
    (nan with no frames); `psnr_identical_frames` = how many frames had infinite PSNR and so are not in
    that mean. A video against itself gives psnr = inf and psnr_identical_frames = its frame count."""

    name = "psnr"
    higher_is_better = {"psnr": True}

    def __init__(self, context: EvalContext):
        super().__init__(context)
        self._identical = 0

    def frame_value(self, pred: np.ndarray, ref: np.ndarray) -> float:
        return psnr(pred, ref)

    def update(self, pred: FrameView, ref: FrameView | None) -> Mapping[str, float]:
        value = self._value(pred, ref)
        if math.isinf(value):
            self._identical += 1
        else:
            self._sum += value
            self._frames += 1
        return {self.name: value}

    def compute(self) -> dict[str, float]:
        if self._frames:
            mean = self._sum / self._frames
        else:
            mean = float("inf") if self._identical else float("nan")
        return {"psnr": mean, "psnr_identical_frames": float(self._identical)}
