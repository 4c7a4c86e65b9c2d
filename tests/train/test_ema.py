"""EMA of weights: the update rule, buffers, swap-in for sampling, save and restore."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from faceanim.train import EMA


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))


def test_update_moves_the_average_towards_the_weights():
    net = model()
    ema = EMA({"net": net}, decay=0.9)
    start = net[0].weight.detach().clone()
    with torch.no_grad():
        net[0].weight.add_(1.0)
    ema.update({"net": net})
    assert torch.allclose(ema.averages["net"]["0.weight"], start + 0.1)
    ema.update({"net": net})
    assert torch.allclose(ema.averages["net"]["0.weight"], start + 0.1 * 0.9 + 0.1)
    assert ema.num_updates == 2


def test_float_buffers_are_averaged_and_counters_copied():
    net = model().train()
    ema = EMA({"net": net}, decay=0.75)
    net(torch.randn(8, 3) * 5)
    ema.update({"net": net})
    assert torch.allclose(ema.averages["net"]["1.running_mean"], 0.25 * net[1].running_mean)
    assert ema.averages["net"]["1.num_batches_tracked"].item() == 1


def test_swapped_in_uses_the_average_and_restores_the_weights():
    net = model()
    ema = EMA({"net": net}, decay=0.5)
    trained = net[0].weight.detach().clone()
    with torch.no_grad():
        net[0].weight.mul_(3)
    ema.update({"net": net})
    now = net[0].weight.detach().clone()
    with ema.swapped_in({"net": net}):
        assert torch.allclose(net[0].weight, 0.5 * trained + 0.5 * now)
    assert torch.equal(net[0].weight, now)


def test_weights_are_restored_after_an_error_inside_the_swap():
    net = model()
    ema = EMA({"net": net}, decay=0.5)
    with torch.no_grad():
        net[0].weight.add_(1)
    ema.update({"net": net})
    before = net[0].weight.detach().clone()
    with pytest.raises(RuntimeError):
        with ema.swapped_in({"net": net}):
            raise RuntimeError("sampling failed")
    assert torch.equal(net[0].weight, before)


def test_state_round_trip():
    net = model()
    ema = EMA({"net": net}, decay=0.9)
    with torch.no_grad():
        net[0].bias.add_(2)
    ema.update({"net": net})
    other = EMA({"net": model()}, decay=0.9)
    other.load_state_dict({k: {n: t.clone() for n, t in v.items()} for k, v in ema.state_dict().items()}, 1)
    assert all(torch.equal(a, other.averages["net"][n]) for n, a in ema.averages["net"].items())
    with pytest.raises(KeyError):
        other.load_state_dict({"net": {"0.weight": torch.zeros(4, 3)}})


def test_decay_must_be_below_one():
    with pytest.raises(ValueError):
        EMA({"net": model()}, decay=1.0)
