"""face-vid2vid (one-shot free-view talking heads, Wang et al. 2021; the re-implementation FADM uses):
3-D canonical keypoints (`keypoints`), head pose and expression (`head_pose`), 3-D dense motion and the
occlusion-aware generator (`dense_motion`, `generator`), the three under their official names (`model`);
configuration, weights, conversion and the inference pipeline. They are built from the FOMM family's shared
blocks (`faceanim.nn.blocks`, `faceanim.warping`); FADM's coarse stage reaches face-vid2vid through the
registry. Names are imported on first use (`faceanim.lazy`), so the CLI can read `options` without torch."""
from ...lazy import lazy_exports

__all__ = ["FaceVidConfig", "FaceVidModel", "FaceVidPipeline", "FaceVidSource", "FreeView", "HeadPose"]
__getattr__, __dir__ = lazy_exports(__name__, {"FaceVidConfig": ".config", "HeadPose": ".head_pose",
                                               "FaceVidModel": ".model", "FaceVidPipeline": ".pipeline",
                                               "FaceVidSource": ".pipeline", "FreeView": ".pipeline"})
