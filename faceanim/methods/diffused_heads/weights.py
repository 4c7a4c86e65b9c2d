"""Loading Diffused Heads weights, in every form they come in:

- the released TorchScript UNet `crema_script.pt` (and any `torch.jit.save` of the official UNet): its
  tensors are read from the archive without running it (`faceanim.jit_archive`); the one setting the
  tensors cannot tell, the attention head width, is read from the archive's code as text (the literal of
  the traced attention's channel split), never executed;
- a train-branch Lightning `.ckpt`: the UNet's tensors under `unet.` (and again under
  `diffusion.nn_backbone.`), the constructor arguments in `hyper_parameters` (foreign objects inside,
  such as the pickled torchvision `motion_transforms`, load as inert data);
- a plain state dict (`.safetensors`, `.pth`) of the UNet;
- our converted folder (`faceanim convert diffused_heads`): `config.json` ({"method": "diffused_heads",
  "model": config, "audio_encoder": its config or null}) and `model.safetensors` with `unet.*` and,
  when converted with it, the speech encoder under `audio_encoder.*`.

Layouts other than the release (widths, levels, conditioning variants, grayscale motion) are read from
the tensors, and checked by building the model and comparing every name and shape.
"""
from __future__ import annotations

import logging
import os
import re
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping

import torch

from ...checkpoints import OpaqueObject, load_checkpoint, load_into, load_model_folder, save_model_folder
from ...errors import CheckpointError, InputError
from .config import DiffusedHeadsConfig, UNetConfig
from .model import DiffusedHeadsUNet

log = logging.getLogger(__name__)
PathLike = str | os.PathLike
METHOD = "diffused_heads"
UNET_PREFIX, AUDIO_PREFIX = "unet.", "audio_encoder."
LIGHTNING_PREFIXES = ("unet.", "diffusion.nn_backbone.")
RELEASED_HEAD_CHANNELS = 64
_HPARAM_FIELDS = ("image_size", "num_heads", "num_head_channels", "dropout", "n_motion_frames", "grayscale_motion",
                  "n_audio_motion_embs", "resblock_updown", "id_condition_type", "audio_condition_type",
                  "audio_channels")


# -- reading the files ------------------------------------------------------------------------------------
def read_unet_file(path: PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(the UNet's tensors under the official names, settings the file states) of any supported file."""
    path = Path(path)
    if path.is_dir():
        config, state, _, _ = load_converted(path)
        return state, {**asdict(config.unet), "n_timesteps": config.n_timesteps}
    loaded = load_checkpoint(path)
    if not isinstance(loaded, Mapping):
        raise CheckpointError(path, f"holds {type(loaded).__name__}, not Diffused Heads weights")
    if "state_dict" in loaded and isinstance(loaded["state_dict"], Mapping):      # Lightning
        return _lightning_unet(loaded["state_dict"], path), _plain_hparams(loaded.get("hyper_parameters"))
    state = {k: v for k, v in loaded.items() if isinstance(v, torch.Tensor)}
    if any(k.startswith(UNET_PREFIX) for k in state):
        state = {k[len(UNET_PREFIX):]: v for k, v in state.items() if k.startswith(UNET_PREFIX)}
    settings = {}
    if _is_archive(path):
        width = archive_head_channels(path)
        settings = {"num_head_channels": width} if width else {}
    return state, settings


def _lightning_unet(state: Mapping[str, Any], path: Path) -> dict[str, torch.Tensor]:
    for prefix in LIGHTNING_PREFIXES:
        found = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix) and isinstance(v, torch.Tensor)}
        if found:
            return found
    raise CheckpointError(path, "is a Lightning checkpoint without Diffused Heads UNet weights (no unet.* tensors)")


def _plain_hparams(hparams: Any) -> dict[str, Any]:
    """The constructor arguments a Lightning checkpoint stored that are plain values (Hydra lists and other
    foreign objects come back inert and are left to the tensors)."""
    if isinstance(hparams, OpaqueObject):
        hparams = hparams.state if isinstance(hparams.state, Mapping) else {}
    if not isinstance(hparams, Mapping):
        return {}
    out = {k: hparams[k] for k in _HPARAM_FIELDS + ("n_timesteps",)
           if k in hparams and isinstance(hparams[k], (int, float, str, bool))}
    resolutions = hparams.get("attention_resolutions")
    if isinstance(resolutions, (list, tuple)) and all(isinstance(r, int) for r in resolutions):
        out["attention_resolutions"] = tuple(resolutions)
    return out


