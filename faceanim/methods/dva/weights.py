"""Loading DVA weights, in every form they come in; nothing is downloaded and no GPU is needed.

- the released Lightning checkpoint (`epoch=51-step=1000000.ckpt`, or a training run's `last.ckpt`): the
  whole model twice, under `ema_model.*` (used by the official editing scripts, our default) and `model.*`
  (`weights="model"`); the frozen ArcFace / landmark / parser nets are inside it (`encoder.*`); the network
  settings come from its `hyper_parameters` (the official `TrainConfig` as a dict), else the release's;
- the three pretrained files the official code builds the encoder from (`build_model`): `model_ir_se50.pth`,
  `mobilenet_224_model_best_gdconv_external.pth.tar` (`state_dict`, `module.` prefixes) and `79999_iter.pth`;
- the identity statistics `latent.pkl` (`torch.save` of {conds, conds_mean, conds_std}: read by the
  weights-only unpickler, so a file that would run code is refused);
- the attribute classifier (`diffusion_video_autoencoder_cls/last.ckpt`: `classifier.*` = Linear(512, 40)
  over the 40 CelebA-HQ attributes, its EMA twin, and the `conds_mean` / `conds_std` it was trained with);
- our converted folder (`faceanim convert dva`): `config.json` ({"method": "dva", "model": DVAConfig,
  "attributes": [...] or null}) and `model.safetensors` with `model.*`, optionally `classifier.*` and
  `identity_stats.{mean,std}`.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from ...checkpoints import (OpaqueObject, load_checkpoint, load_into, load_model_folder, load_pretrained,
                            save_model_folder, state_dict_from)
from ...errors import CheckpointError, InputError
from .config import DVAConfig
from .editing import IdentityStats
from .model import DVAModel

PathLike = str | os.PathLike
METHOD = "dva"
WEIGHT_SETS = {"ema": "ema_model.", "model": "model."}
ID_DIM = 512

# CelebA(-HQ) attribute order of the official `CelebAttrDataset.id_to_cls` (the classifier's 40 outputs)
ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips",
    "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin",
    "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open",
    "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline",
    "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young")


@dataclass(frozen=True)
class AttributeClassifier:
    """The linear attribute classifier: weight (A, 512), bias (A,), the attribute names, and the identity
    statistics stored with it (None when the file has none)."""

    weight: torch.Tensor
    bias: torch.Tensor
    attributes: tuple[str, ...] = ATTRIBUTES
    stats: IdentityStats | None = None

    def direction(self, attribute: str) -> torch.Tensor:
        """The weight row of `attribute`; InputError listing the names when it is unknown."""
        if attribute not in self.attributes:
            raise InputError(None, f"unknown attribute {attribute!r}; the classifier knows: "
                                   f"{', '.join(self.attributes)}")
        return self.weight[self.attributes.index(attribute)]


# -- the diffusion model ----------------------------------------------------------------------------------
def read_model_file(path: PathLike, weights: str = "ema") -> tuple[DVAConfig | None, dict[str, torch.Tensor]]:
    """(the settings the file states or None, the model's tensors under the official names, no prefix)."""
    if weights not in WEIGHT_SETS:
        raise InputError(None, f"weights must be one of {', '.join(WEIGHT_SETS)}, not {weights!r}")
    path = Path(path)
    if path.is_dir():
        config, state = load_model_folder(path, METHOD, "DVA", _parse_folder_config)
        return config, _component(state, "model.")
    loaded = load_checkpoint(path)
    if not isinstance(loaded, Mapping):
        raise CheckpointError(path, f"holds {type(loaded).__name__}, not DVA weights")
    if "state_dict" in loaded and isinstance(loaded["state_dict"], Mapping):        # Lightning
        state = loaded["state_dict"]
        found = _component(state, WEIGHT_SETS[weights])
        if not found:
            other = [name for name, prefix in WEIGHT_SETS.items() if _component(state, prefix)]
            hint = f" (it has the '{other[0]}' weights)" if other else ""
            raise CheckpointError(path, f"is not a DVA checkpoint with '{weights}' weights: no "
                                        f"{WEIGHT_SETS[weights]}* tensors{hint}")
        return config_from_hparams(loaded.get("hyper_parameters")), found
    tensors = {k: v for k, v in loaded.items() if isinstance(v, torch.Tensor)}
    for prefix in (WEIGHT_SETS[weights], "model."):
        if _component(tensors, prefix):
            return None, _component(tensors, prefix)
    return None, tensors


def _component(state: Mapping[str, Any], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix) and isinstance(v, torch.Tensor)}


def _parse_folder_config(values: Mapping[str, Any]) -> DVAConfig:
    return _config_from(values, strict=True)


