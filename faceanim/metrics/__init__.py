"""Metrics: functions of arrays (frames, landmarks, signals) -> numbers."""
from .face_series import FaceSeries, crop_head_pose, face_series, lagged_correlation

__all__ = ["FaceSeries", "crop_head_pose", "face_series", "lagged_correlation"]
