"""FADM's condition network (official `condition_net`, held by the UNet as `condition_conv`).

It turns the coarse frame into the 3-channel condition image the denoiser sees:
- `pre_conv_color` encodes two 256 px colour references (the coarse frame and, at training time, the real
  driving frame, both cut to 32 px and blown up again); their L1 distance is the colour loss;
- `deal_cond` encodes the coarse frame at 32, 64 and 128 px, each with a residual from the colour features;
- `motion_cond` maps the DECA attribute and the time embedding to K per-channel weights, and level i is
  weighted w_i = (K−i)/K·exp(w−0.3) + i/K·exp(−w+0.3), so early (noisy) steps and late ones lean on
  different resolutions;
- `resnet` fuses the weighted sum with the colour features into the condition image (sigmoid).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...nn.unet_blocks import Block, ResnetBlock, Swish

MOTION_WEIGHT_OFFSET = 0.3
DEAL_RESIDUAL = 0.4        # weight of the colour features added to each resolution's encoding
POOL_RESIDUAL = 0.4        # weight of the max-pooled attribute added to the motion weights
DRIVING_COLOUR = 0.2       # weight of the driving colour features in the fused input


class ResnetBlockCondition(nn.Module):
    """A coarse frame (any size) encoded at the colour features' size, plus 0.4 x a 1x1 of them."""

    def __init__(self, dim: int, pre_dim: int, dim_out: int, dropout: float = 0.0, norm_groups: int = 16):
        super().__init__()
        self.block1 = nn.Conv2d(dim, dim_out, 3, padding=1)
        self.block2 = Block(dim_out, dim_out, groups=norm_groups, dropout=dropout)
        self.res_conv = nn.Conv2d(pre_dim, dim_out, 1) if pre_dim != dim_out else nn.Identity()

    def forward(self, pre_image: torch.Tensor, up_features: torch.Tensor) -> torch.Tensor:
        if up_features.shape[-2:] != pre_image.shape[-2:]:
            up_features = F.interpolate(up_features, size=pre_image.shape[-2:], mode="bilinear")
        return self.block2(self.block1(up_features)) + DEAL_RESIDUAL * self.res_conv(pre_image)


class MLPCondition(nn.Module):
    """Per-channel motion weights from the attribute and the time embedding."""

    def __init__(self, time_dim: int, condition_dim: int, inner_dim: int):
        super().__init__()
        self.time_mlp = nn.Sequential(Swish(), nn.Linear(time_dim, inner_dim))
        self.condition = nn.Sequential(Swish(), nn.Linear(condition_dim + inner_dim, inner_dim), nn.ReLU(),
                                       nn.Linear(inner_dim, inner_dim), nn.Sigmoid())
        self.inner_dim = inner_dim

    def forward(self, t: torch.Tensor, attribute: torch.Tensor) -> torch.Tensor:
        mixed = self.condition(torch.cat((attribute, self.time_mlp(t)), dim=1))
        pooled = F.adaptive_max_pool1d(attribute.unsqueeze(1), self.inner_dim).squeeze(1)
        return mixed + POOL_RESIDUAL * pooled


@dataclass
class PreparedCondition:
    """The step-independent part of the condition of one batch of frames."""

    generated_features: torch.Tensor      # pre_conv_color of the coarse colour reference
    driving_features: torch.Tensor        # pre_conv_color of the driving colour reference
    levels: list[torch.Tensor]            # deal_cond of the coarse frame at each resolution
    color_loss: torch.Tensor              # mean |generated − driving| features (0 at inference)


class ConditionNetwork(nn.Module):
    def __init__(self, time_dim: int, condition_dim: int, in_channel: int = 3, inner_channel: int = 32,
                 out_channel: int = 3):
        super().__init__()
        half = inner_channel // 2
        self.pre_conv_color = nn.Sequential(nn.Conv2d(in_channel, half, 7, padding=3), nn.ReLU(),
                                            ResnetBlock(half, half, norm_groups=16), nn.ReLU(),
                                            ResnetBlock(half, half, norm_groups=16), Swish())
        self.deal_cond = ResnetBlockCondition(dim=in_channel, pre_dim=half, dim_out=half)
        self.motion_cond = MLPCondition(time_dim=time_dim, condition_dim=condition_dim, inner_dim=half)
        self.inner_channel = inner_channel
        fuse = []
        for _ in range(3):
            fuse += [ResnetBlock(inner_channel, inner_channel), nn.ReLU()]
        self.resnet = nn.Sequential(*fuse, nn.Conv2d(inner_channel, out_channel, 7, padding=3), nn.Sigmoid())

    @staticmethod
    def motion_weight(w: torch.Tensor, level: int, levels: int) -> torch.Tensor:
        return ((levels - level) / levels * torch.exp(w - MOTION_WEIGHT_OFFSET)
                + level / levels * torch.exp(-w + MOTION_WEIGHT_OFFSET))

    def prepare(self, warping: list[torch.Tensor], generated: torch.Tensor,
                driving: torch.Tensor) -> PreparedCondition:
        """Frame work: `warping` the coarse frame at 32/64/128 px, `generated`/`driving` the colour references."""
        generated_features = self.pre_conv_color(generated)
        driving_features = self.pre_conv_color(driving)
        levels = [self.deal_cond(pre_image=driving_features, up_features=level) for level in warping]
        color_loss = torch.abs(generated_features - driving_features).mean()
        return PreparedCondition(generated_features, driving_features, levels, color_loss)

    def forward(self, prepared: PreparedCondition, attribute: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Step work: the condition image for time embedding `t`."""
        motion = self.motion_cond(t=t, attribute=attribute)
        last = len(prepared.levels) - 1
        weighted = [level * self.motion_weight(motion, i, last)[:, :, None, None]
                    for i, level in enumerate(prepared.levels)]
        fused = torch.cat((sum(weighted[1:], weighted[0]),
                           prepared.generated_features + DRIVING_COLOUR * prepared.driving_features), dim=1)
        return self.resnet(fused)
