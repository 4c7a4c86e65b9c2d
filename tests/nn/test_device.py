"""The device rule: given, else CUDA when available, else CPU; a bad name is a one-line input error."""
from __future__ import annotations

import pytest
import torch

from faceanim.errors import InputError
from faceanim.nn.device import resolve_device


def test_default_and_given_devices():
    assert resolve_device() == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("name", ["nonsense", "cuda:x"] + ([] if torch.cuda.is_available() else ["cuda"]))
def test_bad_devices_are_input_errors(name):
    with pytest.raises(InputError, match="--device"):
        resolve_device(name)

