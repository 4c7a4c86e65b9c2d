"""`faceanim convert fadm`: the official `diffusion.pth` (and DECA's `deca_model.tar`) as one converted folder
(`config.json` + `model.safetensors`), which `FADMPipeline.from_pretrained` loads alone.

The folder is written atomically; the inputs' SHA-256 go into the safetensors metadata and the report.
"""
from __future__ import annotations

import os

from ...checkpoints import Conversion, check_conversion_paths
from .weights import OFFICIAL_IMAGE_SIZE, load_official_deca, load_official_renderer, resolve_weight, save_converted


def convert_official(diffusion: str | os.PathLike, output: str | os.PathLike, *,
                     deca: str | os.PathLike | None = None, image_size: int = OFFICIAL_IMAGE_SIZE) -> Conversion:
    """Convert the renderer (its UNet layout read from the tensors) with DECA's encoder (`deca`, else
    FACEANIM_DECA) to the folder `output`."""
    paths = {"diffusion": diffusion, "deca": resolve_weight("deca", deca)}
    check_conversion_paths(paths, output)
    model = load_official_renderer(diffusion, image_size=image_size)
    conversion = Conversion.of(output, paths, ("diffusion", "deca"))
    save_converted(model, output, load_official_deca(paths["deca"]), metadata=conversion.metadata())
    return conversion
