"""Train the toy method in a separate process, optionally killing it (SIGKILL) at a chosen moment.

    python -m tests.train.run_toy SETTINGS_JSON [--kill-after-step N] [--kill-while-saving N]

Prints a JSON summary at the end: the last step, the logged values of the last logging step and the
autocast dtypes the losses ran under.

--kill-after-step: die right after step N's update (after any checkpoint of an earlier step);
--kill-while-saving: die in the middle of writing the checkpoint of step N (after its first model file).
"""
from __future__ import annotations

import argparse
import json
import os
import signal

from faceanim.train import Trainer, TrainerConfig, state

from .toy import ToyGAN, ToyImages


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class KilledToyGAN(ToyGAN):
    def __init__(self, kill_after_step: int | None):
        super().__init__()
        self.kill_after_step = kill_after_step

    def on_step_end(self, models, step):
        super().on_step_end(models, step)
        if step == self.kill_after_step:
            _die()


def _kill_while_saving(step: int) -> None:
    original = state.save_tensors
    marker = f".{state.step_name(step)}.tmp"

    def save_then_die(path, tensors):
        original(path, tensors)
        if marker in str(path):
            _die()

    state.save_tensors = save_then_die


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("settings")
    parser.add_argument("--kill-after-step", type=int)
    parser.add_argument("--kill-while-saving", type=int)
    args = parser.parse_args()
    settings = json.loads(args.settings)
    dataset_size = settings.pop("dataset_size")
    if args.kill_while_saving:
        _kill_while_saving(args.kill_while_saving)
    method = KilledToyGAN(args.kill_after_step)
    result = Trainer(method, ToyImages(dataset_size), TrainerConfig(**settings)).fit()
    last = result.history[-1][1] if result.history else {}
    print(json.dumps({"step": result.step, "last": last, "autocast": sorted(method.autocast)}))


if __name__ == "__main__":
    main()
