"""Exponential moving averages of model weights (the "EMA model" diffusion methods sample with).

After every optimizer step, the average of each floating-point state-dict entry moves towards it:
`avg <- decay * avg + (1 - decay) * value`. That includes floating buffers such as BatchNorm running
statistics (as diffae/DVA and timm average them); integer buffers (step counters) are copied. The
averages live beside the weights (same device), in float32.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Mapping

import torch
from torch import nn


class EMA:
    """Moving averages of the state dicts of some named modules."""

    def __init__(self, modules: Mapping[str, nn.Module], decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.num_updates = 0
        self.averages: dict[str, dict[str, torch.Tensor]] = {
            name: {key: _stored(value) for key, value in module.state_dict().items()}
            for name, module in modules.items()}

    @torch.no_grad()
    def update(self, modules: Mapping[str, nn.Module]) -> None:
        """Move the averages towards the modules' current weights (call once per optimizer step)."""
        for name, average in self.averages.items():
            for key, value in modules[name].state_dict().items():
                if value.is_floating_point():
                    average[key].lerp_(value.detach().float(), 1.0 - self.decay)
                else:
                    average[key].copy_(value)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, modules: Mapping[str, nn.Module]) -> None:
        """Load the averages into the modules (cast to each module's own dtypes)."""
        for name, average in self.averages.items():
            modules[name].load_state_dict(average)

    @contextlib.contextmanager
    def swapped_in(self, modules: Mapping[str, nn.Module]) -> Iterator[None]:
        """Run the block with the averaged weights in the modules, then put the trained weights back."""
        trained = {name: {key: value.detach().clone() for key, value in modules[name].state_dict().items()}
                   for name in self.averages}
        self.copy_to(modules)
        try:
            yield
        finally:
            with torch.no_grad():
                for name, state in trained.items():
                    modules[name].load_state_dict(state)

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        """{module name: {state-dict key: averaged tensor}} (the live tensors, not copies)."""
        return self.averages

    @torch.no_grad()
    def load_state_dict(self, state: Mapping[str, Mapping[str, torch.Tensor]], num_updates: int = 0) -> None:
        """Restore averages saved by `state_dict`; every module and key must be present."""
        for name, average in self.averages.items():
            saved = state.get(name)
            missing = sorted(set(average) - set(saved or {}))
            if saved is None or missing:
                raise KeyError(f"EMA state for {name!r} lacks {missing[:5] if saved else 'everything'}")
            for key, value in average.items():
                value.copy_(saved[key])
        self.num_updates = num_updates


def _stored(value: torch.Tensor) -> torch.Tensor:
    value = value.detach().clone()
    return value.float() if value.is_floating_point() else value
