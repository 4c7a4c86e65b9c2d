"""face-vid2vid (Wang et al. 2021, the zhanglonghao1992 re-implementation that FADM uses as its coarse
animator): 3-D canonical keypoints, head pose and expression, and a 3-D occlusion-aware generator."""
from .config import FaceVidConfig, tiny, vox256
from .generator import SourceVolume
from .head_pose import HeadPose, transform_keypoints
from .model import FaceVidModel, load_official

__all__ = ["FaceVidConfig", "FaceVidModel", "HeadPose", "SourceVolume", "load_official", "tiny",
           "transform_keypoints", "vox256"]