def _is_archive(path: Path) -> bool:
    from ...jit_archive import is_torchscript_archive

    return is_torchscript_archive(path)


_SPLIT = re.compile(r"torch\.split\(torch\.reshape\(\w+, \w+\), (\d+), 1\)")


def archive_head_channels(path: PathLike) -> int | None:
    """The attention head width of a traced official UNet, read as text from its `QKVAttentionLegacy` code
    (the channel split of q, k and v is a literal there); None when the code does not say."""
    try:
        with zipfile.ZipFile(path) as archive:
            widths = set()
            for name in archive.namelist():
                if "/code/" in name and name.endswith(".py"):
                    text = archive.read(name).decode("utf-8", "replace")
                    if "QKVAttentionLegacy" in text:
                        widths.update(int(w) for w in _SPLIT.findall(text))
    except (zipfile.BadZipFile, OSError):
        return None
    return widths.pop() if len(widths) == 1 else None


# -- the layout from the tensors ----------------------------------------------------------------------------
def infer_unet_config(state: Mapping[str, torch.Tensor], settings: Mapping[str, Any] | None = None, *,
                      path: PathLike = "checkpoint") -> UNetConfig:
    """The UNet layout of `state` (widths, levels, blocks, attention, conditioning variants, motion
    channels); `settings` the file stated override it. Head width: stated, else the release's 64."""
    settings = dict(settings or {})
    try:
        values = _layout(state, int(settings.get("image_size", 128)))
    except KeyError as missing:
        raise CheckpointError(path, f"is not a Diffused Heads UNet (no tensor {missing})") from None
    values.update({k: v for k, v in settings.items() if k in _HPARAM_FIELDS + ("attention_resolutions",)})
    values.setdefault("num_head_channels", RELEASED_HEAD_CHANNELS)
    try:
        return UNetConfig(**values)
    except InputError as err:
        if "num_head_channels" in settings or "num_head_channels" not in err.problem:
            raise CheckpointError(path, err.problem) from None
    # the release's head width does not fit these widths: guided-diffusion's num_heads rule instead
    try:
        return UNetConfig(**{**values, "num_head_channels": -1})
    except InputError as err:
        raise CheckpointError(path, err.problem) from None


