"""Tiny DaGAN training for the resume test, in this process or in a separate one killed with SIGKILL.

    python -m tests.methods.dagan.run_training SETTINGS_JSON --kill-after-step N

SETTINGS_JSON: {"data": dataset folder, "output": run folder, "weights": {depth_encoder, depth_decoder,
vgg19}}. The process dies right after step N's update (after the checkpoints of earlier steps).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal

from faceanim.methods.dagan.config import DaGANTrainConfig, WeightFiles, load_train_config
from faceanim.methods.dagan.training import DaGANTraining, dagan_dataset, resolve_weights
from faceanim.train import trainer_config
from faceanim.train import FitResult, Trainer

MAX_STEPS, CHECKPOINT_EVERY = 6, 2


def resume_config() -> DaGANTrainConfig:
    """tiny.yaml logging every step, with an EMA (its state must resume too)."""
    tiny = load_train_config("tiny.yaml")
    return dataclasses.replace(tiny, trainer={**tiny.trainer, "log_every": 1, "sample_every": 0,
                                              "checkpoint_every": CHECKPOINT_EVERY, "ema_decay": 0.9})


class KilledAfter(DaGANTraining):
    def __init__(self, *args, kill_after_step: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.kill_after_step = kill_after_step

    def on_step_end(self, models, step):
        if step == self.kill_after_step:
            os.kill(os.getpid(), signal.SIGKILL)


def fit(data: str, output: str, weights: WeightFiles, *, resume: str | None = None,
        kill_after_step: int | None = None) -> FitResult:
    config = resume_config()
    method = KilledAfter(config, resolve_weights(config, weights), kill_after_step=kill_after_step)
    settings = trainer_config(config.trainer, output=output, batch_size=config.batch_size, steps_per_epoch=3,
                              num_epochs=2, checkpoint_freq=1, max_steps=MAX_STEPS, resume=resume)
    return Trainer(method, dagan_dataset(config, data), settings).fit()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("settings")
    parser.add_argument("--kill-after-step", type=int)
    args = parser.parse_args()
    settings = json.loads(args.settings)
    fit(settings["data"], settings["output"], WeightFiles(**settings["weights"]),
        kill_after_step=args.kill_after_step)


if __name__ == "__main__":
    main()
