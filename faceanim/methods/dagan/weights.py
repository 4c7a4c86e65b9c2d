"""Loading DaGAN's official weight files into a `DaGANModel`, and our converted folders.

- `*.pth.tar` (`Logger.save_cpk`): state dicts under `generator`, `kp_detector` (and `discriminator`,
  optimisers, `epoch`), saved from DDP/DataParallel wrappers, so keys carry a `module.` prefix.
- Monodepth2 `encoder.pth`: the ResnetEncoder state dict (`encoder.*`) plus non-tensor `height`,
  `width`, `use_stereo`, which are dropped.
- Monodepth2 `depth.pth`: the DepthDecoder state dict (`decoder.N.*`).
- A converted folder (`faceanim convert dagan`): `config.json` ({"method": "dagan", "model": config})
  and `model.safetensors` with all components under their `DaGANModel` names.
Every file is read with the weights-only loader of `faceanim.checkpoints`.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Mapping

from ...checkpoints import (load_checkpoint, load_into, load_model_folder, LoadReport, save_model_folder,
                             state_dict_from)
from ...errors import CheckpointError, InputError
from ...fileio import read_official_model_params
from ...registry import get_method
from .config import DaGANConfig, vox256
from .model import DaGANModel

PathLike = str | os.PathLike
METHOD = "dagan"


def load_official(model: DaGANModel, checkpoint: PathLike | None = None, *,
                  depth_encoder: PathLike | None = None, depth_decoder: PathLike | None = None,
                  strict: bool = True) -> dict[str, LoadReport]:
    """Load the official files that are given; returns a LoadReport per component loaded.

    The discriminator is loaded when the model has one and the checkpoint holds it. With strict=True
    (the default) a file that does not fit exactly raises CheckpointError naming it."""
    reports = {}
    if checkpoint is not None:
        reports.update(_load_components(model, load_checkpoint(checkpoint), checkpoint, strict))
    for name, path in (("depth_encoder", depth_encoder), ("depth_decoder", depth_decoder)):
        if path is not None:
            reports[name] = _load_depth(model, name, load_checkpoint(path), path, strict)
    return reports


def _load_components(model: DaGANModel, contents: Any, path: PathLike, strict: bool) -> dict[str, LoadReport]:
    components = ["generator", "kp_detector"]
    if model.discriminator is not None and isinstance(contents, dict) and "discriminator" in contents:
        components.append("discriminator")
    return {name: load_into(getattr(model, name), state_dict_from(contents, name, path=path), strict=strict,
                            source=path)
            for name in components}


def _load_depth(model: DaGANModel, name: str, contents: Any, path: PathLike, strict: bool) -> LoadReport:
    return load_into(getattr(model, name), state_dict_from(contents, path=path), strict=strict, source=path)


def read_official_config(path: PathLike, *, kp_num: int | None = None,
                         generator: str = "DepthAwareGenerator") -> DaGANConfig:
    """The model of an official YAML (e.g. config/vox-adv-256.yaml) as the official demo builds it:
    `--kp_num`, `--generator`, and an RGB-D keypoint detector (the demo's num_channels 4)."""
    model_params, frame_size = read_official_model_params(path, "DaGAN")
    try:
        return DaGANConfig.from_official(model_params, generator=generator, kp_input="rgbd",
                                         num_kp=kp_num, image_size=frame_size)
    except InputError as err:
        raise InputError(path, err.problem) from None


def official_model(checkpoint: PathLike, depth_encoder: PathLike, depth_decoder: PathLike, *,
                   config: PathLike | DaGANConfig | None = None, kp_num: int | None = None,
                   generator: str | None = None, discriminator: bool = False) -> DaGANModel:
    """A DaGANModel with the official files loaded strictly (CheckpointError names a file that does not fit).

    Without `config` the released vox256 layout is used. The keypoint count, generator class and depth
    ResNet depth are read from the files unless given (the official demo needs --kp_num/--generator)."""
    contents = load_checkpoint(checkpoint)
    if discriminator and not (isinstance(contents, dict) and "discriminator" in contents):
        raise CheckpointError(checkpoint, "has no discriminator to keep")
    encoder_contents = load_checkpoint(depth_encoder)
    found = _layout_of(contents, encoder_contents, checkpoint)
    kp_num = kp_num if kp_num is not None else found["num_kp"]
    generator = generator or found["generator"]
    if isinstance(config, DaGANConfig):
        model_config = config
    elif config is not None:
        model_config = read_official_config(config, kp_num=kp_num, generator=generator)
    else:
        model_config = dataclasses.replace(vox256(), num_kp=kp_num,
                                           generator=dataclasses.replace(vox256().generator, kind=generator))
    model_config = dataclasses.replace(model_config, depth_layers=found["depth_layers"])
    model = DaGANModel(model_config, discriminator=discriminator)
    try:
        _load_components(model, contents, checkpoint, strict=True)
    except CheckpointError as err:
        if config is not None:
            raise
        raise CheckpointError(err.path, f"{err.problem} (not the released vox256 layout? pass --config with the "
                                        f"official YAML it was trained with)") from None
    _load_depth(model, "depth_encoder", encoder_contents, depth_encoder, strict=True)
    _load_depth(model, "depth_decoder", load_checkpoint(depth_decoder), depth_decoder, strict=True)
    return model.eval()


def _layout_of(contents: Any, encoder_contents: Any, checkpoint: PathLike) -> dict:
    """Keypoint count, generator class and depth ResNet as the weights show them."""
    kp_detector = state_dict_from(contents, "kp_detector", path=checkpoint)
    generator = state_dict_from(contents, "generator", path=checkpoint)
    if "kp.weight" not in kp_detector:
        raise CheckpointError(checkpoint, "kp_detector has no 'kp.weight': not a DaGAN/FOMM keypoint detector")
    spade = any(key.startswith("decoder.G_middle_") for key in generator)
    encoder_keys = encoder_contents.keys() if isinstance(encoder_contents, Mapping) else ()
    bottleneck_blocks = any(str(key).endswith(".conv3.weight") for key in encoder_keys)  # ResNet-50's blocks
    return {"num_kp": int(kp_detector["kp.weight"].shape[0]), "depth_layers": 50 if bottleneck_blocks else 18,
            "generator": "SPADEDepthAwareGenerator" if spade else "DepthAwareGenerator"}


def save_converted(model: DaGANModel, folder: PathLike, *, metadata: Mapping[str, str] | None = None) -> Path:
    """Write `model` (every component it has) as a converted folder, atomically."""
    return save_model_folder(folder, METHOD, model.config.to_dict(), model.state_dict(), metadata=metadata)


def load_converted(folder: PathLike, *, discriminator: bool = False) -> DaGANModel:
    """A DaGANModel from a converted folder; the discriminator only when asked for (and present)."""
    model_config, state = load_model_folder(folder, METHOD, "DaGAN", DaGANConfig.from_dict)
    if not discriminator:
        state = {k: v for k, v in state.items() if not k.startswith("discriminator.")}
    model = DaGANModel(model_config, discriminator=discriminator)
    load_into(model, state, strict=True, source=folder)
    return model.eval()


def load_model(path: PathLike | None = None, *, checkpoint: PathLike | None = None,
               depth_encoder: PathLike | None = None, depth_decoder: PathLike | None = None,
               config: PathLike | None = None, kp_num: int | None = None, generator: str | None = None) -> DaGANModel:
    """The inference model (no discriminator) from a converted folder or from the official files.

    `path` (or `checkpoint`, the same thing) is a converted folder or an official `*.pth.tar`; the latter
    needs `depth_encoder` (Monodepth2 encoder.pth) and `depth_decoder` (depth.pth). Each falls back to its
    environment variable (FACEANIM_DAGAN_CHECKPOINT, ..._DEPTH_ENCODER, ..._DEPTH_DECODER); a missing one
    raises MissingWeightsError naming its flag."""
    if path is not None and checkpoint is not None and Path(path) != Path(checkpoint):
        raise InputError(None, f"two checkpoints given ({path} and {checkpoint}); pass one")
    source = resolve_weight("checkpoint", path if path is not None else checkpoint)
    if Path(source).is_dir():
        extras = [name for name, value in (("--depth-encoder", depth_encoder), ("--depth-decoder", depth_decoder),
                                           ("--config", config), ("--kp-num", kp_num), ("--generator", generator))
                  if value is not None]
        if extras:
            raise InputError(source, f"is a converted folder, which holds its depth network and settings; "
                                     f"{', '.join(extras)} apply to official *.pth.tar checkpoints only")
        return load_converted(source)
    return official_model(source, resolve_weight("depth-encoder", depth_encoder),
                          resolve_weight("depth-decoder", depth_decoder), config=config, kp_num=kp_num,
                          generator=generator)


def resolve_weight(name: str, given: PathLike | None) -> PathLike:
    """`given`, else the environment variable of the registry's weight `name` ("checkpoint",
    "depth-encoder", "depth-decoder"), else MissingWeightsError naming its flag."""
    spec = next(weight for weight in get_method(METHOD).weights if weight.name == name)
    return spec.resolve(given)
