"""faceanim: face reenactment, talking heads and face-video editing in one library.

The public API is small; everything else is importable from its subpackage but not advertised.
Heavy modules (torch, dlib, av) are imported only when a name that needs them is used.
"""
from __future__ import annotations

from .errors import FaceanimError, InputError, MissingWeightsError, NoFaceError

__version__ = "0.1.0"

__all__ = ["FaceanimError", "InputError", "MissingWeightsError", "NoFaceError", "list_methods", "reenact", "talk",
           "edit", "__version__"]


def list_methods():
    """The registered methods and their status (see `faceanim.registry`)."""
    from .registry import list_methods as _list

    return _list()


def reenact(source, driving, output=None, *, method: str = "warp", **settings):
    """Animate the photo `source` with the driving video `driving` (see `faceanim.tasks.animate.reenact`).

    Writes `output` and returns its path, or returns an iterator of frames when `output` is None.
    Settings are the method's (for `warp`: relative, adapt_scale, smoothing, preset_name, ...; for
    `dagan`: checkpoint, depth_encoder, depth_decoder, precision, batch_size, device, relative,
    adapt_scale, crop, driving_crop, find_best_frame, best_frame, ...)."""
    from .tasks.animate import reenact as _reenact

    return _reenact(source, driving, output, method=method, **settings)


def talk(source, audio, output=None, *, method: str = "warp", **settings):
    """Make the photo `source` speak `audio` (see `faceanim.tasks.animate.talk`).

    Writes `output` and returns its path, or returns an iterator of frames when `output` is None.
    Settings are the method's (for `warp`: fps, still, head_amplitude, head_speed, blink_rate, seed, ...)."""
    from .tasks.animate import talk as _talk

    return _talk(source, audio, output, method=method, **settings)


def edit(video, output=None, *, method: str, **settings):
    """Edit the face in every frame of `video` with a face-crop method (see `faceanim.tasks.animate.edit`):
    crops in, crops out, pasted back into each frame with the sound kept.

    Writes `output` and returns its path, or returns an iterator of frames when `output` is None."""
    from .tasks.animate import edit as _edit

    return _edit(video, output, method=method, **settings)
