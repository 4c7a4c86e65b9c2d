"""`faceanim convert dagan`: the official files (`*.pth.tar` + Monodepth2 `encoder.pth`/`depth.pth`) as one
converted folder (`config.json` + `model.safetensors`), which `DaGANPipeline.from_pretrained` loads alone.

The folder is written atomically; the inputs' SHA-256 go into the safetensors metadata and the report.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ...checkpoints import CONFIG_NAME, sha256
from ...errors import InputError
from .weights import official_model, resolve_weight, save_converted


@dataclass
class Conversion:
    """What `convert_official` read (name -> (path, sha256)) and wrote."""

    output: Path
    inputs: dict[str, tuple[Path, str]] = field(default_factory=dict)
    components: tuple[str, ...] = ()


def convert_official(checkpoint: str | os.PathLike, output: str | os.PathLike, *,
                     depth_encoder: str | os.PathLike | None = None, depth_decoder: str | os.PathLike | None = None,
                     config: str | os.PathLike | None = None, kp_num: int | None = None, generator: str | None = None,
                     discriminator: bool = False) -> Conversion:
    """Convert the official files to the folder `output`; the depth files fall back to their environment
    variables, `config`/`kp_num`/`generator` are as in `weights.official_model`. `discriminator`: keep
    it too (for fine-tuning); inference never needs it."""
    if Path(checkpoint).is_dir():
        raise InputError(checkpoint, "is a folder (converted already?); convert takes the official *.pth.tar")
    _check_output(Path(output))
    paths = {"checkpoint": Path(checkpoint), "depth_encoder": Path(resolve_weight("depth-encoder", depth_encoder)),
             "depth_decoder": Path(resolve_weight("depth-decoder", depth_decoder))}
    model = official_model(paths["checkpoint"], paths["depth_encoder"], paths["depth_decoder"], config=config,
                           kp_num=kp_num, generator=generator, discriminator=discriminator)
    inputs = {name: (path, sha256(path)) for name, path in paths.items()}
    metadata = {f"{name}_sha256": digest for name, (_, digest) in inputs.items()}
    metadata.update({f"{name}_file": path.name for name, (path, _) in inputs.items()})
    save_converted(model, output, metadata=metadata)
    components = tuple(name for name, _ in model.named_children())
    return Conversion(Path(output), inputs, components)


def _check_output(output: Path) -> None:
    """Only a new path or an earlier converted folder may be (re)written: never someone's other folder."""
    if output.is_file():
        raise InputError(output, "exists and is a file; the output is a folder")
    if output.is_dir() and any(output.iterdir()) and not (output / CONFIG_NAME).is_file():
        raise InputError(output, "exists and is not a converted model folder; choose a new path")
