"""FOMM's configuration: the networks' settings (`FOMMConfig`, shared with FADM's training in
`faceanim.warping.fomm`) read from an official YAML (`config/vox-256.yaml` layout)."""
from __future__ import annotations

import os

from ...errors import InputError
from ...fileio import read_official_model_params
from ...warping.fomm import FOMMConfig

__all__ = ["FOMMConfig", "read_official_config"]


def read_official_config(path: str | os.PathLike) -> FOMMConfig:
    """The model settings of an official FOMM YAML (its `model_params` and frame size)."""
    model_params, frame_size = read_official_model_params(path, "FOMM")
    try:
        return FOMMConfig.from_official(model_params, image_size=frame_size)
    except InputError as err:
        raise InputError(path, err.problem) from None
