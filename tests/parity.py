"""Shared access to the parity fixtures of ../shared/parity (or $FACEANIM_PARITY_DIR): discovery of every
stem of a system, the official weights (dequantised + procedural), the io tensors, and the criterion."""
from __future__ import annotations

import functools
import importlib
import json
import os
import sys
from pathlib import Path

import torch

from .evidence import missing, missing_param

REPO = Path(__file__).resolve().parents[1]
PARITY_DIR = Path(os.environ.get("FACEANIM_PARITY_DIR", REPO.parent / "shared" / "parity"))
TOLERANCE = 1e-3


def fixture_dir(system: str) -> Path:
    return PARITY_DIR / system


def stems(system: str) -> list[str]:
    folder = fixture_dir(system)
    return sorted(p.stem for p in folder.glob(f"{system}_*.json")) if folder.is_dir() else []


def stem_params(system: str) -> list:
    """Every fixture stem of `system`, or, when there is none, one case that is skipped (failed under CI)."""
    return stems(system) or [missing_param(f"no {system} parity fixtures in {fixture_dir(system)}",
                                           id=f"no-{system}-fixtures")]


def procedural():
    """shared/parity/procedural.py, which rebuilds the weights a fixture does not store."""
    if str(PARITY_DIR) not in sys.path:
        sys.path.insert(0, str(PARITY_DIR))
    return importlib.import_module("procedural")


@functools.lru_cache(maxsize=4)
def fixture(system: str, stem: str) -> tuple[dict, dict, dict]:
    """(json meta, every official weight keyed with its component prefix, io tensors)."""
    from safetensors.torch import load_file

    folder = fixture_dir(system)
    meta = json.loads((folder / f"{stem}.json").read_text())
    weights = procedural().load_fixture_weights(str(folder / f"{stem}_weights.safetensors"), meta)
    return meta, weights, load_file(str(folder / f"{stem}_io.safetensors"))


def component(weights: dict, prefix: str) -> dict:
    """The weights under `prefix` (e.g. "deca_E_flame."), with the prefix removed."""
    return {key[len(prefix):]: value for key, value in weights.items() if key.startswith(prefix)}


def full_keys(system: str, components: set[str] | None = None) -> dict[str, dict[str, tuple[list, str]]]:
    """`<system>_full_keys.txt` as {component: {key: (shape, dtype)}} (skips the test when absent)."""
    listing = fixture_dir(system) / f"{system}_full_keys.txt"
    if not listing.is_file():
        missing(f"{listing} not found")
    table: dict[str, dict] = {}
    for line in listing.read_text().splitlines():
        if line.strip():
            name, key, shape, dtype = line.split("\t")
            if components is None or name in components:
                table.setdefault(name, {})[key] = (json.loads(shape), dtype)
    return table


def flat_full_keys(system: str, prefix: str = "") -> dict[str, tuple[list, str]]:
    """`<system>_full_keys.txt` as {"<component>.<key>": (shape, dtype)} over the components whose name
    starts with `prefix`, the prefix removed from the name (skips the test when absent)."""
    return {f"{name[len(prefix):]}.{key}": entry for name, keys in full_keys(system).items()
            if name.startswith(prefix) for key, entry in keys.items()}


def key_table(state: dict) -> dict[str, tuple[list, str]]:
    return {key: (list(value.shape), str(value.dtype).removeprefix("torch.")) for key, value in state.items()}


def relative_error(ours: torch.Tensor, expected: torch.Tensor) -> float:
    return float((ours - expected).norm() / (expected - expected.mean()).norm())
