"""The launched run as a method's training entry point sees it: how many processes it has and which
one this is (from the launcher's environment, before Accelerate starts), and the method's own settings
recorded beside the trainer's."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from ..fileio import atomic_path

RUN_CONFIG_NAME = "train_config.json"


def world_size() -> int:
    """Processes of this run, as the launcher (accelerate launch, torchrun) says."""
    return max(1, int(os.environ.get("WORLD_SIZE", "1")))


def is_main_process() -> bool:
    """Whether this is the run's first process (the only one that writes shared files)."""
    return int(os.environ.get("RANK", "0")) == 0


def write_run_config(output: str | os.PathLike, values: Mapping[str, Any]) -> None:
    """`values` (a method's settings) as `output/train_config.json`, by the main process only."""
    if is_main_process():
        Path(output).mkdir(parents=True, exist_ok=True)
        with atomic_path(Path(output) / RUN_CONFIG_NAME) as tmp:
            tmp.write_text(json.dumps(dict(values), indent=2, default=str) + "\n")
