"""Metrics: functions of arrays (frames, landmarks, embeddings, signals) -> numbers, each also offered as a
`StreamingMetric` that `faceanim evaluate` feeds frame by frame (`catalog.METRICS` lists them all).

Modules: `pixel` (L1, MSE, PSNR, SSIM), `lpips`, `distribution` (FID, FVD), `face` (AKD, AED, CSIM, pose
error, TL-ID, TG-ID) with `identity` (dlib / ArcFace embedders), `syncnet` (LSE-C/D), `lipsync` (weight-free
lip-audio correlation), `smoothness` (OFM, F-MSE), `report` (JSON, markdown, CSV, plots)."""
from .base import METRIC_WEIGHTS, EvalContext, FrameView, StreamingMetric
from .catalog import METRICS, MetricInfo
from .face_series import FaceSeries, crop_head_pose, face_series, lagged_correlation

__all__ = ["FaceSeries", "crop_head_pose", "face_series", "lagged_correlation",
           "StreamingMetric", "FrameView", "EvalContext", "METRIC_WEIGHTS", "METRICS", "MetricInfo"]