def config_from_hparams(hparams: Any) -> DVAConfig | None:
    """The network settings of a Lightning checkpoint's `hyper_parameters` (the official `TrainConfig` as a
    dict); None when it has none. Other TrainConfig fields are ignored."""
    if isinstance(hparams, OpaqueObject):
        hparams = hparams.state
    if not isinstance(hparams, Mapping):
        return None
    return _config_from(hparams, strict=False)


def _config_from(values: Mapping[str, Any], *, strict: bool) -> DVAConfig:
    fields = {f.name for f in dataclasses.fields(DVAConfig)}
    unknown = sorted(set(values) - fields)
    if strict and unknown:
        raise InputError(None, f"unknown DVA settings: {', '.join(unknown)}")
    kept = {k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items() if k in fields}
    try:
        return DVAConfig(**kept)
    except (TypeError, ValueError) as err:
        raise InputError(None, f"DVA settings do not parse ({err})") from None


def load_model(path: PathLike, *, weights: str = "ema", config: DVAConfig | None = None,
               device: str | torch.device = "cpu") -> tuple[DVAConfig, DVAModel]:
    """The model of a released checkpoint, a training run's checkpoint, a state dict or a converted folder,
    in eval mode. Every name and shape is checked (CheckpointError naming the file otherwise)."""
    stated, state = read_model_file(path, weights)
    config = config or stated or DVAConfig()
    model = DVAModel(config)
    if "encoder.linear.weight" not in state:
        raise CheckpointError(path, "is not a DVA model: no encoder.linear (Linear(614, 512)) weights")
    load_into(model, state, strict=True, source=path)
    return config, model.to(device).eval()


def build_model(config: DVAConfig, *, idnet: PathLike, lndnet: PathLike, bgnet: PathLike) -> DVAModel:
    """A new model (random UNet and `encoder.linear`, as training starts) whose frozen nets come from the three
    pretrained files the official code reads."""
    model = DVAModel(config)
    load_pretrained_encoder(model, idnet=idnet, lndnet=lndnet, bgnet=bgnet)
    return model


def load_pretrained_encoder(model: DVAModel, *, idnet: PathLike, lndnet: PathLike, bgnet: PathLike) -> None:
    """Load `model_ir_se50.pth`, the MobileNet-GDConv landmark file and BiSeNet's `79999_iter.pth` into the
    encoder's frozen nets (strictly; `module.` prefixes and `num_batches_tracked` gaps tolerated)."""
    targets = (("idnet", idnet, None), ("lndnet", lndnet, "state_dict"), ("bgnet", bgnet, None))
    for name, path, key in targets:
        loaded = load_checkpoint(path)
        if key and isinstance(loaded, Mapping) and key in loaded:
            loaded = loaded[key]
        state = state_dict_from(loaded, path=path)
        backbone = getattr(model.encoder, name).backbone
        # files saved before PyTorch 0.4.1 have no BatchNorm counters; keep the fresh ones
        for key_name, value in backbone.state_dict().items():
            if key_name.endswith("num_batches_tracked"):
                state.setdefault(key_name, value)
        load_into(backbone, state, strict=True, source=path)


# -- identity statistics and the attribute classifier -------------------------------------------------------
def load_identity_stats(path: PathLike) -> IdentityStats:
    """`latent.pkl` (or our safetensors with `mean`/`std`): the z-normalisation statistics."""
    loaded = load_checkpoint(path)
    if not isinstance(loaded, Mapping):
        raise CheckpointError(path, f"holds {type(loaded).__name__}, not identity statistics")
    for mean_key, std_key in (("conds_mean", "conds_std"), ("mean", "std"), ("identity_stats.mean",
                                                                              "identity_stats.std")):
        if mean_key in loaded and std_key in loaded:
            return _stats(loaded[mean_key], loaded[std_key], path)
    raise CheckpointError(path, "is not a DVA identity statistics file (no conds_mean and conds_std)")


def _stats(mean: Any, std: Any, path: PathLike) -> IdentityStats:
    if not (isinstance(mean, torch.Tensor) and isinstance(std, torch.Tensor)):
        raise CheckpointError(path, "identity statistics are not tensors")
    mean, std = mean.reshape(-1).float(), std.reshape(-1).float()
    if mean.numel() != ID_DIM or std.numel() != ID_DIM:
        raise CheckpointError(path, f"identity statistics have {mean.numel()} values, not {ID_DIM}")
    if not (torch.isfinite(mean).all() and torch.isfinite(std).all() and (std > 0).all()):
        raise CheckpointError(path, "identity statistics are not finite with a positive spread")
    return IdentityStats(mean, std)


