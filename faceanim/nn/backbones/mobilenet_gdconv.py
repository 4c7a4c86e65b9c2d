"""MobileNet_GDConv: the 68-point face-landmark regressor of cunjian/pytorch_face_landmark (torchvision's
MobileNetV2 features, then a global depthwise 7x7 convolution and a 1x1 convolution to 136 outputs), as
Diffusion Video Autoencoders builds it in `model/basenet.py` (`LNDnet`) and loads it from
`mobilenet_224_model_best_gdconv_external.pth.tar` (`['state_dict']`, `module.` prefix stripped).

Parameter names are that code's: the module keeps the whole torchvision MobileNetV2 as `pretrain_net`
(`features.*`, plus the unused ImageNet `classifier.1`) and `base_net = Sequential(pretrain_net.features)`,
which SHARES those modules, so every feature tensor appears twice in the state dict
(`pretrain_net.features.K.*` and `base_net.0.K.*`). A saved file holds two equal copies. Where they differ
(a state dict assembled key by key, e.g. the parity fixtures' procedural weights), the `pretrain_net.features`
copy is taken: it is the tensor's first name (`named_parameters`/`state_dict` order), and the parity fixture's
landmarks agree with it (with the `base_net.0` copy, which plain `load_state_dict` of the official module
would leave, they are off by a relative 1.1). Input: (N, 3, 224, 224) ImageNet-normalised RGB; output (N, 136) =
68 (x, y) pairs in [0, 1] crop coordinates (not clamped here).
"""
from __future__ import annotations

import torch
from torch import nn

NUM_LANDMARK_OUTPUTS = 136

# torchvision mobilenet_v2 (width 1.0): expansion t, channels c, repeats n, first stride s
INVERTED_RESIDUAL_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                             (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
LAST_CHANNELS = 1280


def _conv_bn_relu6(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                   groups: int = 1) -> nn.Sequential:
    """torchvision's Conv2dNormActivation: `.0` conv (no bias), `.1` BatchNorm, `.2` ReLU6."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2,
                                   groups=groups, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """[1x1 expand ConvBNReLU6] -> 3x3 depthwise ConvBNReLU6 -> 1x1 linear projection + BN, with a residual
    when the stride is 1 and the width stays. Names: `conv.{0,1,2,3}` (`conv.{0,1,2}` without expansion)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = int(round(in_channels * expand_ratio))
        self.use_res_connect = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(_conv_bn_relu6(in_channels, hidden, kernel_size=1))
        layers += [_conv_bn_relu6(hidden, hidden, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, out_channels, 1, 1, 0, bias=False),
                   nn.BatchNorm2d(out_channels)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision.models.mobilenet_v2() layout (`features.0..18`, `classifier.1`), randomly initialised."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        layers: list[nn.Module] = [_conv_bn_relu6(3, 32, stride=2)]
        in_channels = 32
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            for i in range(n):
                layers.append(InvertedResidual(in_channels, c, s if i == 0 else 1, t))
                in_channels = c
        layers.append(_conv_bn_relu6(in_channels, LAST_CHANNELS, kernel_size=1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(LAST_CHANNELS, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3)))


class ConvBlock(nn.Module):
    """conv (no bias; depthwise when `dw`) -> BatchNorm [-> PReLU unless `linear`]."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride: int, padding: int,
                 dw: bool = False, linear: bool = False):
        super().__init__()
        self.linear = linear
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                              groups=in_channels if dw else 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        if not linear:
            self.prelu = nn.PReLU(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return x if self.linear else self.prelu(x)


def _prefer_pretrain_net_copy(module, state_dict, prefix, *args) -> None:
    """Load-time: `base_net.0.K.*` := `pretrain_net.features.K.*` where both are given (one shared tensor)."""
    source, target = prefix + "pretrain_net.features.", prefix + "base_net.0."
    for key in [k for k in state_dict if k.startswith(source)]:
        twin = target + key[len(source):]
        if twin in state_dict:
            state_dict[twin] = state_dict[key]


class MobileNetGDConv(nn.Module):
    """MobileNetV2 features (7x7x1280 at 224 px) -> global depthwise 7x7 conv -> 1x1 conv -> (N, classes)."""

    def __init__(self, num_classes: int = NUM_LANDMARK_OUTPUTS):
        super().__init__()
        self.pretrain_net = MobileNetV2()
        self.base_net = nn.Sequential(self.pretrain_net.features)  # shared with pretrain_net, as upstream
        self.linear7 = ConvBlock(LAST_CHANNELS, LAST_CHANNELS, (7, 7), 1, 0, dw=True, linear=True)
        self.linear1 = ConvBlock(LAST_CHANNELS, num_classes, 1, 1, 0, linear=True)
        self.register_load_state_dict_pre_hook(_prefer_pretrain_net_copy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear1(self.linear7(self.base_net(x))).flatten(1)
