"""Loading FADM's official weight files and our converted folders.

- `diffusion.pth` (`modules/diffusion/ckpt/`, or `diffusion_generator*.pth` from official training): the
  plain state dict of `DiffusionGenerator`, `diffusion.denoise_fn.*` plus the schedule buffers. Widths,
  levels and T are read from the tensors, so checkpoints of other UNet settings load too.
- DECA's `deca_model.tar`: a dict with `E_flame`, `E_detail`, `D_detail`; only `E_flame` is used.
- A converted folder (`faceanim convert fadm`): `config.json` ({"method": "fadm", "model": config}) and
  `model.safetensors` with the renderer under `diffusion.*` and, when converted with it, DECA under `deca.*`.
Every file is read with the weights-only loader of `faceanim.checkpoints`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import torch

from ...checkpoints import load_checkpoint, load_into, load_model_folder, save_model_folder, state_dict_from
from ...errors import CheckpointError, InputError
from ...registry import get_method
from .config import FADMConfig, UNetConfig
from .deca import DECAEncoder
from .model import FADMModel

PathLike = str | os.PathLike
METHOD = "fadm"
DECA_PREFIX = "deca."
OFFICIAL_IMAGE_SIZE = 256


def resolve_weight(name: str, given: PathLike | None) -> str:
    """`given`, else the environment variable of the registry's weight `name` ("diffusion", "deca",
    "coarse"), else MissingWeightsError naming its flag."""
    spec = next(weight for weight in get_method(METHOD).weights if weight.name == name)
    return spec.resolve(given)


def config_from_state(state: Mapping[str, torch.Tensor], *, path: PathLike = "checkpoint",
                      image_size: int = OFFICIAL_IMAGE_SIZE) -> FADMConfig:
    """The UNet layout a `DiffusionGenerator` state dict was built with (inner width, multipliers,
    blocks per level, attention levels, T); `image_size` is not in the weights (official: 256)."""
    prefix = "diffusion.denoise_fn.downs."
    try:
        inner = int(state[prefix + "0.weight"].shape[0])
        levels, blocks, attention = [[]], [], set()
        index = 1
        while f"{prefix}{index}.res_block.block1.block.3.weight" in state or f"{prefix}{index}.conv.weight" in state:
            if f"{prefix}{index}.conv.weight" in state:          # a Downsample closes the level
                levels.append([])
            else:
                levels[-1].append(int(state[f"{prefix}{index}.res_block.block1.block.3.weight"].shape[0]))
                if f"{prefix}{index}.attn.qkv.weight" in state:
                    attention.add(len(levels) - 1)
            index += 1
        blocks = {len(level) for level in levels}
        timesteps = int(state["diffusion.betas"].shape[0])
    except KeyError as missing:
        raise CheckpointError(path, f"is not an FADM DiffusionGenerator state dict (no {missing})") from None
    if len(blocks) != 1 or any(len(set(level)) != 1 for level in levels):
        raise CheckpointError(path, "has an irregular UNet layout that FADM's UNet cannot build")
    unet = UNetConfig(inner_channel=inner, channel_mults=tuple(level[0] // inner for level in levels),
                      attn_res=tuple(sorted(image_size >> level for level in attention)), res_blocks=blocks.pop(),
                      image_size=image_size)
    return FADMConfig(unet=unet, timesteps=timesteps)


def load_official_renderer(path: PathLike, config: FADMConfig | None = None, *,
                           image_size: int = OFFICIAL_IMAGE_SIZE) -> FADMModel:
    """FADMModel from an official `diffusion.pth` (strict; the config is read from the tensors unless given;
    `image_size`, which the tensors do not fix, is the frame size it was trained at)."""
    state = state_dict_from(load_checkpoint(path), path=path)
    model = FADMModel(config or config_from_state(state, path=path, image_size=image_size))
    load_into(model, state, strict=True, source=path)
    return model.eval()


def load_official_deca(path: PathLike) -> DECAEncoder:
    """DECA's coarse encoder from `deca_model.tar` (its `E_flame` entry), strict."""
    encoder = DECAEncoder()
    load_into(encoder, state_dict_from(load_checkpoint(path), "E_flame", path=path), strict=True, source=path)
    return encoder.eval()


def save_converted(model: FADMModel, folder: PathLike, deca: DECAEncoder | None = None, *,
                   metadata: Mapping[str, str] | None = None) -> Path:
    """Write the renderer (and DECA's encoder, when given) as a converted folder, atomically."""
    state = dict(model.state_dict())
    if deca is not None:
        state.update({DECA_PREFIX + key: value for key, value in deca.state_dict().items()})
    return save_model_folder(folder, METHOD, model.config.to_dict(), state, metadata=metadata,
                             deca=deca is not None)


def load_converted(folder: PathLike) -> tuple[FADMModel, DECAEncoder | None]:
    model_config, state = load_model_folder(folder, METHOD, "FADM", FADMConfig.from_dict)
    model = FADMModel(model_config)
    deca_state = {k[len(DECA_PREFIX):]: v for k, v in state.items() if k.startswith(DECA_PREFIX)}
    load_into(model, {k: v for k, v in state.items() if not k.startswith(DECA_PREFIX)}, strict=True, source=folder)
    deca = None
    if deca_state:
        deca = DECAEncoder()
        load_into(deca, deca_state, strict=True, source=folder)
        deca.eval()
    return model.eval(), deca


def load_models(diffusion: PathLike | None = None, *, deca: PathLike | None = None,
                config: FADMConfig | None = None,
                image_size: int | None = None) -> tuple[FADMModel, DECAEncoder]:
    """The renderer and DECA's encoder for inference: `diffusion` is a converted folder (which may hold
    DECA too) or an official `diffusion.pth`; `deca` a `deca_model.tar` (needed unless the folder has it).
    `image_size`: the frame size of an official file (default 256, the released model's).
    Each falls back to its environment variable (FACEANIM_FADM_DIFFUSION, FACEANIM_DECA); a missing one
    raises MissingWeightsError naming its flag."""
    source = resolve_weight("diffusion", diffusion)
    if Path(source).is_dir():
        if image_size is not None:
            raise InputError(source, "is a converted folder, which records its image size; drop --image-size")
        model, bundled = load_converted(source)
    else:
        model, bundled = load_official_renderer(source, config, image_size=image_size or OFFICIAL_IMAGE_SIZE), None
    if deca is not None or bundled is None:
        bundled = load_official_deca(resolve_weight("deca", deca))
    return model, bundled
