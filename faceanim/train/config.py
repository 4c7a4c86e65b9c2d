"""Settings of a training run that do not depend on the method being trained, and how a method's
config (a `trainer:` section and a schedule in epochs) becomes them."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from ..errors import InputError
from .run import world_size

MIXED_PRECISION = ("no", "fp16", "bf16")


@dataclass(frozen=True)
class TrainerConfig:
    """How long to train, in what batches, and what to write where.

    One step is one update of every phase's optimizers; it consumes `grad_accumulation` batches of
    `batch_size` items on each process. Periods (`*_every`) count steps; 0 turns the thing off.
    Layout of `output_dir`: `checkpoints/step-XXXXXXXX/` (+ `checkpoints/latest`), `tensorboard/`,
    `samples/step-XXXXXXXX.png`, `trainer_config.json`."""

    output_dir: str | Path
    max_steps: int
    batch_size: int = 4                  # items per process per micro-batch
    num_workers: int = 0                 # DataLoader worker processes
    grad_accumulation: int = 1           # micro-batches per optimizer step
    mixed_precision: str = "no"          # "no" | "fp16" | "bf16"
    max_grad_norm: float | None = None   # clip each phase's gradient norm to this (None: no clipping)
    log_every: int = 10
    sample_every: int = 0
    checkpoint_every: int = 1000         # the last step is always saved as well
    keep_last_n: int = 3                 # checkpoints kept (0: all)
    ema_decay: float | None = None       # None: no EMA
    ema_models: tuple[str, ...] = ()     # models averaged (empty: every model an optimizer trains)
    seed: int = 0
    resume: str | None = None            # None | "latest" (start fresh if there is none) | a checkpoint folder
    cpu: bool = False                    # train on the CPU even where a GPU exists
    find_unused_parameters: bool = False  # DDP: some trained parameters get no gradient in a phase
    progress: bool | None = None         # progress bar: None shows it on a terminal only

    def __post_init__(self):
        positive = ("max_steps", "batch_size", "grad_accumulation")
        not_negative = ("num_workers", "log_every", "sample_every", "checkpoint_every", "keep_last_n")
        checks = [(getattr(self, name) > 0, f"{name} must be > 0") for name in positive]
        checks += [(getattr(self, name) >= 0, f"{name} must be >= 0") for name in not_negative]
        checks += [(self.mixed_precision in MIXED_PRECISION, f"mixed_precision must be one of {MIXED_PRECISION}"),
                   (self.max_grad_norm is None or self.max_grad_norm > 0, "max_grad_norm must be > 0 or None"),
                   (self.ema_decay is None or 0 <= self.ema_decay < 1, "ema_decay must be in [0, 1) or None")]
        for ok, message in checks:
            if not ok:
                raise InputError(None, f"trainer settings: {message}")
        object.__setattr__(self, "output_dir", Path(self.output_dir))
        object.__setattr__(self, "ema_models", tuple(self.ema_models))

    def replace(self, **changes) -> "TrainerConfig":
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        """JSON-ready values (paths as strings)."""
        values = dataclasses.asdict(self)
        values["output_dir"] = str(self.output_dir)
        values["ema_models"] = list(self.ema_models)
        return values


# Set by `trainer_config` from the run, never by a config's `trainer:` section.
_RUN_SETTINGS = frozenset({"output_dir", "max_steps", "batch_size", "resume"})


def trainer_config(settings: Mapping[str, Any], *, output: str | os.PathLike, batch_size: int,
                   steps_per_epoch: int, num_epochs: int, checkpoint_freq: float, max_steps: int | None = None,
                   resume: str | None = None) -> TrainerConfig:
    """A TrainerConfig from a config's `trainer:` settings and its schedule in epochs: `max_steps`
    defaults to `num_epochs` epochs and `checkpoint_every` to every `checkpoint_freq` epochs."""
    settings = dict(settings)
    known = {f.name for f in dataclasses.fields(TrainerConfig)} - _RUN_SETTINGS
    unknown = sorted(set(settings) - known)
    if unknown:
        raise InputError(None, f"unknown trainer settings: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    settings.setdefault("checkpoint_every", max(1, round(checkpoint_freq * steps_per_epoch)))
    # Accelerate sets up several CPU processes (gloo) only when asked to use the CPU; without it each
    # process of a CPU-only torchrun/accelerate launch would train alone and write the same files.
    settings.setdefault("cpu", world_size() > 1 and not torch.cuda.is_available())
    return TrainerConfig(output_dir=output, max_steps=max_steps or num_epochs * steps_per_epoch,
                         batch_size=batch_size, resume=resume, **settings)


def steps_per_epoch(items: int, batch_size: int, grad_accumulation: int = 1) -> int:
    """Optimizer steps in one pass over `items` (whole batches on every process of the run)."""
    return max(1, items // (batch_size * grad_accumulation * world_size()))
