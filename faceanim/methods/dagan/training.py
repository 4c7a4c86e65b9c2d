"""Training DaGAN on the shared trainer: the losses and updates of the official `GeneratorFullModel`
and `DiscriminatorFullModel` (modules/model.py, train.py), as a `TrainingMethod`.

A step has two phases, as the official loop:
- "generator": the frozen depth network gives the source and driving disparities (no gradient), the
  keypoint detector reads RGB-D, the generator moves the source to the driving keypoints, and one
  backward pass of the weighted losses updates the generator and the keypoint detector together:
  pyramid VGG-19 perceptual, LSGAN generator loss and feature matching (the discriminator sees the
  driving keypoints detached), equivariance of keypoint values and Jacobians under a random
  affine + thin-plate-spline warp (the depth recomputed on the warped frame), keypoint distance and,
  optionally, a depth constraint (L1 between the driving depth and the prediction's depth);
- "discriminator": LSGAN on the real driving frame vs the detached prediction, with the detached
  driving keypoints' heatmaps; it runs only when `generator_gan` is not 0.

Keypoint distance: the released code scores each keypoint pair closer than 0.2 with
`1 - sign(d - 0.2)`, whose gradient is zero, so the term only logs a number (`kp_distance_mode:
official`). The default "hinge" mode scores the same pairs `(2 / margin) * relu(margin - d)`: equal to
the official value for coinciding keypoints, falling linearly to 0 at the margin, with a gradient that
pushes crowded keypoints apart.

The depth network and VGG-19 are frozen helpers loaded from local files (`--depth-encoder`,
`--depth-decoder`, `--vgg19` or FACEANIM_VGG19); a run can start from a converted DaGAN folder or an
official checkpoint (`--init`). At the end the trained networks are exported as a converted folder
(`OUTPUT/model`, config.json + model.safetensors) that `faceanim reenact --method dagan --checkpoint`
loads; to export an earlier checkpoint, resume from it with `max_steps` equal to its step (nothing is
trained, the loaded state is exported).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ...checkpoints import load_into, load_pretrained
from ...errors import InputError
from ...losses import (ImagePyramid, PyramidPerceptualLoss, RandomWarp, feature_matching_loss,
                       lsgan_discriminator_loss, lsgan_generator_loss)
from ...nn.backbones import load_vgg19
from ...nn.precision import full_precision
from ...registry import WeightSpec, get_method
from ...train import (FitResult, PairOptions, Phase, TrainingMethod, export_on_main, fit_in_epochs,
                      frame_augmentation, image_grid, open_frame_pairs)
from ...warping.keypoints import Keypoints
from .config import DaGANTrainConfig, WeightFiles
from .model import DaGANModel
from .weights import load_official, save_converted

log = logging.getLogger(__name__)

EXPORT_FOLDER = "model"
COMPONENTS = ("generator", "kp_detector", "discriminator", "depth_encoder", "depth_decoder")


# ------------------------------------------------------------------------------------- losses

def kp_distance_loss(value: torch.Tensor, margin: float = 0.2, mode: str = "hinge") -> torch.Tensor:
    """How much keypoints (B, K, 2) crowd together, as a mean over all (B, K, K) ordered pairs.

    "official": `1 - sign(d - margin)`, i.e. 2 for pairs closer than `margin` and 0 otherwise (zero
    gradient everywhere); "hinge": `(2 / margin) * relu(margin - d)`. A point paired with itself counts
    as `margin` apart, so it adds 0 in both modes."""
    if mode not in ("hinge", "official"):
        raise ValueError(f"unknown kp_distance mode {mode!r}")
    offsets = value.unsqueeze(2) - value.unsqueeze(1)
    distance = torch.sqrt((offsets * offsets).sum(-1) + 1e-8)
    self_pairs = torch.eye(value.shape[1], dtype=distance.dtype, device=distance.device) * margin
    excess = distance + self_pairs - margin
    if mode == "official":
        return (1 - torch.sign(excess)).mean()
    return (2.0 / margin) * torch.relu(-excess).mean()


def equivariance_value_loss(kp_driving: Keypoints, kp_warped: Keypoints, warp: RandomWarp) -> torch.Tensor:
    """mean |p_driving - warp(p_warped)|: keypoints found on the warped frame, mapped back."""
    return (kp_driving.value - warp.warp_coordinates(kp_warped.value)).abs().mean()


def equivariance_jacobian_loss(kp_driving: Keypoints, kp_warped: Keypoints, warp: RandomWarp) -> torch.Tensor:
    """mean |I - J_driving^-1 (dwarp J_warped)|: the Jacobians compose with the warp's."""
    composed = warp.jacobian(kp_warped.value) @ kp_warped.jacobian
    with full_precision(composed):  # no half-precision matrix inverse
        product = torch.linalg.inv(kp_driving.jacobian.float()) @ composed.float()
    return (torch.eye(2, dtype=product.dtype, device=product.device) - product).abs().mean()


