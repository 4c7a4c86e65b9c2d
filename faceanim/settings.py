"""Typed settings read from config files: building a settings dataclass from a mapping with a clear error
for unknown keys, and the frame-augmentation settings every training config shares."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from .errors import InputError


def build_settings(cls, values: Mapping[str, Any], *, where: str, owner: str):
    """`cls(**values)`; InputError "`owner`: unknown `where` settings: ..." for keys `cls` does not have."""
    if not isinstance(values, Mapping):
        raise InputError(None, f"{owner}: {where} must be a mapping")
    unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise InputError(None, f"{owner}: unknown {where} settings: {', '.join(unknown)}")
    return cls(**values)


@dataclass(frozen=True)
class AugmentationParams:
    """Flips and colour jitter of training frames (a jitter amount of 0 turns that one off)."""

    horizontal_flip: bool = True
    time_flip: bool = True
    brightness: float = 0.1
    contrast: float = 0.1
    saturation: float = 0.1
    hue: float = 0.1

    def __post_init__(self):
        if not (min(self.brightness, self.contrast, self.saturation, self.hue) >= 0 and self.hue <= 0.5):
            raise InputError(None, "augmentation: jitter amounts must be >= 0 (hue at most 0.5)")


def config_section(data: Mapping[str, Any], name: str, keys: tuple[str, ...], *, owner: str) -> dict:
    """The mapping `data[name]` (empty when absent) of a config file, its keys checked against `keys`;
    InputError "`owner`: ..." for a non-mapping or an unknown key."""
    values = data.get(name) or {}
    if not isinstance(values, Mapping):
        raise InputError(None, f"{owner}: section {name} must be a mapping")
    unknown = sorted(set(values) - set(keys))
    if unknown:
        raise InputError(None, f"{owner}: unknown {name} settings: {', '.join(unknown)}")
    return dict(values)
