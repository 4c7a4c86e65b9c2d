"""Training checkpoints on disk: written atomically, verified on reading, pruned to the last N.

A checkpoint is a folder `checkpoints/step-XXXXXXXX/`. It is filled under a hidden staging name
(`.step-XXXXXXXX.tmp`), its files are hashed into `manifest.json` (written last), flushed to disk, and
only then renamed into place, after which the `latest` pointer file is replaced. A crash at any moment
leaves the previous checkpoints and pointer as they were; a staging folder left by a killed run is
removed by the next save. On resume a checkpoint is used only if every file matches its manifest.

Tensors go to safetensors files; other state (optimizer and scheduler state dicts, RNG states) to
`torch.save` files that load with `torch.load(weights_only=True)` (nothing but tensors, numbers,
strings and containers), read back through `faceanim.checkpoints`.
"""
from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from ..checkpoints import load_checkpoint, sha256
from ..errors import CheckpointError
from ..fileio import atomic_path, replace_folder

log = logging.getLogger(__name__)

LATEST = "latest"
MANIFEST = "manifest.json"
_STEP_NAME = re.compile(r"^step-(\d{8,})$")


def step_name(step: int) -> str:
    return f"step-{step:08d}"


def save_tensors(path: Path, tensors: Mapping[str, torch.Tensor]) -> None:
    """A safetensors file of CPU copies (tensors that share memory, e.g. tied weights, are stored apart)."""
    from safetensors.torch import save_file

    save_file({key: value.detach().to("cpu", copy=True).contiguous() for key, value in tensors.items()}, str(path))


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)


def save_object(path: Path, value: Any) -> None:
    """`torch.save` of state made of tensors, numbers, strings and containers only."""
    torch.save(value, path)


def load_object(path: Path) -> Any:
    return load_checkpoint(path)  # weights-only unpickling


def rng_state() -> dict:
    """The random states of Python, numpy (legacy global), torch CPU and every CUDA device."""
    algorithm, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    return {"python": random.getstate(),
            "numpy": {"algorithm": algorithm, "keys": torch.from_numpy(keys.astype(np.int64)),
                      "position": int(position), "has_gauss": int(has_gauss),
                      "cached_gaussian": float(cached_gaussian)},
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    random.setstate(_as_tuples(state["python"]))
    saved = state["numpy"]
    np.random.set_state((saved["algorithm"], saved["keys"].numpy().astype(np.uint32), saved["position"],
                         saved["has_gauss"], saved["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    cuda_states = list(state["cuda"])
    if cuda_states and torch.cuda.is_available():
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
        else:
            log.warning("checkpoint has RNG states of %d CUDA devices, this machine %d: CUDA RNG not restored",
                        len(cuda_states), torch.cuda.device_count())


def _as_tuples(value: Any) -> Any:
    """random.setstate wants tuples; keep them tuples whatever the serialiser made of them."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def staging_folder(root: Path, step: int) -> Path:
    """An empty hidden folder to write the checkpoint of `step` into (a stale one is removed first)."""
    staging = root / f".{step_name(step)}.tmp"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    return staging


def publish(staging: Path, root: Path, step: int, keep_last_n: int) -> Path:
    """Seal a filled staging folder as the checkpoint of `step`, point `latest` at it, prune old ones."""
    files = sorted(p for p in staging.rglob("*") if p.is_file())
    manifest = {"step": step, "files": {str(p.relative_to(staging)): sha256(p) for p in files}}
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    for path in [*files, staging / MANIFEST]:
        _fsync(path)
    _fsync_tree(staging)
    final = root / step_name(step)
    replace_folder(staging, final)
    _fsync(root)
    with atomic_path(root / LATEST) as tmp:
        tmp.write_text(final.name + "\n")
        _fsync(tmp)
    prune(root, keep_last_n, newest=step)
    return final


def _fsync(path: Path) -> None:
    """Flush a file or folder to disk (the rename is only durable once its contents are)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot fsync folders
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for sub in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
        _fsync(sub)


def remove_stale(root: Path) -> None:
    """Remove staging folders and set-aside old folders that a killed run left behind."""
    if root.is_dir():
        for path in root.iterdir():
            if path.is_dir() and path.name.startswith(".step-") and path.name.endswith((".tmp", ".old")):
                shutil.rmtree(path, ignore_errors=True)


def checkpoints(root: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every published checkpoint under `root`, oldest step first."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _STEP_NAME.match(p.name))]
    return sorted(found)


def prune(root: Path, keep_last_n: int, newest: int) -> None:
    """Keep the `keep_last_n` newest checkpoints up to step `newest` (0: keep all).

    Checkpoints of later steps (left by a run that was resumed from an earlier checkpoint) are not
    touched: they are replaced when the run reaches their step."""
    if keep_last_n <= 0:
        return
    candidates = [path for step, path in checkpoints(root) if step <= newest]
    for path in candidates[:-keep_last_n]:
        shutil.rmtree(path, ignore_errors=True)


def verify(folder: Path) -> dict:
    """The manifest of a checkpoint folder, after checking every file's hash; else CheckpointError."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise CheckpointError(folder, "is not a complete training checkpoint (no manifest.json)")
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
    except (ValueError, KeyError, TypeError):
        raise CheckpointError(manifest_path, "is not a valid checkpoint manifest") from None
    for name, digest in files.items():
        path = folder / name
        if not path.is_file():
            raise CheckpointError(path, "listed in the checkpoint manifest but missing")
        if sha256(path) != digest:
            raise CheckpointError(path, "does not match its hash in the checkpoint manifest (damaged file)")
    return manifest


def find_checkpoint(root: Path, resume: str) -> Path | None:
    """The checkpoint folder to resume from: `resume` is "latest" or a folder path.

    "latest" follows the `latest` pointer; if that checkpoint is damaged or missing, the newest
    checkpoint that verifies is used (with a warning); None when there is no checkpoint at all."""
    if resume != "latest":
        folder = Path(resume)
        if not folder.is_dir():
            raise CheckpointError(folder, "no such checkpoint folder")
        verify(folder)
        return folder
    pointer = root / LATEST
    named = root / pointer.read_text().strip() if pointer.is_file() else None
    candidates = ([named] if named is not None else []) + [p for _, p in reversed(checkpoints(root)) if p != named]
    for folder in candidates:
        try:
            verify(folder)
            return folder
        except CheckpointError as err:
            log.warning("skipping checkpoint %s: %s", folder, err)
    return None
