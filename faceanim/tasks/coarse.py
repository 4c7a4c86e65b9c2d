"""The coarse animators FADM refines, built by name from their own methods (methods never import each
other, so the composition happens here): face-vid2vid (FADM's inference default, absolute motion), FOMM
(FADM's training-time animator), DaGAN, and the training-free `warp` engine (as a crop animator)."""
from __future__ import annotations

import os

from ..errors import InputError, MissingWeightsError
from ..registry import get_method
from ..warping.animator import CoarseCrops, CropAnimator

COARSE_ANIMATORS = ("facevid", "fomm", "dagan", "warp")
# the settings each coarse animator's from_pretrained takes (the rest are FADM's)
COARSE_SETTINGS_BY_ANIMATOR = {
    "facevid": ("config", "relative", "adapt_scale", "device", "precision", "batch_size"),
    "fomm": ("config", "relative", "adapt_scale", "device", "batch_size"),
    "dagan": ("config", "depth_encoder", "depth_decoder", "kp_num", "generator", "relative", "adapt_scale", "device",
              "precision", "batch_size"),
    "warp": (),
}
COARSE_SETTINGS = frozenset(key for keys in COARSE_SETTINGS_BY_ANIMATOR.values() for key in keys) | {"coarse_config"}
_DEFAULT_MOTION = {"facevid": dict(relative=False, adapt_scale=False), "fomm": dict(relative=False, adapt_scale=False)}


def coarse_animator(name: str, checkpoint: str | os.PathLike | None, crop_size: int, **settings) -> CropAnimator:
    """The coarse animator `name` with its weights (`checkpoint`, else its method's environment variable).

    FADM's official coarse stage moves the source to the driving frame's absolute pose and expression, so
    face-vid2vid and FOMM default to absolute motion here; DaGAN and warp keep their own defaults."""
    if name not in COARSE_ANIMATORS:
        raise InputError(None, f"--coarse must be one of {', '.join(COARSE_ANIMATORS)}, got {name!r}")
    unknown = set(settings) - set(COARSE_SETTINGS_BY_ANIMATOR[name])
    if unknown:
        raise InputError(None, f"--coarse {name} does not take {', '.join(sorted(unknown))}")
    pipeline_class = get_method(name).pipeline_class_for("reenact")
    if name == "warp":
        if checkpoint is not None:
            raise InputError(checkpoint, "--coarse warp has no weights; drop --coarse-checkpoint")
        return CoarseCrops(pipeline_class.from_pretrained(), crop_size)
    settings = {**_DEFAULT_MOTION.get(name, {}), **settings}
    animator = pipeline_class.from_pretrained(_coarse_weights(name, checkpoint), **settings)
    if int(animator.crop_size) != int(crop_size):
        raise InputError(checkpoint, f"makes {animator.crop_size} px crops; the FADM renderer refines {crop_size} px")
    return animator


def _coarse_weights(name: str, given: str | os.PathLike | None) -> str:
    """--coarse-checkpoint, else FACEANIM_FADM_COARSE, else the coarse method's own variable."""
    fadm_spec = next(weight for weight in get_method("fadm").weights if weight.name == "coarse")
    own_spec = get_method(name).weights[0]
    path = given or os.environ.get(fadm_spec.env) or os.environ.get(own_spec.env)
    if not path:
        raise MissingWeightsError(f"missing the coarse animator's weights ({own_spec.description}): pass "
                                  f"--coarse-checkpoint PATH or set {fadm_spec.env} (or {own_spec.env})")
    return os.fspath(path)
