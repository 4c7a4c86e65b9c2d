"""Where inference runs when the caller does not say."""
from __future__ import annotations

import torch

from ..errors import InputError


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """`device` as given, else CUDA when it is available, else the CPU; InputError for a name torch does
    not know or a device this machine does not have."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise InputError(None, f"--device {device!r} is not a torch device ({str(error).splitlines()[0]})") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InputError(None, f"--device {device}: CUDA is not available on this machine")
    if resolved.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError(None, f"--device {device}: MPS is not available on this machine")
    return resolved


class ModelHolder:
    """A wrapper around a torch model (`self.model`): its device and dtype are those of the model's weights."""

    model: torch.nn.Module

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype
