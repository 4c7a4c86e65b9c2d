"""Training FADM's diffusion renderer on the shared trainer, as the official `train.py` does.

One phase, "renderer": the frozen FOMM moves the source to the driving frame with absolute keypoints
(the official `get_trans_img_fomm`: the driving keypoints as they are), the frozen DECA gives the
attribute (exp ⊕ pose of the source minus the real driving frame), and the renderer learns to denoise
the real driving frame under that condition: loss `norm` (ε L1 summed over batch and pixels) + `color`.

The official condition takes its colour reference from the real driving frame (`colour_reference:
driving`), which inference cannot do (it uses the coarse frame); `colour_reference: coarse` trains on
the inference condition instead, and the colour loss is then 0.

Weights: `--coarse-checkpoint` (FOMM.pth; its settings from the config's `coarse:` or `--fomm-config`),
`--deca` (deca_model.tar) and optionally `--init` (an official diffusion.pth or a converted folder) to
fine-tune. At the end the renderer (EMA weights if the run keeps them) and DECA are exported as a
converted folder, `OUTPUT/model`, that `load_converted` reads; resuming a checkpoint with `max_steps`
equal to its step exports it without training.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from ...checkpoints import CONFIG_NAME, load_checkpoint, load_into, state_dict_from
from ...diffusion import SeededNoise
from ...errors import InputError
from ...registry import get_method
from ...train import (FitResult, PairOptions, Phase, TrainingMethod, export_on_main, fit_in_epochs,
                      frame_augmentation, image_grid, open_frame_pairs)
from ...warping.fomm import FOMMModel, load_fomm
from .conditioning import Condition, coarse_condition
from .deca import DECAEncoder, attribute
from .model import FADMModel
from .config import FADMTrainConfig, WeightFiles, read_fomm_config
from .weights import load_converted, load_official_deca, save_converted

log = logging.getLogger(__name__)

EXPORT_FOLDER = "model"
SAMPLE_ROWS = 4
STEP_TENSORS = ("t", "noise", "x_t", "eps")     # what a renderer step leaves in the phase context


class TrainableRenderer(FADMModel):
    """The renderer with the official `DiffusionGenerator.forward`: the training terms of real frames
    under a condition (a forward the trainer can wrap in DistributedDataParallel). Its state dict is
    `FADMModel`'s."""

    def forward(self, x0: torch.Tensor, condition: Condition, *, t: torch.Tensor | None = None,
                noise: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        return renderer_step(self, x0, condition, t=t, noise=noise, generator=generator)


def renderer_step(renderer: FADMModel, x0: torch.Tensor, condition: Condition, *, t: torch.Tensor | None = None,
                  noise: torch.Tensor | None = None,
                  generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """One training step of the renderer on real frames `x0` (`GaussianDiffusion.losses`, the official
    `p_losses`): the losses `norm` and `color` and the step's `t`, `noise`, `x_t` and `eps`."""
    return renderer.diffusion.losses(x0, condition, t=t, noise=noise, generator=generator)


@dataclass(frozen=True)
class FADMTrainingFiles:
    """The files a run reads (resolved by `resolve_weights`); `deca` None: the `init` folder's DECA."""

    coarse: str
    deca: str | None
    init: str | None


class FADMTraining(TrainingMethod):
    """Models: `renderer` (trained), the frozen `coarse` animator (FOMM) and `deca`."""

    def __init__(self, config: FADMTrainConfig, files: FADMTrainingFiles):
        self.config = config
        self.files = files

    def build_models(self) -> dict[str, nn.Module]:
        renderer = TrainableRenderer(self.config.model)
        bundled_deca = None
        if self.files.init is not None:
            bundled_deca = load_initial_weights(renderer, self.files.init)
            log.info("renderer started from %s", self.files.init)
        deca = load_official_deca(self.files.deca) if self.files.deca is not None else bundled_deca
        if deca is None:
            raise InputError(self.files.init, "holds no DECA encoder: pass --deca deca_model.tar")
        coarse = load_fomm(self.files.coarse, self.config.coarse)
        return {"renderer": renderer, "coarse": coarse, "deca": deca}

    def build_optimizers(self, models: Mapping[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
        return {"renderer": torch.optim.Adam(models["renderer"].parameters(), lr=self.config.learning_rate,
                                             betas=self.config.adam_betas)}

    def phases(self) -> list[Phase]:
        return [Phase("renderer", ("renderer",), self.renderer_loss)]

    def condition(self, models: Mapping[str, nn.Module], source: torch.Tensor, driving: torch.Tensor, *,
                  colour_from_driving: bool) -> tuple[torch.Tensor, Condition]:
        """(coarse frames, condition) for (source, driving) pairs; the frozen networks get no gradient."""
        with torch.no_grad():
            coarse = coarse_frames(models["coarse"], source, driving)
            codes = models["deca"].encode(torch.cat([source, driving]))
            halves = {name: code.chunk(2) for name, code in codes.items()}
            difference = attribute({k: v[0] for k, v in halves.items()}, {k: v[1] for k, v in halves.items()})
        return coarse, coarse_condition(coarse, difference, driving=driving if colour_from_driving else None)

    def renderer_loss(self, models: Mapping[str, nn.Module], batch: dict, context: dict) -> dict[str, torch.Tensor]:
        """The weighted `norm` and `color` losses of one step; leaves what the step ran on in
        `context["renderer_step"]` (coarse frames, condition, and the step's t, noise, x_t, eps, detached)."""
        source, driving = batch["source"], batch["driving"]
        coarse, condition = self.condition(models, source, driving,
                                           colour_from_driving=self.config.colour_reference == "driving")
        terms = models["renderer"](driving, condition)
        context["renderer_step"] = {"coarse": coarse, "condition": condition,
                                    **{name: terms[name].detach() for name in STEP_TENSORS}}
        weights = self.config.loss_weights
        losses = {"norm": weights.norm * terms["norm"]}
        if weights.color:
            losses["color"] = weights.color * terms["color"]
        return losses

    def samples(self, models: Mapping[str, nn.Module], batch: dict) -> torch.Tensor:
        """Columns: source | coarse | real driving | refined (the inference condition, respaced DDIM)."""
        source, driving = batch["source"][:SAMPLE_ROWS], batch["driving"][:SAMPLE_ROWS]
        coarse, condition = self.condition(models, source, driving, colour_from_driving=False)
        size = self.config.image_size
        seed = int(torch.randint(0, 2 ** 31, ()).item())   # the trainer seeds sampling: the same every time
        shape = (1, 3, size, size)
        x_T = torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(source)
        noise = SeededNoise(lambda index: seed + 1 + index, shape=shape)
        refined = models["renderer"].sample(x_T, condition, noise, steps=self.config.sample_steps).sample
        return image_grid([source, coarse, driving, refined])


def coarse_frames(animator: FOMMModel, source: torch.Tensor, driving: torch.Tensor) -> torch.Tensor:
    """FOMM's frames of `source` moved to `driving`'s keypoints as they are (absolute motion)."""
    return animator.animate(source, animator.keypoints(source), animator.keypoints(driving))


# ------------------------------------------------------------------------------ weights files

def load_initial_weights(renderer: FADMModel, path: str | os.PathLike) -> DECAEncoder | None:
    """Load a converted FADM folder or an official diffusion.pth into `renderer` (strict); returns the
    folder's DECA encoder, if it holds one."""
    if Path(path).is_dir():
        model, deca = load_converted(path)
        load_into(renderer, model.state_dict(), strict=True, source=path)
        return deca
    load_into(renderer, state_dict_from(load_checkpoint(path), path=path), strict=True, source=path)
    return None


def _bundles_deca(folder: str | os.PathLike) -> bool:
    try:
        return bool(json.loads((Path(folder) / CONFIG_NAME).read_text()).get("deca"))
    except (OSError, ValueError, AttributeError):
        return False


def _weight_file(name: str, given: str | None, configured: str | None, what: str) -> str:
    """The flag's path, else the config's `weights:` entry, else the environment's (MissingWeightsError)."""
    spec = next(weight for weight in get_method("fadm").weights if weight.name == name)
    path = spec.resolve(given, configured, config_key=name)
    if not Path(path).exists():
        raise InputError(path, f"{what} not found ({spec.flag})")
    return path


def resolve_weights(config: FADMTrainConfig, overrides: WeightFiles = WeightFiles()) -> FADMTrainingFiles:
    """The files a run needs, from flags (`overrides`), the config's `weights:` or the environment.
    DECA may come from an `init` folder that holds one."""
    configured = config.weights
    init = overrides.init or configured.init
    if init is not None and not Path(init).exists():
        raise InputError(init, "initial weights not found (--init)")
    coarse = _weight_file("coarse", overrides.coarse, configured.coarse, "the coarse animator (FOMM.pth)")
    deca = None
    if overrides.deca or configured.deca or init is None or not _bundles_deca(init):
        deca = _weight_file("deca", overrides.deca, configured.deca, "DECA (deca_model.tar)")
    return FADMTrainingFiles(coarse, deca, init)


def export_model(models: Mapping[str, nn.Module], config: FADMTrainConfig, folder: str | os.PathLike) -> Path:
    """The trained renderer and DECA as a converted FADM folder."""
    renderer = FADMModel(config.model)
    load_into(renderer, models["renderer"].state_dict(), strict=True, source="trained renderer")
    return save_converted(renderer, folder, deca=models["deca"], metadata={"source": "faceanim train fadm"})


# ------------------------------------------------------------------------------------ a run

def fadm_dataset(config: FADMTrainConfig, data: str | os.PathLike):
    """(source, driving) pairs of `data` (preprocessed clips, or the official ROOT/train layout)."""
    options = PairOptions(frame_size=config.image_size, id_sampling=config.id_sampling,
                          num_repeats=config.num_repeats, augmentation=frame_augmentation(config.augmentation))
    return open_frame_pairs(data, "train", options)


def train_fadm(config: FADMTrainConfig, data: str | os.PathLike, output: str | os.PathLike, *,
               weights: WeightFiles = WeightFiles(), fomm_config: str | os.PathLike | None = None,
               resume: str | None = None, max_steps: int | None = None) -> tuple[FitResult, Path | None]:
    """Train (or resume) on `data` into `output`; `fomm_config` an official FOMM YAML replacing the
    config's `coarse:`. Returns the fit result and the exported folder (None on other processes)."""
    if fomm_config is not None:
        config = dataclasses.replace(config, coarse=read_fomm_config(fomm_config, config.image_size))
    files = resolve_weights(config, weights)
    dataset = fadm_dataset(config, data)
    trainer, result = fit_in_epochs(lambda _: FADMTraining(config, files), dataset, len(dataset), config,
                                    record={"method": "fadm"}, output=output, max_steps=max_steps, resume=resume)
    return result, export_on_main(trainer, lambda models: export_model(models, config, Path(output) / EXPORT_FOLDER))


def train(stage: str, config: str | os.PathLike, data: str | os.PathLike, output: str | os.PathLike,
          settings: dict, *, resume: str | None = None, max_steps: int | None = None):
    """`faceanim train fadm` (the registry's entry): the renderer, from the config file `config`."""
    from .config import load_train_config

    settings = dict(settings)
    fomm_config = settings.pop("fomm_config", None)
    return train_fadm(load_train_config(config), data, output, weights=WeightFiles(**settings),
                      fomm_config=fomm_config, resume=resume, max_steps=max_steps)
