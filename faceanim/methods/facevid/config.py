"""face-vid2vid model settings for the `facevid` method: the networks' typed config (defined beside the
networks in `faceanim.warping.facevid`, which FADM's coarse stage shares) and reading an official YAML."""
from __future__ import annotations

import os

from ...errors import InputError
from ...fileio import read_official_model_params
from ...warping.facevid.config import (DenseMotionConfig, FaceVidConfig, GeneratorConfig, HeadPoseConfig,
                                       KeypointDetectorConfig, tiny, vox256)

PRESETS = {"vox256": vox256, "tiny": tiny}

__all__ = ["DenseMotionConfig", "FaceVidConfig", "GeneratorConfig", "HeadPoseConfig", "KeypointDetectorConfig",
           "PRESETS", "read_official_config", "tiny", "vox256"]


def read_official_config(path: str | os.PathLike) -> FaceVidConfig:
    """The model of an official YAML (config/vox-256.yaml of the re-implementation or of FADM); the frame
    size comes from `dataset_params.frame_shape`."""
    model_params, frame_size = read_official_model_params(path, "face-vid2vid")
    try:
        return FaceVidConfig.from_official(model_params, image_size=frame_size)
    except InputError as err:
        raise InputError(path, err.problem) from None
    except TypeError as err:
        raise InputError(path, f"invalid setting ({err})") from None
