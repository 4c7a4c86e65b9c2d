"""The official `Facevid.pth` as one converted folder (`config.json` + `model.safetensors`), which
`FaceVidPipeline.from_pretrained` loads alone.

The folder is written atomically; the input's SHA-256 goes into the safetensors metadata and the report.
"""
from __future__ import annotations

import os
from pathlib import Path

from ...checkpoints import Conversion, check_conversion_paths
from .config import FaceVidConfig
from .weights import official_model, save_converted


def convert_official(checkpoint: str | os.PathLike, output: str | os.PathLike, *,
                     config: str | os.PathLike | FaceVidConfig | None = None) -> Conversion:
    """Convert `Facevid.pth` to the folder `output`; `config` as in `weights.official_model`."""
    check_conversion_paths({"checkpoint": checkpoint}, output)
    model = official_model(Path(checkpoint), config=config)
    conversion = Conversion.of(output, {"checkpoint": checkpoint}, tuple(name for name, _ in model.named_children()))
    save_converted(model, output, metadata=conversion.metadata())
    return conversion
