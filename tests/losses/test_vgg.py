"""VGG-19 features: torchvision parameter names, loading a torchvision-format file, tapped activations."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from faceanim.errors import CheckpointError
from faceanim.nn.backbones import PERCEPTUAL_TAPS, VGG19Features, load_vgg19

CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)


def torchvision_format_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """What torchvision's vgg19().state_dict() holds: 16 features convs and 3 classifier layers."""
    generator = torch.Generator().manual_seed(seed)
    widths = [3, 64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512]
    state = {}
    for i, index in enumerate(CONV_INDICES):
        state[f"features.{index}.weight"] = torch.randn(widths[i + 1], widths[i], 3, 3, generator=generator) * 0.05
        state[f"features.{index}.bias"] = torch.randn(widths[i + 1], generator=generator) * 0.05
    for index, (out, inp) in zip((0, 3, 6), ((64, 128), (64, 64), (10, 64))):  # small stand-ins
        state[f"classifier.{index}.weight"] = torch.randn(out, inp, generator=generator)
        state[f"classifier.{index}.bias"] = torch.randn(out, generator=generator)
    return state


def test_parameter_names_are_torchvision_ones():
    names = set(VGG19Features().state_dict())
    assert names == {f"features.{i}.{kind}" for i in CONV_INDICES for kind in ("weight", "bias")}


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_loads_a_torchvision_format_file_and_ignores_the_classifier(tmp_path, suffix):
    state = torchvision_format_state()
    path = tmp_path / f"vgg19-test{suffix}"
    if suffix == ".pth":
        torch.save(state, path)
    else:
        save_file(state, str(path))
    model = load_vgg19(path)
    assert not model.training
    for name, value in model.state_dict().items():
        assert torch.equal(value, state[name])


def test_a_file_without_all_features_is_refused(tmp_path):
    state = torchvision_format_state()
    del state["features.34.weight"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match="features.34.weight"):
        load_vgg19(tmp_path / "partial.pth")


def test_taps_are_relu1_1_to_relu5_1():
    model = VGG19Features().eval()
    outputs = model(torch.rand(1, 3, 64, 64))
    assert [tuple(o.shape[1:]) for o in outputs] == [(64, 64, 64), (128, 32, 32), (256, 16, 16), (512, 8, 8),
                                                     (512, 4, 4)]
    assert all(o.min() >= 0 for o in outputs)  # after ReLUs
    # the same as running the official slices [0:2], [2:7], ... one after the other
    x, slices = torch.rand(1, 3, 64, 64), [(0, 2), (2, 7), (7, 12), (12, 21), (21, 30)]
    expected, h = [], x
    for start, stop in slices:
        h = model.features[start:stop](h)
        expected.append(h)
    for got, want in zip(model(x, PERCEPTUAL_TAPS), expected):
        assert torch.equal(got, want)


def test_bad_taps_are_rejected():
    with pytest.raises(ValueError):
        VGG19Features()(torch.rand(1, 3, 32, 32), taps=(6, 1))
    with pytest.raises(ValueError):
        VGG19Features()(torch.rand(1, 3, 32, 32), taps=(40,))
