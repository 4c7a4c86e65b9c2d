"""The official `Facevid.pth` as one converted folder (`config.json` + `model.safetensors`), which
`FaceVidPipeline.from_pretrained` loads alone.

The folder is written atomically; the input's SHA-256 goes into the safetensors metadata and the report.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ...checkpoints import CONFIG_NAME, sha256
from ...errors import InputError
from ...warping.facevid import FaceVidConfig
from .weights import official_model, save_converted


@dataclass
class Conversion:
    """What `convert_official` read (its path and SHA-256) and wrote."""

    output: Path
    checkpoint: Path
    checkpoint_sha256: str
    components: tuple[str, ...] = ()


def convert_official(checkpoint: str | os.PathLike, output: str | os.PathLike, *,
                     config: str | os.PathLike | FaceVidConfig | None = None) -> Conversion:
    """Convert `Facevid.pth` to the folder `output`; `config` as in `weights.official_model`."""
    checkpoint = Path(checkpoint)
    if checkpoint.is_dir():
        raise InputError(checkpoint, "is a folder (converted already?); convert takes the official Facevid.pth")
    _check_output(Path(output))
    model = official_model(checkpoint, config=config)
    digest = sha256(checkpoint)
    save_converted(model, output, metadata={"checkpoint_sha256": digest, "checkpoint_file": checkpoint.name})
    return Conversion(Path(output), checkpoint, digest, tuple(name for name, _ in model.named_children()))


def _check_output(output: Path) -> None:
    """Only a new path or an earlier converted folder may be (re)written: never someone's other folder."""
    if output.is_file():
        raise InputError(output, "exists and is a file; the output is a folder")
    if output.is_dir() and any(output.iterdir()) and not (output / CONFIG_NAME).is_file():
        raise InputError(output, "exists and is not a converted model folder; choose a new path")
