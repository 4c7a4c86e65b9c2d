"""Paste an (edited) face crop back into its full-resolution frame.

The crop is warped back by the inverse of its `CropTransform` (bicubic), blended through a feathered
mask (a smooth ramp, no visible box edge) and optionally colour-matched to the frame around the
mask's edge. Only the frame region under the crop is touched: pixels where the mask is 0 keep their
exact values. `prepare_paste_back` does the per-transform work once (the mask warp), for videos whose
crop stays put; `PastePlan.paste` is then a few milliseconds per 1080p frame.
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from ..errors import InputError
from ._image import as_rgb_image
from .crop import CropTransform

_MAX_GAIN = 1.5  # colour match: contrast changes beyond this are more likely content than grading
_RING_SAMPLES = 20000  # colour statistics from at most about this many seam pixels


def border_ramp(size: int, feather: float) -> np.ndarray:
    """A float32 (size, size) mask: 1 inside, falling smoothly (smoothstep) to 0 at the crop's edges
    over `feather` x size pixels."""
    if feather <= 0:
        return np.ones((size, size), dtype=np.float32)
    distance = np.minimum(np.arange(size) + 0.5, size - 0.5 - np.arange(size))
    t = np.clip(distance / (feather * size), 0.0, 1.0)
    ramp = (t * t * (3 - 2 * t)).astype(np.float32)
    return np.outer(ramp, ramp)


@dataclasses.dataclass(frozen=True)
class MaskedCrop:
    """A model's crop that replaces only part of the crop it was made from (e.g. an edited face):
    `mask` (S, S) float in [0, 1] says where; elsewhere the frame keeps its own pixels."""

    crop: np.ndarray
    mask: np.ndarray


@dataclasses.dataclass
class PastePlan:
    """Paste-back work that depends only on the transform and the mask.

    roi: (x0, y0, x1, y1), the frame region under the crop; roi_to_crop: (2, 3) matrix from ROI
    pixels to crop pixels; alpha: (h, w, 1) float32 blending weights over the ROI; ring_index and
    ring_weights: the ROI pixels (flat indices) of the mask's edge zone, where colour statistics are
    compared, and their weights (summing to 1)."""

    transform: CropTransform
    roi: tuple[int, int, int, int]
    roi_to_crop: np.ndarray
    alpha: np.ndarray
    ring_index: np.ndarray
    ring_weights: np.ndarray

    def paste(self, frame: np.ndarray, crop: np.ndarray, *, color_match: bool = True) -> np.ndarray:
        """A new frame (same size and dtype) with `crop` pasted back where it came from."""
        frame = as_rgb_image(frame, "frame")
        crop = as_rgb_image(crop, "crop")
        size = self.transform.crop_size
        if tuple(frame.shape[:2]) != tuple(self.transform.frame_size) or crop.shape[:2] != (size, size):
            raise InputError(None, f"paste_back: frame {frame.shape[:2]} and crop {crop.shape[:2]} do not match "
                                   f"the transform (frame {tuple(self.transform.frame_size)}, crop {size}x{size})")
        result = frame.copy()
        x0, y0, x1, y1 = self.roi
        if x1 <= x0 or y1 <= y0:
            return result
        pasted = cv2.warpAffine(crop, self.roi_to_crop, (x1 - x0, y1 - y0),
                                flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
        original = frame[y0:y1, x0:x1].astype(np.float32)
        pasted = pasted.astype(np.float32)
        if color_match:
            gain, offset = _colour_correction(pasted, original, self.ring_index, self.ring_weights)
            pasted *= gain
            pasted += offset
        # original + alpha (pasted - original), in place: this runs on every frame of a video
        pasted -= original
        pasted *= self.alpha
        pasted += original
        np.rint(pasted, out=pasted)
        np.clip(pasted, 0, 255, out=pasted)
        result[y0:y1, x0:x1] = pasted
        return result


def _colour_correction(pasted: np.ndarray, original: np.ndarray, index: np.ndarray,
                       weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-RGB-channel (gain, offset) that give `pasted` the original frame's weighted mean and spread
    over the mask's edge zone (for an unchanged crop: gain 1, offset 0)."""
    if len(index) < 16:  # too few edge pixels to measure
        return np.ones(3, np.float32), np.zeros(3, np.float32)
    ring_pasted, ring_original = pasted.reshape(-1, 3)[index], original.reshape(-1, 3)[index]
    mean_p, mean_o = weights @ ring_pasted, weights @ ring_original
    std_p = np.sqrt(weights @ (ring_pasted - mean_p) ** 2)
    std_o = np.sqrt(weights @ (ring_original - mean_o) ** 2)
    gain = np.clip((std_o + 1.0) / (std_p + 1.0), 1 / _MAX_GAIN, _MAX_GAIN)
    return gain.astype(np.float32), (mean_o - mean_p * gain).astype(np.float32)


