"""Noise sources for stochastic samplers: the caller decides where each step's noise comes from.

A source is called as ``source(index, like)`` with the schedule index of the step and the current
state; it returns a tensor that broadcasts to ``like`` (a batch-1 tensor is shared by the whole batch,
which is how FADM reuses one noise list for every frame of a video).
"""
from __future__ import annotations

from typing import Callable, Mapping, Protocol, Sequence, runtime_checkable

import torch


@runtime_checkable
class NoiseSource(Protocol):
    def __call__(self, index: int, like: torch.Tensor) -> torch.Tensor: ...


class NoiseList:
    """Noise given in advance: ``noises[index]`` (a sequence indexed by schedule index, or a mapping).

    Tensors with batch size 1 are shared across the batch; others must match it."""

    def __init__(self, noises: Sequence[torch.Tensor] | Mapping[int, torch.Tensor]):
        self.noises = noises

    def __call__(self, index: int, like: torch.Tensor) -> torch.Tensor:
        try:
            noise = self.noises[index]
        except (IndexError, KeyError):
            raise IndexError(f"the noise list has no entry for step index {index}") from None
        return _broadcast(noise, like)


class SeededNoise:
    """Each step's noise drawn from its own seed: ``randn(shape, generator=manual_seed(seed_of(index)))``
    on the CPU (so results do not depend on the device), then moved to the state's device/dtype.

    ``shape`` defaults to the state's shape; give a batch-1 shape to share the noise across the batch."""

    def __init__(self, seed_of: Callable[[int], int], shape: Sequence[int] | None = None):
        self.seed_of = seed_of
        self.shape = None if shape is None else tuple(shape)

    def __call__(self, index: int, like: torch.Tensor) -> torch.Tensor:
        generator = torch.Generator().manual_seed(int(self.seed_of(index)))
        noise = torch.randn(self.shape or tuple(like.shape), generator=generator)
        return _broadcast(noise, like)


class GeneratorNoise:
    """Fresh noise from one generator (or torch's global one), drawn in the order the sampler asks."""

    def __init__(self, generator: torch.Generator | None = None):
        self.generator = generator

    def __call__(self, index: int, like: torch.Tensor) -> torch.Tensor:
        device = self.generator.device if self.generator is not None else like.device
        noise = torch.randn(like.shape, generator=self.generator, device=device, dtype=like.dtype)
        return noise.to(like.device)


def _broadcast(noise: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    noise = noise.to(device=like.device, dtype=like.dtype)
    if noise.shape != like.shape:
        if noise.shape[1:] != like.shape[1:] or noise.shape[0] != 1:
            raise ValueError(f"noise of shape {tuple(noise.shape)} does not fit a state of shape {tuple(like.shape)}")
        noise = noise.expand_as(like)
    return noise