def save_identity_stats(path: PathLike, identities: torch.Tensor) -> Path:
    """Write `latent.pkl` as the official code does (`torch.save` of conds, conds_mean, conds_std), atomically."""
    from ...fileio import atomic_path

    identities = identities.detach().float().cpu()
    if identities.ndim != 2 or identities.shape[1] != ID_DIM or identities.shape[0] < 2:
        raise InputError(None, f"identity statistics need at least 2 identities of {ID_DIM} values")
    with atomic_path(path) as temporary:
        torch.save({"conds": identities, "conds_mean": identities.mean(dim=0),
                    "conds_std": identities.std(dim=0)}, temporary)
    return Path(path)


def load_classifier(path: PathLike, *, use_ema: bool = False) -> AttributeClassifier:
    """The attribute classifier of the official `ClsModel` checkpoint (its `classifier`, as the editing
    script uses; `use_ema` for `ema_classifier`), a state dict, or a converted folder."""
    path = Path(path)
    if path.is_dir():
        config, state = load_pretrained(path)
        attributes = config.get("attributes") if isinstance(config, dict) else None
        if not attributes:
            raise CheckpointError(path, "holds no attribute classifier (convert with --classifier)")
        return classifier_from_state(state, tuple(attributes), path, use_ema=use_ema)
    loaded = load_checkpoint(path)
    state = loaded.get("state_dict", loaded) if isinstance(loaded, Mapping) else None
    if not isinstance(state, Mapping):
        raise CheckpointError(path, "is not a DVA attribute classifier checkpoint")
    return classifier_from_state(state, ATTRIBUTES, path, use_ema=use_ema)


def classifier_from_state(state: Mapping[str, Any], attributes: tuple[str, ...], path: PathLike, *,
                          use_ema: bool = False) -> AttributeClassifier:
    """The classifier (and the statistics stored with it) of a loaded state dict; `path` names it in errors."""
    prefix = "ema_classifier." if use_ema else "classifier."
    weight, bias = state.get(prefix + "weight"), state.get(prefix + "bias")
    if not isinstance(weight, torch.Tensor) or not isinstance(bias, torch.Tensor):
        raise CheckpointError(path, f"is not a DVA attribute classifier (no {prefix}weight and {prefix}bias)")
    if weight.ndim != 2 or weight.shape[1] != ID_DIM or weight.shape[0] != len(attributes) \
            or bias.shape != (weight.shape[0],):
        raise CheckpointError(path, f"classifier weight {tuple(weight.shape)} is not ({len(attributes)}, {ID_DIM})")
    return AttributeClassifier(weight.float(), bias.float(), tuple(attributes), _stored_stats(state, path))


def _stored_stats(state: Mapping[str, Any], path: PathLike) -> IdentityStats | None:
    """The identity statistics a state dict carries (the classifier's buffers, or a converted folder's)."""
    for mean_key, std_key in (("conds_mean", "conds_std"), ("identity_stats.mean", "identity_stats.std")):
        if mean_key in state and std_key in state:
            return _stats(state[mean_key], state[std_key], path)
    return None


# -- our converted folder -----------------------------------------------------------------------------------
def save_converted(folder: PathLike, config: DVAConfig, model_state: Mapping[str, torch.Tensor], *,
                   classifier: AttributeClassifier | None = None, stats: IdentityStats | None = None,
                   metadata: Mapping[str, str] | None = None) -> Path:
    """One folder with the model, and optionally the classifier and the identity statistics."""
    state, seen = {}, set()
    for key, value in model_state.items():
        # the landmark net holds its MobileNet twice over one storage; safetensors stores each tensor once
        shared = value.data_ptr() in seen
        seen.add(value.data_ptr())
        state[f"model.{key}"] = value.clone() if shared else value
    if classifier is not None:
        state.update({"classifier.weight": classifier.weight, "classifier.bias": classifier.bias})
        stats = stats or classifier.stats
    if stats is not None:
        state.update({"identity_stats.mean": stats.mean, "identity_stats.std": stats.std})
    attributes = list(classifier.attributes) if classifier is not None else None
    return save_model_folder(folder, METHOD, dataclasses.asdict(config), state, metadata=metadata,
                             attributes=attributes)


def folder_extras(folder: PathLike) -> tuple[AttributeClassifier | None, IdentityStats | None]:
    """The classifier and the identity statistics a converted folder holds (None where it holds none)."""
    config, state = load_pretrained(folder)
    attributes = config.get("attributes") if isinstance(config, dict) else None
    classifier = classifier_from_state(state, tuple(attributes), folder) if attributes else None
    return classifier, _stored_stats(state, folder)
