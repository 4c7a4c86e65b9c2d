"""Loading face-vid2vid weights into a `FaceVidModel`: the official `Facevid.pth` and our converted folders.

- `Facevid.pth` (the re-implementation's `Logger.save_cpk`, as FADM ships it under
  modules/Facevid/ckpt/): state dicts under `kp_detector`, `he_estimator`, `generator` (plus optimisers and
  the discriminator when saved by training, which inference ignores), without DataParallel prefixes.
- A converted folder (`convert.convert_official`): `config.json` ({"method": "facevid", "model": config})
  and `model.safetensors` with the three networks under their `FaceVidModel` names.
Every file is read with the weights-only loader of `faceanim.checkpoints`.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Mapping

from ...checkpoints import load_checkpoint, load_into, load_model_folder, save_model_folder, state_dict_from
from ...errors import CheckpointError, InputError
from .config import FaceVidConfig, read_official_config, vox256
from .model import FaceVidModel, load_official

PathLike = str | os.PathLike
METHOD = "facevid"


def official_model(checkpoint: PathLike, *, config: PathLike | FaceVidConfig | None = None) -> FaceVidModel:
    """A FaceVidModel with `Facevid.pth` loaded strictly (CheckpointError names a file that does not fit).

    `config`: a FaceVidConfig or the official YAML; without it the released vox256 layout is used, with the
    keypoint Jacobian head when the file has one (the YAML's `estimate_jacobian: True`)."""
    contents = load_checkpoint(checkpoint)
    if isinstance(config, FaceVidConfig):
        model_config = config
    elif config is not None:
        model_config = read_official_config(config)
    else:
        model_config = dataclasses.replace(vox256(), estimate_jacobian=_has_jacobian(contents, checkpoint))
    model = FaceVidModel(model_config)
    try:
        load_official(model, contents, source=checkpoint)
    except CheckpointError as err:
        if config is not None:
            raise
        raise CheckpointError(err.path, f"{err.problem} (not the released vox256 layout? pass the official YAML "
                                        f"it was trained with as config)") from None
    return model.eval()


def _has_jacobian(contents: Any, checkpoint: PathLike) -> bool:
    return "jacobian.weight" in state_dict_from(contents, "kp_detector", path=checkpoint, strip_prefixes=())


def save_converted(model: FaceVidModel, folder: PathLike, *, metadata: Mapping[str, str] | None = None) -> Path:
    """Write `model` as a converted folder, atomically."""
    return save_model_folder(folder, METHOD, model.config.to_dict(), model.state_dict(), metadata=metadata)


def load_converted(folder: PathLike) -> FaceVidModel:
    """A FaceVidModel from a converted folder."""
    model_config, state = load_model_folder(folder, METHOD, "face-vid2vid", FaceVidConfig.from_dict)
    model = FaceVidModel(model_config)
    load_into(model, state, strict=True, source=folder)
    return model.eval()


def load_model(checkpoint: PathLike, *, config: PathLike | FaceVidConfig | None = None) -> FaceVidModel:
    """The model from a converted folder or an official `Facevid.pth` (`config` applies to the latter)."""
    if Path(checkpoint).is_dir():
        if config is not None:
            raise InputError(checkpoint, "is a converted folder, which holds its own settings; config applies "
                                         "to official Facevid.pth checkpoints only")
        return load_converted(checkpoint)
    return official_model(checkpoint, config=config)
