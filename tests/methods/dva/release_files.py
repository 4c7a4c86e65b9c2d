"""Random-weight DVA files in the released formats, written by tests (nothing is downloaded):
the Lightning checkpoint (`model.*` and `ema_model.*`, `hyper_parameters` as the official `TrainConfig`
dict), the attribute classifier checkpoint (`ClsModel` layout) and `latent.pkl` (`torch.save` dict)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from faceanim.methods.dva.config import DVAConfig, tiny
from faceanim.methods.dva.model import DVAModel
from faceanim.methods.dva.weights import ATTRIBUTES


def random_model(config: DVAConfig, seed: int = 0) -> DVAModel:
    """A model whose zero-initialised output convolutions are random too (so the UNet is not the zero map)."""
    torch.manual_seed(seed)
    model = DVAModel(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if not name.startswith("encoder.") and param.ndim > 1 and float(param.abs().sum()) == 0.0:
                param.normal_(0, 0.02)
    return model.eval()


def write_checkpoint(path: Path, model: DVAModel, config: DVAConfig, *, ema_offset: float = 0.0) -> Path:
    """A Lightning checkpoint as the official training writes it; `ema_offset` makes the EMA weights
    differ from `model.*` (added to every floating tensor of the UNet)."""
    state = {}
    for key, value in model.state_dict().items():
        state[f"model.{key}"] = value
        moved = value + ema_offset if value.is_floating_point() and not key.startswith("encoder.") else value
        state[f"ema_model.{key}"] = moved
    hparams = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(config).items()}
    hparams.update(name="diffusion_video_autoencoder", batch_size=4, lr=1e-4)   # other TrainConfig fields
    torch.save({"state_dict": state, "hyper_parameters": hparams, "global_step": 1000000, "epoch": 51}, path)
    return path


def write_classifier(path: Path, seed: int = 1) -> Path:
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(len(ATTRIBUTES), 512, generator=generator) * 0.05
    state = {"classifier.weight": weight, "classifier.bias": torch.zeros(len(ATTRIBUTES)),
             "ema_classifier.weight": weight * 0.9, "ema_classifier.bias": torch.zeros(len(ATTRIBUTES)),
             "conds_mean": torch.randn(1, 512, generator=generator) * 0.01,
             "conds_std": torch.rand(1, 512, generator=generator) * 0.05 + 0.02}
    torch.save({"state_dict": state, "global_step": 9375, "epoch": 0}, path)
    return path


def write_latent_stats(path: Path, n: int = 16, seed: int = 2) -> Path:
    generator = torch.Generator().manual_seed(seed)
    conds = torch.nn.functional.normalize(torch.randn(n, 512, generator=generator), dim=1)
    torch.save({"conds": conds, "conds_mean": conds.mean(0), "conds_std": conds.std(0)}, path)
    return path


def write_release(folder: Path, config: DVAConfig | None = None) -> dict[str, Path]:
    config = config or tiny()
    folder.mkdir(parents=True, exist_ok=True)
    model = random_model(config)
    return {"checkpoint": write_checkpoint(folder / "epoch=51-step=1000000.ckpt", model, config, ema_offset=1e-3),
            "classifier": write_classifier(folder / "last.ckpt"),
            "identity_stats": write_latent_stats(folder / "latent.pkl")}
