"""`faceanim train METHOD`: run a method's training entry (its registry spec's `train`) on a dataset.

One process trains on one device; for several GPUs launch the same command under Accelerate
(`accelerate launch -m faceanim train METHOD ...`) or torchrun (`torchrun --nproc-per-node N -m faceanim
train METHOD ...`): every process runs it and the trainer splits the batches.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError
from ..registry import get_method


def train_method(method: str, data: str | os.PathLike | None, *, config: str | os.PathLike | None = None,
                 output: str | os.PathLike | None = None, stage: str | None = None, resume: str | None = None,
                 max_steps: int | None = None, weights: dict[str, str | None] | None = None) -> int:
    """Train `method` (stage `stage`, default its first) as `config` says (default: the stage's packaged
    config); print where things went. `weights` are the method's own training settings (weight files and
    the like, as its CLI options name them)."""
    spec = get_method(method)
    run = spec.entry("train")
    stages = spec.train.stages
    stage = stage or next(iter(stages))
    if stage not in stages:
        raise InputError(None, f"--stage must be one of {', '.join(stages)} for {method}")
    if data is None:
        raise InputError(None, "training needs --data DATASET (a folder written by `faceanim preprocess`)")
    if max_steps is not None and max_steps < 1:
        raise InputError(None, f"--max-steps must be >= 1, not {max_steps}")
    given = {key: value for key, value in (weights or {}).items() if value is not None}
    output = Path(output or Path("runs") / (method if stage == method else f"{method}-{stage}"))
    result, exported = run(stage, config or stages[stage], data, output, given, resume=resume, max_steps=max_steps)
    if exported is not None:
        name = method if stage == method else f"{method} ({stage} stage)"
        print(f"trained {name} to step {result.step}: checkpoints in {output / 'checkpoints'}, "
              f"TensorBoard logs in {output / 'tensorboard'}, model exported to {exported}")
    return 0
