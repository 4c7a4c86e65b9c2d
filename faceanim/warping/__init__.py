"""Keypoint- and landmark-driven animation shared by the reenactment methods (and FADM's coarse stage)."""
from .animator import CoarseAnimator, CoarseCrops, CropAnimator, MotionCropPipeline, MotionOptions

__all__ = ["CoarseAnimator", "CoarseCrops", "CropAnimator", "MotionCropPipeline", "MotionOptions"]
