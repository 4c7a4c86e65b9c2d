"""Atomic outputs: write to a temporary path beside the target, rename only on success.

A crash, a kill or an exception never leaves a partial file at the final path (and the temporary is
removed on an exception)."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success `os.replace` it onto `final`.

    The temporary name keeps the target's suffix (encoders pick the container from it)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".tmp{final.suffix}", dir=final.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if is_dir and final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        raise
