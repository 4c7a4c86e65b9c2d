"""The method interface's helpers: phases and sample grids."""
from __future__ import annotations

import pytest
import torch

from faceanim.train import Phase, image_grid


def test_image_grid_lays_items_in_rows_and_columns_side_by_side():
    sources = torch.zeros(3, 3, 4, 4)
    predictions = torch.ones(3, 3, 4, 4) * 0.5
    depth = torch.ones(3, 1, 2, 2)  # one channel, another size: shown grey, resized
    grid = image_grid([sources, predictions, depth], max_rows=2)
    assert grid.shape == (3, 2 * 4, 3 * 4)
    assert grid[:, :, :4].max() == 0 and torch.all(grid[:, :, 4:8] == 0.5) and torch.all(grid[:, :, 8:] == 1)
    assert image_grid([torch.full((1, 3, 2, 2), 7.0)]).max() == 1  # clamped to [0, 1]
    with pytest.raises(ValueError):
        image_grid([])


def test_a_phase_must_step_an_optimizer():
    assert Phase("g", ["generator"], lambda m, b, c: {}).optimizers == ("generator",)
    with pytest.raises(ValueError, match="steps no optimizer"):
        Phase("g", (), lambda m, b, c: {})
