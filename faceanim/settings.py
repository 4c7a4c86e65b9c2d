"""Typed settings read from config files: building a settings dataclass (and the settings dataclasses it
holds) from a mapping with a clear error for unknown keys, the sections of an official FOMM-family
`model_params`, and the frame-augmentation settings every training config shares."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Self, get_type_hints

from .errors import InputError


def build_settings(cls, values: Mapping[str, Any], *, where: str, owner: str):
    """`cls(**values)`; InputError "`owner`: unknown `where` settings: ..." for keys `cls` does not have."""
    if not isinstance(values, Mapping):
        raise InputError(None, f"{owner}: {where} must be a mapping")
    unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise InputError(None, f"{owner}: unknown {where} settings: {', '.join(unknown)}")
    return cls(**values)


def settings_checker(owner: str) -> Callable[[list[tuple[bool, str]]], None]:
    """A config module's validation: `check([(ok, message), ...])` raises InputError "`owner`: message" for
    the first check that fails."""
    def check(checks: list[tuple[bool, str]]) -> None:
        for ok, message in checks:
            if not ok:
                raise InputError(None, f"{owner}: {message}")

    return check


def settings_builder(owner: str) -> Callable[[type, Mapping[str, Any], str], Any]:
    """`build_settings` with `owner` bound, for a config module: `build(cls, values, where)`."""
    def build(cls, values: Mapping[str, Any], where: str):
        return build_settings(cls, values, where=where, owner=owner)

    return build


def build_nested_settings(cls, values: Mapping[str, Any], *, where: str, owner: str):
    """`build_settings` for settings that hold settings (e.g. a model's `generator`, which holds its
    `dense_motion`), given as nested mappings (`dataclasses.asdict`): every field typed as a settings
    dataclass and present in `values` is built first, its field name naming it in errors."""
    if not isinstance(values, Mapping):
        return build_settings(cls, values, where=where, owner=owner)   # raises "must be a mapping"
    values = dict(values)
    types = get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if dataclasses.is_dataclass(types[field.name]) and field.name in values:
            values[field.name] = build_nested_settings(types[field.name], values[field.name], where=field.name,
                                                       owner=owner)
    return build_settings(cls, values, where=where, owner=owner)


class NestedSettings:
    """Mixin of a settings dataclass that holds settings (a model's config): `to_dict` gives nested mappings
    (what a converted folder's config.json stores) and `from_dict` reads them back, InputError naming
    `settings_owner` for keys it does not know."""

    settings_owner = "config"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of `to_dict`; unknown keys raise InputError."""
        return build_nested_settings(cls, data, where="model", owner=cls.settings_owner)


# the sections of an official FOMM-family `model_params` (FOMM, DaGAN, face-vid2vid YAMLs: `<name>_params`)
# and their short names in the parity fixtures
OFFICIAL_SECTIONS = {"common": "common", "kp_detector": "kp", "he_estimator": "he", "generator": "gen",
                     "discriminator": "disc"}


def official_section(model_params: Mapping[str, Any], name: str) -> dict:
    """A copy of the section `name` (a key of OFFICIAL_SECTIONS) of an official `model_params`:
    `<name>_params` as the released YAMLs have it, else the parity fixtures' short name; {} when absent."""
    return dict(next((model_params[key] for key in (f"{name}_params", OFFICIAL_SECTIONS[name])
                      if key in model_params), {}))


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
