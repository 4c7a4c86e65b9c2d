"""One progress bar for long work (tqdm on stderr; hidden when stderr is not a terminal)."""
from __future__ import annotations

import os
from typing import Iterable, TypeVar

T = TypeVar("T")


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "", unit: str = "frame",
             enabled: bool | None = None) -> Iterable[T]:
    """Wrap an iterable in a progress bar with ETA.

    enabled=None shows it only on a terminal; FACEANIM_PROGRESS=0/1 overrides."""
    env = os.environ.get("FACEANIM_PROGRESS")
    if env is not None:
        enabled = env not in ("0", "false", "no")
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, dynamic_ncols=True,
                disable=None if enabled is None else not enabled, leave=False)
