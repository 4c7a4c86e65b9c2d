"""Loading DaGAN's official weight files into a `DaGANModel`.

- `*.pth.tar` (`Logger.save_cpk`): state dicts under `generator`, `kp_detector` (and `discriminator`,
  optimisers, `epoch`), saved from DDP/DataParallel wrappers, so keys carry a `module.` prefix.
- Monodepth2 `encoder.pth`: the ResnetEncoder state dict (`encoder.*`) plus non-tensor `height`,
  `width`, `use_stereo`, which are dropped.
- Monodepth2 `depth.pth`: the DepthDecoder state dict (`decoder.N.*`).
Every file is read with the weights-only loader of `faceanim.checkpoints`.
"""
from __future__ import annotations

import os

from ...checkpoints import LoadReport, load_checkpoint, load_into, state_dict_from
from .model import DaGANModel

PathLike = str | os.PathLike


def load_official(model: DaGANModel, checkpoint: PathLike | None = None, *,
                  depth_encoder: PathLike | None = None, depth_decoder: PathLike | None = None,
                  strict: bool = True) -> dict[str, LoadReport]:
    """Load the official files that are given; returns a LoadReport per component loaded.

    The discriminator is loaded when the model has one and the checkpoint holds it. With strict=True
    (the default) a file that does not fit exactly raises CheckpointError naming it."""
    reports = {}
    if checkpoint is not None:
        contents = load_checkpoint(checkpoint)
        components = ["generator", "kp_detector"]
        if model.discriminator is not None and isinstance(contents, dict) and "discriminator" in contents:
            components.append("discriminator")
        for name in components:
            state = state_dict_from(contents, name, path=checkpoint)
            reports[name] = load_into(getattr(model, name), state, strict=strict, source=checkpoint)
    for name, path in (("depth_encoder", depth_encoder), ("depth_decoder", depth_decoder)):
        if path is not None:
            state = state_dict_from(load_checkpoint(path), path=path)
            reports[name] = load_into(getattr(model, name), state, strict=strict, source=path)
    return reports
