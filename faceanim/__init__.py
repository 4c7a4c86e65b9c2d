"""faceanim: face reenactment, talking heads and face-video editing in one library.

The public API is small; everything else is importable from its subpackage but not advertised.
Heavy modules (torch, dlib, av) are imported only when a name that needs them is used.
"""
from __future__ import annotations

from .errors import FaceanimError, InputError, MissingWeightsError, NoFaceError

__version__ = "0.1.0"

__all__ = ["FaceanimError", "InputError", "MissingWeightsError", "NoFaceError", "list_methods", "__version__"]


def list_methods():
    """The registered methods and their status (see `faceanim.registry`)."""
    from .registry import list_methods as _list

    return _list()
