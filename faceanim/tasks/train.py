"""`faceanim train METHOD`: run a method's training entry (DaGAN: its two stages; FADM: its renderer) on a
dataset.

One process trains on one device; for several GPUs launch the same command under Accelerate
(`accelerate launch -m faceanim train dagan ...`) or torchrun (`torchrun --nproc-per-node N -m faceanim
train dagan ...`): every process runs it and the trainer splits the batches.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError, NotImplementedMethodError

STAGES = {"dagan": ("dagan", "depth"), "fadm": ("fadm",)}
DEFAULT_CONFIGS = {("dagan", "dagan"): "vox256.yaml", ("dagan", "depth"): "depth.yaml", ("fadm", "fadm"): "vox256.yaml"}
WEIGHT_FLAGS = {"dagan": ("depth_encoder", "depth_decoder", "vgg19", "init", "resnet"),
                "fadm": ("coarse", "deca", "init", "fomm_config")}


def train_method(method: str, data: str | os.PathLike | None, *, config: str | os.PathLike | None = None,
                 output: str | os.PathLike | None = None, stage: str | None = None, resume: str | None = None,
                 max_steps: int | None = None, weights: dict[str, str | None] | None = None) -> int:
    """Train `method` (stage `stage`, default its main one) as `config` says; print where things went.

    `weights` are the weight-file flags (dagan: depth_encoder, depth_decoder, vgg19, init, resnet; fadm:
    coarse, deca, init, fomm_config); a flag of another method is an error."""
    if method not in STAGES:
        raise NotImplementedMethodError(f"training of '{method}' is not implemented yet; see the README's status table")
    stage = stage or STAGES[method][0]
    if stage not in STAGES[method]:
        raise InputError(None, f"--stage must be one of {', '.join(STAGES[method])} for {method}")
    if data is None:
        raise InputError(None, "training needs --data DATASET (a folder written by `faceanim preprocess`)")
    if max_steps is not None and max_steps < 1:
        raise InputError(None, f"--max-steps must be >= 1, not {max_steps}")
    given = {k: v for k, v in (weights or {}).items() if v is not None}
    foreign = sorted(set(given) - set(WEIGHT_FLAGS[method]))
    if foreign:
        flags = ", ".join("--" + name.replace("_", "-") for name in foreign)
        raise InputError(None, f"{flags} {'does' if len(foreign) == 1 else 'do'} not apply to training {method}")
    source = config or DEFAULT_CONFIGS[(method, stage)]
    output = Path(output or Path("runs") / (method if stage == method else f"{method}-{stage}"))
    train = _train_fadm if method == "fadm" else _train_dagan
    result, exported = train(stage, source, data, output, given, resume=resume, max_steps=max_steps)
    if exported is not None:
        name = method if stage == method else f"{method} ({stage} stage)"
        print(f"trained {name} to step {result.step}: checkpoints in {output / 'checkpoints'}, "
              f"TensorBoard logs in {output / 'tensorboard'}, model exported to {exported}")
    return 0


def _train_dagan(stage: str, source, data, output: Path, weights: dict, **run_options):
    from ..methods.dagan.config import DepthTrainConfig, WeightFiles, load_train_config

    settings = load_train_config(source)
    if (stage == "depth") != isinstance(settings, DepthTrainConfig):
        other = "depth" if isinstance(settings, DepthTrainConfig) else "dagan"
        raise InputError(source, f"is a {other}-stage config; pass --stage {other} or another --config")
    if stage == "depth":
        from ..methods.dagan.depth_training import train_depth as run
    else:
        from ..methods.dagan.training import train_dagan as run
    return run(settings, data, output, weights=WeightFiles(**weights), **run_options)


def _train_fadm(stage: str, source, data, output: Path, weights: dict, **run_options):
    from ..methods.fadm.train_config import WeightFiles, load_train_config
    from ..methods.fadm.training import train_fadm

    fomm_config = weights.pop("fomm_config", None)
    return train_fadm(load_train_config(source), data, output, weights=WeightFiles(**weights),
                      fomm_config=fomm_config, **run_options)
