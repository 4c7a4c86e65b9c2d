"""Keypoint- and landmark-driven animation shared by the reenactment methods (and FADM's coarse stage)."""
from .animator import CoarseAnimator, CropAnimator, MotionOptions

__all__ = ["CoarseAnimator", "CropAnimator", "MotionOptions"]
