"""The coarse animator a refining method (FADM) refines, built by name from its own method's registry
spec (methods never import each other, so the composition happens here). Any method whose spec has a
`coarse` entry qualifies: its settings in that role and its defaults come from the spec (FADM's official
coarse stage moves the source to the driving frame's absolute pose, so face-vid2vid and FOMM default to
absolute motion there). A whole-image animator (the `warp` engine) serves through `warping.CoarseCrops`.
"""
from __future__ import annotations

import os

from ..errors import InputError, MissingWeightsError
from ..registry import MethodSpec, coarse_animators, get_method
from ..warping.animator import CoarseCrops, CropAnimator

# the refiner's own names for settings that go to its coarse animator
_RENAMED = {"coarse_config": "config"}
# pipeline settings a refiner shares with its coarse animator (the coarse model runs beside it)
_SHARED = ("device", "batch_size")


def coarse_settings_names() -> frozenset[str]:
    """Every setting some coarse animator takes (so a refiner's own settings are the rest)."""
    names = {key for name in coarse_animators() for key in get_method(name).coarse.settings}
    return frozenset(names | set(_RENAMED)) - set(_SHARED)


def split_coarse_settings(refiner: MethodSpec, settings: dict) -> tuple[str, object, dict, bool]:
    """Take the coarse animator's name, weights and settings out of a refiner's `settings` (in place):
    (name, checkpoint, its settings, whether any coarse option was given)."""
    given_name = settings.pop("coarse", None)
    checkpoint = settings.pop("coarse_checkpoint", None)
    own = {key: settings.pop(key) for key in list(settings) if key in coarse_settings_names()}
    for old, new in _RENAMED.items():
        if old in own:
            own[new] = own.pop(old)
    name = given_name or refiner.default_coarse
    if get_method(name).coarse is not None and get_method(name).coarse.weights:
        own.update({key: settings[key] for key in _SHARED if key in settings})
    return name, checkpoint, own, bool(given_name or checkpoint or own.keys() - set(_SHARED))


def coarse_animator(name: str, checkpoint: str | os.PathLike | None, crop_size: int, *,
                    refiner: MethodSpec | None = None, **settings) -> CropAnimator:
    """The coarse animator `name` with its weights (`checkpoint`, else the refiner's coarse-weights
    variable, else the method's own) and `settings` (the method's defaults in that role first)."""
    available = coarse_animators()
    if name not in available:
        raise InputError(None, f"--coarse must be one of {', '.join(available)}, got {name!r}")
    spec = get_method(name)
    unknown = set(settings) - set(spec.coarse.settings)
    if unknown:
        raise InputError(None, f"--coarse {name} does not take {', '.join(sorted(unknown))}")
    pipeline_class = spec.pipeline_class_for("reenact")
    if not spec.coarse.weights:
        if checkpoint is not None:
            raise InputError(checkpoint, f"--coarse {name} has no weights; drop --coarse-checkpoint")
        return CoarseCrops(pipeline_class.from_pretrained(), crop_size)
    settings = {**spec.coarse.defaults, **settings}
    animator = pipeline_class.from_pretrained(_coarse_weights(spec, checkpoint, refiner), **settings)
    if int(animator.crop_size) != int(crop_size):
        raise InputError(checkpoint, f"makes {animator.crop_size} px crops; the refiner works on {crop_size} px")
    return animator


def _coarse_weights(spec: MethodSpec, given: str | os.PathLike | None, refiner: MethodSpec | None) -> str:
    """--coarse-checkpoint, else the refiner's coarse-weights variable, else the coarse method's own."""
    refiner_spec = next((w for w in refiner.weights if w.name == "coarse"), None) if refiner else None
    own_spec = spec.weights[0]
    path = given or (refiner_spec and os.environ.get(refiner_spec.env)) or os.environ.get(own_spec.env)
    if not path:
        where = f"pass --coarse-checkpoint PATH or set {refiner_spec.env} (or {own_spec.env})" if refiner_spec \
            else f"pass --coarse-checkpoint PATH or set {own_spec.env}"
        raise MissingWeightsError(f"missing the coarse animator's weights ({own_spec.description}): {where}")
    return os.fspath(path)
