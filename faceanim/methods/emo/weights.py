"""Loading EMO weights in the layouts they are published in; nothing is downloaded, nothing is executed.

- Hallo's `net.pth` (`pretrained_models/hallo/net.pth`): the state dict of its `Net` (`reference_unet.`,
  `denoising_unet.` with motion and audio modules, `face_locator.`, `imageproj.`, `audioproj.`), read by the
  weights-only unpickler and loaded strictly;
- diffusers folders: Stable Diffusion 1.5 (`unet/`, `vae/`; either the whole folder or the subfolder) and
  `sd-vae-ft-mse`: `config.json` + `diffusion_pytorch_model.safetensors` (or `.bin`, weights-only);
- AnimateDiff's `mm_sd_v15_v2.ckpt` (or `.safetensors`): the motion modules, keys `down_blocks.0.motion_modules.
  0.temporal_transformer...`, with any wrapper prefix;
- Hallo's `pretrained_models` folder as its README lays it out: `hallo/net.pth`, `sd-vae-ft-mse/`,
  `stable-diffusion-v1-5/`, `motion_module/mm_sd_v15_v2.ckpt`, `wav2vec/wav2vec2-base-960h/`,
  `face_analysis/models/` (the insightface ONNX files);
- our converted folder (`faceanim convert emo`): `config.json` ({"method": "emo", "model": EMOConfig,
  "vae": the VAE's diffusers config}) and `model.safetensors` with `model.*` and `vae.*`.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch

from ...checkpoints import load_checkpoint, load_into, load_pretrained, save_model_folder, state_dict_from
from ...errors import CheckpointError, InputError, MissingWeightsError
from .config import EMOConfig, PRESETS, hallo
from .model import EMOModel

PathLike = str | os.PathLike
METHOD = "emo"
NET_PARTS = ("reference_unet.", "denoising_unet.", "face_locator.", "audioproj.")
_DIFFUSERS_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
                      "diffusion_pytorch_model.bin", "model.safetensors")
# diffusers configs carry bookkeeping entries the constructors do not take
_NOT_SETTINGS = ("_class_name", "_diffusers_version", "_name_or_path", "_use_default_values")


# -- diffusers folders ----------------------------------------------------------------------------------------
def read_diffusers_folder(folder: PathLike, subfolder: str | None = None) -> tuple[dict[str, Any], dict]:
    """(config.json, tensors) of a diffusers model folder; `folder/subfolder` is used when it exists."""
    folder = Path(folder)
    if subfolder and (folder / subfolder / "config.json").is_file():
        folder = folder / subfolder
    if not folder.exists():
        raise MissingWeightsError(f"{folder}: no such folder")
    config_path = folder / "config.json"
    if not config_path.is_file():
        where = f" (nor {subfolder}/config.json)" if subfolder else ""
        raise CheckpointError(folder, f"is not a diffusers model folder: no config.json{where}")
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(config_path, f"is not valid JSON ({err})") from None
    for name in _DIFFUSERS_WEIGHTS:
        if (folder / name).is_file():
            return config, state_dict_from(load_checkpoint(folder / name), path=folder / name)
    raise CheckpointError(folder, f"has no weights file ({', '.join(_DIFFUSERS_WEIGHTS[:3])})")


def read_diffusers_config(folder: PathLike, subfolder: str | None = None) -> dict[str, Any]:
    """Only the config.json of a diffusers folder (or of its `subfolder`)."""
    folder = Path(folder)
    if subfolder and (folder / subfolder / "config.json").is_file():
        folder = folder / subfolder
    try:
        return json.loads((folder / "config.json").read_text())
    except FileNotFoundError:
        raise CheckpointError(folder, "is not a diffusers model folder: no config.json") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(folder / "config.json", f"is not valid JSON ({err})") from None


def build_vae(config: Mapping[str, Any]):
    from diffusers import AutoencoderKL

    settings = {k: (tuple(v) if isinstance(v, list) else v) for k, v in config.items() if k not in _NOT_SETTINGS}
    try:
        return AutoencoderKL(**settings)
    except TypeError as err:
        raise InputError(None, f"VAE settings do not parse ({err})") from None


def load_vae(path: PathLike, *, device: str | torch.device = "cpu"):
    """`sd-vae-ft-mse`, an SD folder's `vae/` or a converted EMO folder's VAE -> `AutoencoderKL` (eval)."""
    path = Path(path)
    if is_converted_folder(path):
        config, state = _read_converted(path)
        vae_config = config.get("vae")
        if not vae_config:
            raise CheckpointError(path, "holds no VAE (convert with --vae)")
        return _built_vae(vae_config, _prefixed(state, "vae."), path).to(device)
    config, state = read_diffusers_folder(path, "vae")
    return _built_vae(config, state, path).to(device)


def _built_vae(config: Mapping[str, Any], state: Mapping, source: PathLike):
    vae = build_vae(config)
    load_into(vae, state, strict=True, source=source)
    return vae.eval()


def config_from_sd_unet(unet_config: Mapping[str, Any], base: EMOConfig | None = None) -> EMOConfig:
    """The backbone widths of an SD-1.x `unet/config.json`, the rest from `base` (Hallo's by default)."""
    base = base or hallo()
    heads = unet_config.get("attention_head_dim", base.attention_head_dim)
    return base.replace(in_channels=unet_config.get("in_channels", 4), out_channels=unet_config.get("out_channels", 4),
                        block_out_channels=tuple(unet_config["block_out_channels"]),
                        layers_per_block=unet_config.get("layers_per_block", 2),
                        attention_head_dim=heads if isinstance(heads, int) else heads[0],
                        cross_attention_dim=unet_config["cross_attention_dim"],
                        norm_num_groups=unet_config.get("norm_num_groups", 32),
                        norm_eps=unet_config.get("norm_eps", 1e-5),
                        sample_size=unet_config.get("sample_size", 64),
                        image_size=8 * int(unet_config.get("sample_size", 64)))


def config_from_state(state: Mapping[str, torch.Tensor], base: EMOConfig) -> EMOConfig:
    """`base` with every setting that the tensors of a net.pth fix read from their shapes: widths, layers,
    cross-attention, audio and identity widths, face-locator channels, the speed layers' presence. (Head counts
    and the image size are not in the shapes: they come from `base`.)"""
    def shape(key: str) -> tuple[int, ...] | None:
        value = state.get(key)
        return tuple(value.shape) if value is not None else None

    unet = "denoising_unet."
    widths = tuple(shape(f"{unet}down_blocks.{i}.resnets.0.conv1.weight")[0] for i in range(4)
                   if shape(f"{unet}down_blocks.{i}.resnets.0.conv1.weight"))
    if len(widths) != 4:
        return base
    layers = len({k.split(".")[4] for k in state if k.startswith(f"{unet}down_blocks.0.resnets.")})
    changes: dict[str, Any] = dict(block_out_channels=widths, layers_per_block=layers,
                                   in_channels=shape(f"{unet}conv_in.weight")[1],
                                   out_channels=shape(f"{unet}conv_out.weight")[0])
    cross = shape(f"{unet}down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight")
    if cross:
        changes["cross_attention_dim"] = cross[1]
    audio_block = f"{unet}down_blocks.0.audio_modules.0.transformer_blocks.0."
    masked = shape(audio_block + "attn2_0.to_k.weight")
    plain = shape(audio_block + "attn2.to_k.weight")
    if masked or plain:
        changes["audio_attention"] = "masked" if masked else "plain"
        changes["audio_attention_dim"] = (masked or plain)[1]
    proj1, proj3, norm = shape("audioproj.proj1.weight"), shape("audioproj.proj3.weight"), shape("audioproj.norm.weight")
    if proj1 and proj3 and norm:
        flat = proj1[1] // base.audio_window      # blocks x channels of one frame's features
        if base.audio_blocks * base.audio_channels == flat:
            blocks, channels = base.audio_blocks, base.audio_channels
        elif flat % base.audio_channels == 0:
            blocks, channels = flat // base.audio_channels, base.audio_channels
        else:
            blocks, channels = 1, flat
        changes.update(audio_intermediate_dim=proj1[0], audio_context_tokens=proj3[0] // norm[0],
                       audio_blocks=blocks, audio_channels=channels)
    image = shape("imageproj.proj.weight")
    if image:
        tokens = image[0] // shape("imageproj.norm.weight")[0]
        changes.update(identity_dim=image[1], identity_tokens=tokens)
    elif "null_context" in state:
        changes.update(identity_dim=None, identity_tokens=shape("null_context")[1])
    locator = [shape(f"face_locator.blocks.{i}.weight") for i in range(1, 64, 2)]
    locator = [s[0] for s in locator if s]
    if shape("face_locator.conv_in.weight"):
        changes["face_locator_channels"] = (shape("face_locator.conv_in.weight")[0], *locator)
    first, last = shape("speed_encoder.mlp.0.weight"), shape("speed_encoder.mlp.2.weight")
    if first and last:
        from .config import SpeedConfig

        speed = base.speed or SpeedConfig()
        buckets = first[1] // (2 * speed.window + 1)
        if buckets != speed.buckets:
            speed = dataclasses.replace(speed, buckets=buckets, centers=(), radii=())
        changes["speed"] = dataclasses.replace(speed, embed_dim=first[0], tokens=last[0] // first[0])
    else:
        changes["speed"] = None
    return base.replace(**changes)


def load_motion_modules(path: PathLike) -> dict[str, torch.Tensor]:
    """AnimateDiff motion-module weights, keyed from the UNet block down (`down_blocks.0.motion_modules...`)."""
    loaded = load_checkpoint(path)
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    state = state_dict_from(loaded, path=path)
    out = {}
    for key, value in state.items():
        if ".motion_modules." not in key:
            continue
        for stage in ("down_blocks.", "mid_block.", "up_blocks."):
            if stage in key:
                out[key[key.index(stage):]] = value
                break
    if not out:
        raise CheckpointError(path, "holds no motion-module weights (no *.motion_modules.* tensors)")
    return out


# -- building and loading the model ---------------------------------------------------------------------------
def build_model(config: EMOConfig | None = None, *, base_model: PathLike | None = None,
                motion_module: PathLike | None = None) -> tuple[EMOConfig, EMOModel]:
    """A model to start training from: ReferenceNet and the backbone's image layers from an SD-1.5 UNet, the
    temporal modules from AnimateDiff, every EMO/Hallo layer new (the zero-initialised ones start silent)."""
    unet_state = None
    if base_model is not None:
        unet_config, unet_state = read_diffusers_folder(base_model, "unet")
        config = config_from_sd_unet(unet_config, config)
    config = config or hallo()
    model = EMOModel(config)
    if unet_state is not None:
        reference = {k: v for k, v in unet_state.items() if not k.startswith(("conv_norm_out.", "conv_out."))}
        load_into(model.reference_unet, reference, strict=True, source=base_model)
        _load_partial(model.denoising_unet, _backbone_keys(unet_state), base_model, "the SD UNet")
    if motion_module is not None:
        _load_partial(model.denoising_unet, load_motion_modules(motion_module), motion_module, "motion modules")
    return config, model


def _backbone_keys(unet_state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """SD's 2D UNet names as the backbone has them (diffusers' doubled downsampler name dropped)."""
    return {k.replace(".downsamplers.0.Conv2d_0.", ".downsamplers.0.conv."): v for k, v in unet_state.items()}


def _load_partial(module: torch.nn.Module, state: Mapping[str, torch.Tensor], source: PathLike, what: str) -> None:
    """Load the tensors of `state` that the module has; any it does not have, or with another shape, is an error
    (the file is not what it was given as)."""
    own = module.state_dict()
    foreign = sorted(k for k in state if k not in own)
    wrong = sorted(k for k in state if k in own and own[k].shape != state[k].shape)
    if foreign or wrong:
        bad = (foreign or wrong)[0]
        raise CheckpointError(source, f"does not fit the model as {what}: {len(foreign)} unknown and {len(wrong)} "
                                      f"wrongly shaped tensors (e.g. {bad})")
    module.load_state_dict(dict(state), strict=False)


def read_net(path: PathLike) -> dict[str, torch.Tensor]:
    """Hallo's `net.pth` (or a training run's): its tensors under the `Net` names."""
    loaded = load_checkpoint(path)
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    state = state_dict_from(loaded, path=path)
    missing = [prefix.rstrip(".") for prefix in NET_PARTS if not any(k.startswith(prefix) for k in state)]
    if missing:
        raise CheckpointError(path, f"is not a Hallo/EMO net.pth: it has no {', '.join(missing)} weights")
    return state


def load_model(checkpoint: PathLike, *, config: EMOConfig | None = None, preset: str | None = None,
               device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> tuple[EMOConfig, EMOModel]:
    """The model of a `net.pth`, a Hallo `pretrained_models` folder or a converted folder, in eval mode.

    A `net.pth` states no settings: `config`, else `preset` (default "hallo") gives them, and every name and
    shape is checked against them (CheckpointError naming the file otherwise)."""
    path = resolve_checkpoint(checkpoint)
    if path.is_dir():
        stated, full = _read_converted(path)
        config = config or _parse_model_config(stated["model"], path)
        state = _prefixed(full, "model.")
    else:
        state = read_net(path)
        if config is None:
            config = _preset(preset or "hallo")
            found = hallo_layout(path)
            if "base_model" in found:   # Hallo builds its UNets from the SD-1.5 unet/config.json
                config = config_from_sd_unet(read_diffusers_config(found["base_model"], "unet"), config)
            if "wav2vec2" in found:     # its audio features: hidden_states[1:] of this wav2vec2
                config = _with_wav2vec_layout(config, found["wav2vec2"])
            config = config_from_state(state, config)
    model = EMOModel(config)
    load_into(model, state, strict=True, source=path)
    model = model.eval().to(device=device, dtype=dtype)
    return config, model


def _with_wav2vec_layout(config: EMOConfig, folder: Path) -> EMOConfig:
    try:
        settings = json.loads((folder / "config.json").read_text())
        return config.replace(audio_blocks=int(settings["num_hidden_layers"]),
                              audio_channels=int(settings["hidden_size"]))
    except (OSError, ValueError, KeyError, TypeError):
        return config


def _preset(name: str) -> EMOConfig:
    if name not in PRESETS:
        raise InputError(None, f"unknown EMO preset {name!r} (known: {', '.join(PRESETS)})")
    return PRESETS[name]()


def resolve_checkpoint(checkpoint: PathLike) -> Path:
    """A converted folder or net.pth file as given, or the net.pth inside a Hallo `pretrained_models` folder."""
    path = Path(checkpoint)
    if not path.exists():
        raise MissingWeightsError(f"{path}: no such file or folder")
    if path.is_dir() and not (path / "config.json").is_file():
        for candidate in (path / "hallo" / "net.pth", path / "net.pth"):
            if candidate.is_file():
                return candidate
        raise CheckpointError(path, "is neither a converted EMO folder (config.json) nor a Hallo pretrained_models "
                                    "folder (hallo/net.pth)")
    return path


def hallo_layout(root: PathLike) -> dict[str, Path]:
    """The pretrained parts found in a Hallo `pretrained_models` folder (only those present)."""
    root = Path(root)
    if root.is_file():
        root = root.parent.parent if root.parent.name == "hallo" else root.parent
    candidates = {"vae": root / "sd-vae-ft-mse", "base_model": root / "stable-diffusion-v1-5",
                  "motion_module": root / "motion_module" / "mm_sd_v15_v2.ckpt",
                  "wav2vec2": root / "wav2vec" / "wav2vec2-base-960h",
                  "face_analysis": root / "face_analysis" / "models" / "w600k_r50.onnx"}
    return {name: path for name, path in candidates.items() if path.exists()}


# -- our converted folder ---------------------------------------------------------------------------------------
def _converted_config(folder: PathLike) -> dict | None:
    """A converted EMO folder's config.json, or None when `folder` is not one."""
    try:
        config = json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) and config.get("method") == METHOD else None


def is_converted_folder(folder: PathLike) -> bool:
    return Path(folder).is_dir() and _converted_config(folder) is not None


def converted_vae_config(folder: PathLike) -> dict | None:
    """The VAE settings a converted folder holds (None: it holds no VAE)."""
    return (_converted_config(folder) or {}).get("vae") or None


def _read_converted(folder: Path) -> tuple[dict, dict]:
    """(config.json, tensors) of a converted EMO folder; CheckpointError when it holds another method."""
    config, state = load_pretrained(folder)
    if not isinstance(config, dict) or config.get("method") != METHOD or not isinstance(config.get("model"), dict):
        found = config.get("method") if isinstance(config, dict) else None
        raise CheckpointError(folder / "config.json", f"is not a converted EMO model (method: {found})")
    return config, state


def _parse_model_config(values: Mapping[str, Any], source: Path) -> EMOConfig:
    try:
        return EMOConfig.from_dict(values)
    except (InputError, TypeError, ValueError) as err:
        raise CheckpointError(source / "config.json", f"EMO settings do not parse ({getattr(err, 'problem', err)})")


def _prefixed(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def save_converted(folder: PathLike, config: EMOConfig, model_state: Mapping[str, torch.Tensor], *,
                   vae=None, metadata: Mapping[str, str] | None = None) -> Path:
    """One folder with the model and (optionally) its VAE, which `load_model` / `load_vae` read alone."""
    state = {f"model.{k}": v for k, v in model_state.items()}
    vae_config = None
    if vae is not None:
        state.update({f"vae.{k}": v for k, v in vae.state_dict().items()})
        vae_config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(vae.config).items()
                      if not k.startswith("_")}
    return save_model_folder(folder, METHOD, config.to_dict(), state, metadata=metadata, vae=vae_config)
