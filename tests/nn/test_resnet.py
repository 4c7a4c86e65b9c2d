"""ResNet backbones: torchvision's parameter names and counts, stage shapes, optional classifier."""
from __future__ import annotations

import pytest
import torch

from faceanim.nn.backbones.resnet import RESNETS, resnet18, resnet50

# torchvision's published parameter counts (with the 1000-class fc) and state-dict sizes
PARAMETERS = {18: 11_689_512, 34: 21_797_672, 50: 25_557_032}
STATE_KEYS = {18: 122, 34: 218, 50: 320}


@pytest.mark.parametrize("layers", [18, 34, 50])
def test_parameter_counts_match_torchvision(layers):
    model = RESNETS[layers]()
    assert sum(p.numel() for p in model.parameters()) == PARAMETERS[layers]
    assert len(model.state_dict()) == STATE_KEYS[layers]


def test_torchvision_key_names():
    keys = set(resnet18().state_dict())
    for key in ("conv1.weight", "bn1.running_var", "layer1.0.conv1.weight", "layer1.1.bn2.bias",
                "layer2.0.downsample.0.weight", "layer2.0.downsample.1.running_mean", "layer4.1.conv2.weight",
                "fc.weight", "fc.bias"):
        assert key in keys
    assert "layer1.0.downsample.0.weight" not in keys  # ResNet-18's first stage keeps its width
    keys50 = set(resnet50().state_dict())
    assert "layer1.0.downsample.0.weight" in keys50 and "layer3.5.conv3.weight" in keys50
    assert resnet50().state_dict()["layer2.0.conv2.weight"].shape == (128, 128, 3, 3)  # v1.5: stride here
    assert resnet50().layer2[0].conv2.stride == (2, 2) and resnet50().layer2[0].conv1.stride == (1, 1)


def test_stages_and_classifier():
    model = resnet18().eval()
    x = torch.randn(2, 3, 64, 96)
    stages = model.stages(x)
    assert [tuple(f.shape) for f in stages] == [(2, 64, 32, 48), (2, 64, 16, 24), (2, 128, 8, 12),
                                                  (2, 256, 4, 6), (2, 512, 2, 3)]
    assert model(x).shape == (2, 1000)
    features = resnet50(num_classes=None).eval()
    assert features.fc is None and "fc.weight" not in features.state_dict()
    assert features(x).shape == (2, 2048)
    assert features.stage_channels == (64, 256, 512, 1024, 2048)


def test_single_channel_input():
    model = resnet18(num_classes=10, in_channels=1).eval()
    assert model.conv1.weight.shape == (64, 1, 7, 7)
    assert model(torch.randn(1, 1, 32, 32)).shape == (1, 10)
