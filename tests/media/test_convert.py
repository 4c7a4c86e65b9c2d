"""to_tensor / from_tensor: layout, value ranges and the round trip."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from faceanim.media import from_tensor, to_tensor


@pytest.mark.parametrize("value_range", [(0, 1), (-1, 1)])
def test_round_trip_is_exact(astronaut, value_range):
    frames = np.stack([astronaut, astronaut[::-1]])
    tensor = to_tensor(frames, value_range)
    assert tensor.shape == (2, 3, 512, 512) and tensor.dtype == torch.float32
    assert tensor.min().item() >= value_range[0] and tensor.max().item() <= value_range[1]
    np.testing.assert_array_equal(from_tensor(tensor, value_range), frames)


def test_values_and_channel_order():
    frame = np.zeros((2, 3, 3), np.uint8)
    frame[..., 0], frame[..., 1], frame[..., 2] = 255, 0, 51
    unit = to_tensor(frame)
    assert unit.shape == (1, 3, 2, 3)
    assert unit[0, :, 0, 0].tolist() == pytest.approx([1.0, 0.0, 0.2])
    signed = to_tensor(frame, (-1, 1), dtype=torch.float64)
    assert signed.dtype == torch.float64
    assert signed[0, :, 1, 2].tolist() == pytest.approx([1.0, -1.0, -0.6])


def test_from_tensor_clamps_and_rounds():
    tensor = torch.tensor([-0.5, 0.0, 0.499 / 255, 0.501 / 255, 1.0, 7.0]).reshape(1, 1, 1, 6).expand(1, 3, 1, 6)
    out = from_tensor(tensor.contiguous().requires_grad_(), (0, 1))
    assert out.shape == (1, 1, 6, 3) and out.dtype == np.uint8
    assert out[0, 0, :, 0].tolist() == [0, 0, 0, 1, 255, 255]
    assert from_tensor(torch.zeros(3, 4, 5), (-1, 1)).shape == (1, 4, 5, 3)
    assert (from_tensor(torch.zeros(3, 4, 5), (-1, 1)) == 128).all()  # -1..1 midpoint -> 127.5 -> 128


def test_bad_inputs_are_refused():
    with pytest.raises(TypeError):
        to_tensor(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError):
        to_tensor(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError):
        to_tensor(np.zeros((4, 4, 3), np.uint8), value_range=(1, 1))
    with pytest.raises(ValueError):
        from_tensor(torch.zeros(1, 4, 8, 8))
