"""What a method gives the trainer: its models, optimizers, schedulers and the phases of one step.

A step runs the phases in order. Each phase computes a dict of losses from `(models, batch, context)`,
back-propagates their sum and steps its own optimizers, so the phases of a GAN are "generator" then
"discriminator". `context` is a dict per batch shared by the phases of one step: an earlier phase
leaves there what a later one needs (the generator phase leaves its detached prediction for the
discriminator phase). A phase sees the models as they are after the earlier phases' updates.

During a phase only the parameters of its own optimizers receive gradients: the other trained models
are frozen for that phase (gradients still flow *through* them), so a discriminator scored inside the
generator's loss is not changed by it.

Under multi-process training the models a phase trains reach its loss function wrapped in
DistributedDataParallel: call them (their `forward` is what synchronises gradients) and do not reach
into their attributes there; read what you need when building the models.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

Models = Mapping[str, nn.Module]
Batch = Any
LossFunction = Callable[[Models, Batch, dict], Mapping[str, torch.Tensor]]


@dataclass(frozen=True)
class Phase:
    """One part of a training step: `loss(models, batch, context)` -> named scalar losses (already
    weighted); their sum is back-propagated and the optimizers named in `optimizers` are stepped."""

    name: str
    optimizers: tuple[str, ...]
    loss: LossFunction

    def __post_init__(self):
        object.__setattr__(self, "optimizers", tuple(self.optimizers))
        if not self.optimizers:
            raise ValueError(f"phase {self.name!r} steps no optimizer")


class TrainingMethod(abc.ABC):
    """Subclass this to train a method with `Trainer`.

    The trainer calls, in order: `build_models()`, `build_optimizers(models)`,
    `build_schedulers(optimizers)`, `phases()`; then per step the phases' losses, `on_step_end`, and
    every `sample_every` steps `samples`. Models that no optimizer covers (a frozen VGG or depth
    network) are moved to the device, put in eval mode and not saved in checkpoints."""

    @abc.abstractmethod
    def build_models(self) -> dict[str, nn.Module]:
        """Every network of the method, trained or frozen, by name."""

    @abc.abstractmethod
    def build_optimizers(self, models: Models) -> dict[str, torch.optim.Optimizer]:
        """Optimizers over the parameters of some models (one optimizer may cover several models)."""

    def build_schedulers(self, optimizers: Mapping[str, torch.optim.Optimizer]) -> dict[str, Any]:
        """LR schedulers by name (each over one of `optimizers`); stepped once per optimizer step."""
        return {}

    @abc.abstractmethod
    def phases(self) -> Sequence[Phase]:
        """The phases of one step, in order."""

    def samples(self, models: Models, batch: Batch) -> torch.Tensor | None:
        """An image (3, H, W) in [0, 1] showing what the models do on `batch` (see `image_grid`).

        Runs without gradients, with models in eval mode (and EMA weights if the run keeps them)."""
        return None

    def on_step_end(self, models: Models, step: int) -> None:
        """Called after every step's updates with the (unwrapped) models and the new step number."""


def image_grid(columns: Sequence[torch.Tensor], max_rows: int = 8) -> torch.Tensor:
    """Side-by-side columns of images: each column (N, 3, H, W) in [0, 1], rows are batch items.

    Returns (3, rows * H, len(columns) * W) with rows = min(N, max_rows); images of other sizes are
    resized (bilinear) to the first column's."""
    if not columns:
        raise ValueError("image_grid needs at least one column")
    height, width = columns[0].shape[-2:]
    rows = min(min(column.shape[0] for column in columns), max_rows)
    resized = []
    for column in columns:
        column = column[:rows].detach().float()
        if column.shape[1] == 1:
            column = column.expand(-1, 3, -1, -1)
        if column.shape[-2:] != (height, width):
            column = nn.functional.interpolate(column, size=(height, width), mode="bilinear", align_corners=False)
        resized.append(column.clamp(0, 1))
    grid = torch.cat(resized, dim=3)          # (rows, 3, H, columns * W)
    return torch.cat(list(grid), dim=1)       # (3, rows * H, columns * W)