def _layout(state: Mapping[str, torch.Tensor], image_size: int) -> dict[str, Any]:
    channels = int(state["time_embed.fc.0.weight"].shape[1])
    out_channels = int(state["out.2.weight"].shape[0])
    audio_in = int(state["audio_embed.0.weight"].shape[1])
    window = audio_in // channels if audio_in % channels == 0 and (audio_in // channels) % 2 else 5
    audio_channels = None if audio_in == channels * window else audio_in // window
    identity = "frame"
    if "identity_encoder.out.3.weight" in state:
        identity = "post_gn" if any(".x_emb_layers." in k for k in state) else "pre_gn"
    n_inputs = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("input_blocks."))
    blocks = _blocks_per_level(state, n_inputs)
    levels = n_inputs // (blocks + 1)
    widths = [int(state[f"input_blocks.{1 + level * (blocks + 1)}.0.in_layers.2.weight"].shape[0])
              for level in range(levels)]
    attention = [image_size // 2 ** level for level in range(levels)
                 if any(f"input_blocks.{1 + level * (blocks + 1) + i}.1.{name}" in state
                        for i in range(blocks) for name in ("qkv.weight", "q.weight"))]
    if not attention and any(k.startswith("middle_block.1.") for k in state):
        attention = [image_size // 2 ** (levels - 1)]     # attention in the middle block only
    first = state["input_blocks.1.0.in_layers.2.weight"].shape[0]
    audio_width = state.get("input_blocks.1.0.audio_emb_layers.1.weight")
    audio = ("double_pre_gn" if audio_width is not None and audio_width.shape[0] == 2 * first else
             "post_gn" if audio_width is not None else
             "attention" if any(".audio_emb_proj." in k for k in state) else "pre_gn")
    motion = int(state["input_blocks.0.0.weight"].shape[1]) - 3 - (3 if identity == "frame" else 0)
    n_motion, grayscale = _motion_layout(motion)
    down = f"input_blocks.{blocks + 1}.0.in_layers.0.weight" in state if levels > 1 else True
    return dict(image_size=image_size, in_channels=3, model_channels=channels, out_channels=out_channels,
                num_res_blocks=blocks, attention_resolutions=tuple(attention), channel_mult=tuple(
                    w // channels if w % channels == 0 else w / channels for w in widths),
                resblock_updown=down, id_condition_type=identity, audio_condition_type=audio,
                n_motion_frames=n_motion, grayscale_motion=grayscale, n_audio_motion_embs=(window - 1) // 2,
                audio_channels=audio_channels)


def _blocks_per_level(state: Mapping[str, torch.Tensor], n_inputs: int) -> int:
    """Residual blocks per level: the first output block that ends in an upsampling block closes the
    deepest level after num_res_blocks + 1 blocks."""
    n_outputs = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("output_blocks."))
    for index in range(n_outputs):
        if any(k.startswith(f"output_blocks.{index}.{layer}.in_layers.") for layer in (1, 2) for k in state):
            return index
    return n_inputs - 1    # one level: no upsampling anywhere


def _motion_layout(channels: int) -> tuple[int, bool]:
    """(motion frames, grayscale) from the first convolution's extra channels (official: 2 frames)."""
    if channels in (6, 2):
        return 2, channels == 2
    if channels % 3 == 0:
        return channels // 3, False
    return channels, True


# -- building models ------------------------------------------------------------------------------------
def load_unet(path: PathLike, config: DiffusedHeadsConfig | UNetConfig | None = None) -> DiffusedHeadsUNet:
    """The UNet of any supported file, its layout from `config` or else from the file."""
    state, settings = read_unet_file(path)
    if not state:
        raise CheckpointError(path, "holds no tensors")
    if isinstance(config, DiffusedHeadsConfig):
        config = config.unet
    unet = DiffusedHeadsUNet(config or infer_unet_config(state, settings, path=path))
    load_into(unet, state, source=path)
    return unet


def load_model(path: PathLike) -> tuple[DiffusedHeadsConfig, DiffusedHeadsUNet, tuple[dict, dict] | None]:
    """(the full config, the UNet, the speech encoder's (config dict, tensors) when our folder holds one) of
    any supported file, read once: the UNet layout from the file and, for Lightning checkpoints and our
    folders, the diffusion length and audio features they state."""
    path = Path(path)
    audio = None
    if path.is_dir():
        config, state, audio_state, audio_config = load_converted(path)
        audio = (audio_config, audio_state) if audio_state is not None else None
    else:
        state, settings = read_unet_file(path)
        if not state:
            raise CheckpointError(path, "holds no tensors")
        config = DiffusedHeadsConfig(unet=infer_unet_config(state, settings, path=path),
                                     n_timesteps=int(settings.get("n_timesteps", 1000)))
    unet = DiffusedHeadsUNet(config.unet)
    load_into(unet, state, source=path)
    return config, unet, audio


def save_converted(folder: PathLike, config: DiffusedHeadsConfig, unet_state: Mapping[str, torch.Tensor], *,
                   audio_encoder: tuple[Any, Mapping[str, torch.Tensor]] | None = None,
                   metadata: Mapping[str, str] | None = None) -> Path:
    """Write our folder: the UNet (and the speech encoder as (its config, its tensors), when given)."""
    tensors = {UNET_PREFIX + k: v for k, v in unet_state.items()}
    audio_config = None
    if audio_encoder is not None:
        audio_config, audio_state = audio_encoder
        tensors.update({AUDIO_PREFIX + k: v for k, v in audio_state.items()})
        audio_config = audio_config.to_dict() if hasattr(audio_config, "to_dict") else asdict(audio_config)
    return save_model_folder(folder, METHOD, config.to_dict(), tensors, metadata=metadata,
                             audio_encoder=audio_config)


def load_converted(folder: PathLike) -> tuple[DiffusedHeadsConfig, dict, dict | None, dict | None]:
    """(config, UNet tensors, speech-encoder tensors or None, its config dict or None) of our folder."""
    config, state = load_model_folder(folder, METHOD, "Diffused Heads", DiffusedHeadsConfig.from_dict)
    unet = {k[len(UNET_PREFIX):]: v for k, v in state.items() if k.startswith(UNET_PREFIX)}
    audio = {k[len(AUDIO_PREFIX):]: v for k, v in state.items() if k.startswith(AUDIO_PREFIX)} or None
    return config, unet, audio, _raw_config(folder).get("audio_encoder")


def _raw_config(folder: PathLike) -> dict:
    import json

    return json.loads((Path(folder) / "config.json").read_text())
