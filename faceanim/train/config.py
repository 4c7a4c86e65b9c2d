"""Settings of a training run that do not depend on the method being trained."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError

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
