"""`faceanim convert dagan`: the official files (`*.pth.tar` + Monodepth2 `encoder.pth`/`depth.pth`) as one
converted folder (`config.json` + `model.safetensors`), which `DaGANPipeline.from_pretrained` loads alone.

The folder is written atomically; the inputs' SHA-256 go into the safetensors metadata and the report.
"""
from __future__ import annotations

import os
from pathlib import Path

from ...checkpoints import Conversion, check_conversion_paths
from .weights import official_model, resolve_weight, save_converted


def convert_official(checkpoint: str | os.PathLike, output: str | os.PathLike, *,
                     depth_encoder: str | os.PathLike | None = None, depth_decoder: str | os.PathLike | None = None,
                     config: str | os.PathLike | None = None, kp_num: int | None = None, generator: str | None = None,
                     discriminator: bool = False) -> Conversion:
    """Convert the official files to the folder `output`; the depth files fall back to their environment
    variables, `config`/`kp_num`/`generator` are as in `weights.official_model`. `discriminator`: keep
    it too (for fine-tuning); inference never needs it."""
    paths = {"checkpoint": Path(checkpoint), "depth_encoder": Path(resolve_weight("depth-encoder", depth_encoder)),
             "depth_decoder": Path(resolve_weight("depth-decoder", depth_decoder))}
    check_conversion_paths(paths, output)
    model = official_model(paths["checkpoint"], paths["depth_encoder"], paths["depth_decoder"], config=config,
                           kp_num=kp_num, generator=generator, discriminator=discriminator)
    conversion = Conversion.of(output, paths, tuple(name for name, _ in model.named_children()))
    save_converted(model, output, metadata=conversion.metadata())
    return conversion