def prepare_paste_back(transform: CropTransform, mask: np.ndarray | None = None,
                       feather: float = 0.1) -> PastePlan:
    """The paste plan for crops of `transform`: `mask` (float (s, s) in crop coordinates, default the
    whole crop) times a smooth ramp to 0 over the outer `feather` x crop size, warped into the frame."""
    size = int(transform.crop_size)
    if not 0 <= feather <= 0.5:
        raise InputError(None, f"paste_back: feather must be in [0, 0.5] (fraction of the crop size), got {feather}")
    crop_alpha = border_ramp(size, feather)
    if mask is not None:
        mask = np.asarray(mask, dtype=np.float32)
        if mask.shape != (size, size):
            raise InputError(None, f"paste_back: mask of shape {mask.shape} does not match the {size}x{size} crop")
        crop_alpha = crop_alpha * np.clip(mask, 0.0, 1.0)
    height, width = transform.frame_size
    corners = transform.to_frame([[-0.5, -0.5], [size - 0.5, -0.5], [-0.5, size - 0.5], [size - 0.5, size - 0.5]])
    x0, y0 = np.floor(corners.min(axis=0)).astype(int) - 1
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + 2
    x0, y0, x1, y1 = max(int(x0), 0), max(int(y0), 0), min(int(x1), width), min(int(y1), height)
    shift = np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])
    roi_to_crop = np.asarray(transform.matrix, dtype=np.float64) @ shift
    if x1 <= x0 or y1 <= y0:
        nothing = np.zeros(0)
        return PastePlan(transform, (x0, y0, x1, y1), roi_to_crop, np.zeros((0, 0, 1), np.float32), nothing, nothing)
    alpha = cv2.warpAffine(crop_alpha, roi_to_crop, (x1 - x0, y1 - y0),
                           flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderValue=0.0)
    alpha = np.clip(alpha, 0.0, 1.0)
    ring = (4.0 * alpha * (1.0 - alpha)).reshape(-1)  # peaks where the mask is half on: the seam
    ring_index = np.flatnonzero(ring > 0.05)
    ring_index = ring_index[::max(1, len(ring_index) // _RING_SAMPLES)]  # an even sample is as good, and fast
    ring_weights = (ring[ring_index] / max(float(ring[ring_index].sum()), 1e-9)).astype(np.float32)
    return PastePlan(transform, (x0, y0, x1, y1), roi_to_crop, alpha[..., None], ring_index, ring_weights)


def paste_back(frame: np.ndarray, crop: np.ndarray, transform: CropTransform, *, mask: np.ndarray | None = None,
               feather: float = 0.1, color_match: bool = True) -> np.ndarray:
    """A new full-resolution frame with `crop` (made by `transform`) pasted back: bicubic inverse warp,
    feathered mask (see `prepare_paste_back`), colour match to the frame around the seam if asked."""
    return prepare_paste_back(transform, mask, feather).paste(frame, crop, color_match=color_match)
