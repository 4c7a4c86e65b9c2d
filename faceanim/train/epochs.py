"""A method's training entry in epochs: its schedule turned into trainer steps, its settings recorded
beside the checkpoints, the fit, and the export of the trained (EMA-averaged, when kept) networks."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Callable, Mapping

from torch import nn

from .config import steps_per_epoch, trainer_config
from .method import TrainingMethod
from .run import write_run_config
from .trainer import FitResult, Trainer


def fit_in_epochs(make_method: Callable[[int], TrainingMethod], dataset, items_per_epoch: int, schedule: Any, *,
                  record: Mapping[str, Any], output: str | os.PathLike, max_steps: int | None,
                  resume: str | None) -> tuple[Trainer, FitResult]:
    """Fit `make_method(steps_per_epoch)` on `dataset`. `schedule` is a method's training config: its
    `batch_size`, `num_epochs`, `checkpoint_freq` (epochs), `trainer` settings and `to_dict()`, which is
    written to the run folder after `record` (e.g. {"stage": "dagan"})."""
    accumulation = int(schedule.trainer.get("grad_accumulation", 1))
    per_epoch = steps_per_epoch(items_per_epoch, schedule.batch_size, accumulation)
    settings = trainer_config(schedule.trainer, output=output, batch_size=schedule.batch_size,
                              steps_per_epoch=per_epoch, num_epochs=schedule.num_epochs,
                              checkpoint_freq=schedule.checkpoint_freq, max_steps=max_steps, resume=resume)
    write_run_config(output, {**record, "steps_per_epoch": per_epoch, **schedule.to_dict()})
    trainer = Trainer(make_method(per_epoch), dataset, settings)
    return trainer, trainer.fit()


def export_on_main(trainer: Trainer, export: Callable[[Mapping[str, nn.Module]], Path]) -> Path | None:
    """`export(models)` on the main process, with the EMA weights swapped in when the run keeps them;
    None on the other processes."""
    if not trainer.accelerator.is_main_process:
        return None
    averaged = trainer.ema.swapped_in(trainer.models) if trainer.ema is not None else contextlib.nullcontext()
    with averaged:
        return export(trainer.models)
