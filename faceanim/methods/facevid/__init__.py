"""face-vid2vid (one-shot free-view talking heads, Wang et al. 2021; the re-implementation FADM uses):
configuration, weights, conversion and the inference pipeline. The networks live in
`faceanim.warping.facevid`, shared with FADM's coarse stage."""
from ...warping.facevid import FaceVidConfig, FaceVidModel, HeadPose
from .pipeline import FaceVidPipeline, FaceVidSource, FreeView

__all__ = ["FaceVidConfig", "FaceVidModel", "FaceVidPipeline", "FaceVidSource", "FreeView", "HeadPose"]
