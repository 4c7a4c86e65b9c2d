"""face-vid2vid model settings for the `facevid` method: the networks' typed config (defined beside the
networks in `faceanim.warping.facevid`, which FADM's coarse stage shares) and reading an official YAML."""
from __future__ import annotations

import os
from pathlib import Path

from ...errors import InputError
from ...warping.facevid.config import (DenseMotionConfig, FaceVidConfig, GeneratorConfig, HeadPoseConfig,
                                       KeypointDetectorConfig, tiny, vox256)

PRESETS = {"vox256": vox256, "tiny": tiny}

__all__ = ["DenseMotionConfig", "FaceVidConfig", "GeneratorConfig", "HeadPoseConfig", "KeypointDetectorConfig",
           "PRESETS", "read_official_config", "tiny", "vox256"]


def read_official_config(path: str | os.PathLike) -> FaceVidConfig:
    """The model of an official YAML (config/vox-256.yaml of the re-implementation or of FADM); the frame
    size comes from `dataset_params.frame_shape`."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as err:
        raise InputError(path, f"cannot read the config ({err.strerror or err})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise InputError(path, f"is not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("model_params"), dict):
        raise InputError(path, "is not a face-vid2vid config (no model_params section)")
    frame_shape = (data.get("dataset_params") or {}).get("frame_shape") or [256]
    try:
        return FaceVidConfig.from_official(data["model_params"], image_size=int(frame_shape[0]))
    except InputError as err:
        raise InputError(path, err.problem) from None
    except TypeError as err:
        raise InputError(path, f"invalid setting ({err})") from None