def _detached(kp: Keypoints) -> Keypoints:
    return Keypoints(kp.value.detach(), None if kp.jacobian is None else kp.jacobian.detach())


def _keypoint_input(kp_input: str, image: torch.Tensor, disparity: torch.Tensor) -> torch.Tensor:
    """What the keypoint detector reads: RGB, depth or RGB-D (as `DaGANModel.keypoints`)."""
    if kp_input == "rgbd":
        return torch.cat([image, disparity], dim=1)
    return image if kp_input == "rgb" else disparity


def stretched(maps: torch.Tensor) -> torch.Tensor:
    """Each map stretched to [0, 1] (for viewing disparities)."""
    low = maps.amin(dim=(1, 2, 3), keepdim=True)
    high = maps.amax(dim=(1, 2, 3), keepdim=True)
    return (maps - low) / (high - low).clamp_min(1e-8)


# ---------------------------------------------------------------------------------- the method

@dataclass(frozen=True)
class DaGANTrainingFiles:
    """The files a run reads (resolved, see `resolve_weights`); None where a file is not needed."""

    depth_encoder: str | None
    depth_decoder: str | None
    vgg19: str | None
    init: str | None


class DaGANTraining(TrainingMethod):
    """DaGAN's generator/keypoint-detector and discriminator updates (see the module docstring).

    Models: generator, kp_detector (trained by the "generator" phase), discriminator (its own phase),
    and the frozen depth_encoder, depth_decoder, perceptual (VGG-19) and discriminator_pyramid.
    `steps_per_epoch` turns the config's epoch milestones into optimizer steps."""

    def __init__(self, config: DaGANTrainConfig, files: DaGANTrainingFiles, steps_per_epoch: int = 1):
        self.config = config
        self.files = files
        self.steps_per_epoch = max(1, int(steps_per_epoch))
        self.adversarial = config.loss_weights.generator_gan != 0

    def build_models(self) -> dict[str, nn.Module]:
        config = self.config
        model = DaGANModel(config.model, discriminator=self.adversarial)
        self._load_initial(model)
        models: dict[str, nn.Module] = {name: getattr(model, name) for name in COMPONENTS
                                        if getattr(model, name) is not None}
        if self.adversarial:
            models["discriminator_pyramid"] = ImagePyramid(config.model.discriminator.scales)
        if any(config.loss_weights.perceptual):
            models["perceptual"] = PyramidPerceptualLoss(load_vgg19(self.files.vgg19), config.scales,
                                                         config.loss_weights.perceptual)
        return models

    def _load_initial(self, model: DaGANModel) -> None:
        files = self.files
        if files.init is not None:
            loaded = load_initial_weights(model, files.init)
            log.info("started from %s (%s)", files.init, ", ".join(loaded))
        load_official(model, depth_encoder=files.depth_encoder, depth_decoder=files.depth_decoder)

    def build_optimizers(self, models: Mapping[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
        config = self.config
        rates = {"generator": config.lr_generator, "kp_detector": config.lr_kp_detector}
        if self.adversarial:
            rates["discriminator"] = config.lr_discriminator
        return {name: torch.optim.Adam(models[name].parameters(), lr=lr, betas=config.adam_betas)
                for name, lr in rates.items()}

    def build_schedulers(self, optimizers: Mapping[str, torch.optim.Optimizer]) -> dict[str, Any]:
        milestones = [epoch * self.steps_per_epoch for epoch in self.config.epoch_milestones]
        return {name: torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=0.1)
                for name, optimizer in optimizers.items()}

    def phases(self) -> list[Phase]:
        phases = [Phase("generator", ("generator", "kp_detector"), self.generator_loss)]
        if self.adversarial:
            phases.append(Phase("discriminator", ("discriminator",), self.discriminator_loss))
        return phases

    # --------------------------------------------------------------------------- the phases

    def disparity(self, models: Mapping[str, nn.Module], image: torch.Tensor, grad: bool = False) -> torch.Tensor:
        """The frozen depth network's disparity (B, 1, H, W); with `grad`, differentiable in `image`."""
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
            return torch.sigmoid(models["depth_decoder"](models["depth_encoder"](image)))

    def keypoints(self, models: Mapping[str, nn.Module], image: torch.Tensor, disparity: torch.Tensor) -> Keypoints:
        return models["kp_detector"](_keypoint_input(self.config.model.kp_input, image, disparity))

    def generator_loss(self, models: Mapping[str, nn.Module], batch: dict, context: dict) -> dict[str, torch.Tensor]:
        source, driving = batch["source"], batch["driving"]
        weights = self.config.loss_weights
        depth_source, depth_driving = self.disparity(models, source), self.disparity(models, driving)
        kp_source = self.keypoints(models, source, depth_source)
        kp_driving = self.keypoints(models, driving, depth_driving)
        prediction = models["generator"](source, kp_driving, kp_source, depth_source)["prediction"]
        losses = {}
        if "perceptual" in models:
            losses["perceptual"] = models["perceptual"](prediction, driving)
        if self.adversarial:
            losses.update(self._adversarial_losses(models, prediction, driving, _detached(kp_driving)))
        if weights.equivariance_value or weights.equivariance_jacobian:
            losses.update(self._equivariance_losses(models, driving, kp_driving))
        if weights.kp_distance:
            distance = sum(kp_distance_loss(kp.value, self.config.kp_distance_margin, self.config.kp_distance_mode)
                           for kp in (kp_source, kp_driving))
            losses["kp_distance"] = weights.kp_distance * distance
        if weights.depth_constraint:
            depth_prediction = self.disparity(models, prediction, grad=True)
            losses["depth_constraint"] = weights.depth_constraint * (depth_driving - depth_prediction).abs().mean()
        context.update(prediction=prediction.detach(), kp_driving=_detached(kp_driving))
        return losses

    def _adversarial_losses(self, models: Mapping[str, nn.Module], prediction: torch.Tensor, driving: torch.Tensor,
                            kp_driving: Keypoints) -> dict[str, torch.Tensor]:
        weights = self.config.loss_weights
        pyramid, discriminator = models["discriminator_pyramid"], models["discriminator"]
        fake = discriminator(pyramid(prediction), kp_driving)
        losses = {"generator_gan": lsgan_generator_loss([out.prediction_map for out in fake.values()],
                                                        weight=weights.generator_gan)}
        if any(weights.feature_matching):
            with torch.no_grad():  # the real side carries no gradient to the generator anyway
                real = discriminator(pyramid(driving), kp_driving)
            losses["feature_matching"] = sum(
                feature_matching_loss(real[scale].feature_maps, fake[scale].feature_maps, weights.feature_matching)
                for scale in fake)
        return losses

    def _equivariance_losses(self, models: Mapping[str, nn.Module], driving: torch.Tensor,
                             kp_driving: Keypoints) -> dict[str, torch.Tensor]:
        weights, params = self.config.loss_weights, self.config.transform_params
        warp = RandomWarp(driving.shape[0], params.sigma_affine, params.sigma_tps, params.points_tps)
        warped_frame = warp.transform_frame(driving)
        kp_warped = self.keypoints(models, warped_frame, self.disparity(models, warped_frame))
        losses = {}
        if weights.equivariance_value:
            losses["equivariance_value"] = weights.equivariance_value * equivariance_value_loss(
                kp_driving, kp_warped, warp)
        if weights.equivariance_jacobian:
            losses["equivariance_jacobian"] = weights.equivariance_jacobian * equivariance_jacobian_loss(
                kp_driving, kp_warped, warp)
        return losses

    def discriminator_loss(self, models: Mapping[str, nn.Module], batch: dict,
                           context: dict) -> dict[str, torch.Tensor]:
        pyramid, discriminator = models["discriminator_pyramid"], models["discriminator"]
        real = discriminator(pyramid(batch["driving"]), context["kp_driving"])
        fake = discriminator(pyramid(context["prediction"]), context["kp_driving"])
        scales = list(real)
        return {"discriminator_gan": lsgan_discriminator_loss(
            [real[s].prediction_map for s in scales], [fake[s].prediction_map for s in scales],
            weight=self.config.loss_weights.discriminator_gan)}

    def samples(self, models: Mapping[str, nn.Module], batch: dict) -> torch.Tensor:
        """Columns: source | driving | prediction | deformed source | occlusion | source disparity."""
        source, driving = batch["source"][:4], batch["driving"][:4]
        depth_source = self.disparity(models, source)
        kp_source = self.keypoints(models, source, depth_source)
        kp_driving = self.keypoints(models, driving, self.disparity(models, driving))
        out = models["generator"](source, kp_driving, kp_source, depth_source)
        columns = [source, driving, out["prediction"], out["deformed"]]
        if "occlusion_map" in out:
            columns.append(out["occlusion_map"])
        return image_grid(columns + [stretched(depth_source)])


# ------------------------------------------------------------------------------ weights files

def load_initial_weights(model: DaGANModel, path: str | os.PathLike) -> list[str]:
    """Load a converted DaGAN folder (every component it holds that `model` has) or an official
    `*.pth.tar` (generator, kp_detector and, when both have one, discriminator) into `model`."""
    if not Path(path).is_dir():
        return list(load_official(model, path))
    _, state = load_pretrained(path)
    loaded = []
    for name, module in model.named_children():
        part = {key[len(name) + 1:]: value for key, value in state.items() if key.startswith(name + ".")}
        if part:
            load_into(module, part, strict=True, source=path)
            loaded.append(name)
    return loaded


def _weight_file(spec: WeightSpec, given: str | None, configured: str | None, what: str) -> str:
    """The flag's path, else the config's, else the environment variable's (MissingWeightsError if none)."""
    path = spec.resolve(given, configured, config_key=spec.name.replace("-", "_"))
    if not Path(path).exists():
        raise InputError(path, f"{what} not found ({spec.flag})")
    return path


def resolve_weights(config: DaGANTrainConfig, overrides: WeightFiles = WeightFiles()) -> DaGANTrainingFiles:
    """The files a run needs, from flags (`overrides`), the config's `weights:` or the environment.

    The depth network is needed unless `init` is a converted folder (which holds one); VGG-19 unless
    every perceptual weight is 0."""
    configured = config.weights
    init = overrides.init or configured.init
    if init is not None and not Path(init).exists():
        raise InputError(init, "initial weights not found (--init)")
    specs = {spec.name: spec for spec in get_method("dagan").weights}   # "depth-encoder": its flag and env
    depth = {}
    if init is None or not Path(init).is_dir() or overrides.depth_encoder or configured.depth_encoder:
        for name, what in (("depth_encoder", "the depth encoder (Monodepth2 encoder.pth)"),
                           ("depth_decoder", "the depth decoder (Monodepth2 depth.pth)")):
            spec = specs[name.replace("_", "-")]
            depth[name] = _weight_file(spec, getattr(overrides, name), getattr(configured, name), what)
    vgg19 = None
    if any(config.loss_weights.perceptual):
        vgg19 = _weight_file(specs["vgg19"], overrides.vgg19, configured.vgg19,
                             "VGG-19 weights for the perceptual loss (torchvision vgg19 .pth)")
    return DaGANTrainingFiles(depth.get("depth_encoder"), depth.get("depth_decoder"), vgg19, init)


def export_model(models: Mapping[str, nn.Module], config: DaGANTrainConfig, folder: str | os.PathLike) -> Path:
    """The trained networks (and the depth network) as a converted DaGAN folder."""
    model = DaGANModel(config.model, discriminator="discriminator" in models)
    for name in COMPONENTS:
        if name in models:
            load_into(getattr(model, name), models[name].state_dict(), strict=True, source=f"trained {name}")
    return save_converted(model, folder, metadata={"source": "faceanim train dagan"})


# ------------------------------------------------------------------------------------ a run

def dagan_dataset(config: DaGANTrainConfig, data: str | os.PathLike):
    """(source, driving) pairs of `data` (preprocessed clips, or the official ROOT/train layout)."""
    options = PairOptions(frame_size=config.model.image_size, id_sampling=config.id_sampling,
                          num_repeats=config.num_repeats, augmentation=frame_augmentation(config.augmentation))
    return open_frame_pairs(data, "train", options)


def train_dagan(config: DaGANTrainConfig, data: str | os.PathLike, output: str | os.PathLike, *,
                weights: WeightFiles = WeightFiles(), resume: str | None = None,
                max_steps: int | None = None) -> tuple[FitResult, Path | None]:
    """Train (or resume) on `data` into `output`; returns the fit result and the exported folder
    (`output/model`, written by the main process; None on the others)."""
    files = resolve_weights(config, weights)
    dataset = dagan_dataset(config, data)
    trainer, result = fit_in_epochs(lambda per_epoch: DaGANTraining(config, files, per_epoch), dataset,
                                    len(dataset), config, record={"stage": "dagan"}, output=output,
                                    max_steps=max_steps, resume=resume)
    return result, export_on_main(trainer, lambda models: export_model(models, config, Path(output) / EXPORT_FOLDER))


def train(stage: str, config: str | os.PathLike, data: str | os.PathLike, output: str | os.PathLike,
          settings: dict, *, resume: str | None = None, max_steps: int | None = None):
    """`faceanim train dagan` (the registry's entry): stage "dagan" (this module) or "depth" (the
    self-supervised depth network, `depth_training`) from the config file `config`."""
    from .config import DepthTrainConfig, load_train_config

    loaded = load_train_config(config)
    if (stage == "depth") != isinstance(loaded, DepthTrainConfig):
        other = "depth" if isinstance(loaded, DepthTrainConfig) else "dagan"
        raise InputError(config, f"is a {other}-stage config; pass --stage {other} or another --config")
    if stage == "depth":
        from .depth_training import train_depth as run
    else:
        run = train_dagan
    return run(loaded, data, output, weights=WeightFiles(**settings), resume=resume, max_steps=max_steps)
