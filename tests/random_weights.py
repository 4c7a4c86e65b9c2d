"""Random weights in an official file's layout that keep activations of order one through a deep network
(He-scaled kernels, batch-norm scales near 1), without the batch-norm counters that 2017/2018 files lack."""
from __future__ import annotations

import math

import torch


def he_state(model: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, tensor in model.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        if tensor.ndim >= 2:
            state[name] = torch.randn(tensor.shape, generator=generator) * math.sqrt(2.0 / tensor[0].numel())
        elif name.endswith("running_var"):
            state[name] = 0.5 + torch.rand(tensor.shape, generator=generator)
        elif name.endswith("bn.weight"):  # batch-norm scales near 1, so the input signal survives
            state[name] = 1 + 0.1 * torch.randn(tensor.shape, generator=generator)
        else:
            state[name] = 0.1 * torch.randn(tensor.shape, generator=generator)
    return state
