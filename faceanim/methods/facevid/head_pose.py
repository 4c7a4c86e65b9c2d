"""face-vid2vid's head pose and expression (Wang et al. 2021, Sec. 3.1, Eq. 1-2).

A ResNet-50-like bottleneck network predicts, from one image, yaw/pitch/roll as classifications over
`num_bins` bins of 3 degrees (decoded as the softmax expectation, 3 * E[bin] - 99 degrees), a translation
t and expression deltas delta_k. A frame's keypoints are the source's canonical keypoints moved by its pose:
    x_k = R(yaw, pitch, roll) x_c,k + t + delta_k,     J_k = R J_c,k.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...nn.precision import full_precision
from ...warping.keypoints import Keypoints
from .config import FaceVidConfig

# the official code converts degrees with 3.14, not pi; kept, since the weights were trained with it
DEGREES_TO_RADIANS = 3.14 / 180


class ResBottleneck(nn.Module):
    """ResNet bottleneck (1x1 -> 3x3 with `stride` -> 1x1, BatchNorm after each) at constant width; a strided
    block projects its shortcut with a strided 1x1 conv + BatchNorm (`skip`, `norm4`)."""

    def __init__(self, in_features: int, stride: int):
        super().__init__()
        inner = in_features // 4
        self.conv1 = nn.Conv2d(in_features, inner, kernel_size=1)
        self.conv2 = nn.Conv2d(inner, inner, kernel_size=3, padding=1, stride=stride)
        self.conv3 = nn.Conv2d(inner, in_features, kernel_size=1)
        self.norm1 = nn.BatchNorm2d(inner, affine=True)
        self.norm2 = nn.BatchNorm2d(inner, affine=True)
        self.norm3 = nn.BatchNorm2d(in_features, affine=True)
        self.stride = stride
        if stride != 1:
            self.skip = nn.Conv2d(in_features, in_features, kernel_size=1, stride=stride)
            self.norm4 = nn.BatchNorm2d(in_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        out = F.relu(self.norm2(self.conv2(out)))
        out = self.norm3(self.conv3(out))
        shortcut = self.norm4(self.skip(x)) if self.stride != 1 else x
        return F.relu(out + shortcut)


@dataclass
class HeadPose:
    """yaw, pitch, roll: (B, num_bins) bin logits; t: (B, 3) translation; exp: (B, 3K) expression deltas."""

    yaw: torch.Tensor
    pitch: torch.Tensor
    roll: torch.Tensor
    t: torch.Tensor
    exp: torch.Tensor

    def __getitem__(self, index) -> "HeadPose":
        """The poses of some batch elements (an int keeps the batch axis)."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return HeadPose(self.yaw[index], self.pitch[index], self.roll[index], self.t[index], self.exp[index])


def _stage(width: int, count: int, prefix: str) -> nn.Sequential:
    blocks = nn.Sequential()
    for i in range(count):
        blocks.add_module(f"{prefix}_{i}", ResBottleneck(width, stride=1))
    return blocks


class HEEstimator(nn.Module):
    """Image (B, C, H, W) in [0, 1] -> HeadPose. Parameter names are the official ones."""

    def __init__(self, config: FaceVidConfig):
        super().__init__()
        stem, bins = config.he_estimator.block_expansion, config.he_estimator.num_bins
        w1, w2, w3, w4 = config.he_estimator.stage_widths
        self.conv1 = nn.Conv2d(config.image_channel, stem, kernel_size=7, padding=3, stride=2)
        self.norm1 = nn.BatchNorm2d(stem, affine=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.conv2, self.norm2 = nn.Conv2d(stem, w1, kernel_size=1), nn.BatchNorm2d(w1, affine=True)
        self.block1 = _stage(w1, 3, "b1")
        self.conv3, self.norm3 = nn.Conv2d(w1, w2, kernel_size=1), nn.BatchNorm2d(w2, affine=True)
        self.block2 = ResBottleneck(w2, stride=2)
        self.block3 = _stage(w2, 3, "b3")
        self.conv4, self.norm4 = nn.Conv2d(w2, w3, kernel_size=1), nn.BatchNorm2d(w3, affine=True)
        self.block4 = ResBottleneck(w3, stride=2)
        self.block5 = _stage(w3, 5, "b5")
        self.conv5, self.norm5 = nn.Conv2d(w3, w4, kernel_size=1), nn.BatchNorm2d(w4, affine=True)
        self.block6 = ResBottleneck(w4, stride=2)
        self.block7 = _stage(w4, 2, "b7")
        self.fc_roll = nn.Linear(w4, bins)
        self.fc_pitch = nn.Linear(w4, bins)
        self.fc_yaw = nn.Linear(w4, bins)
        self.fc_t = nn.Linear(w4, 3)
        self.fc_exp = nn.Linear(w4, 3 * config.num_kp)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled image descriptor (last stage width) the heads read."""
        out = self.maxpool(F.relu(self.norm1(self.conv1(x))))
        out = self.block1(F.relu(self.norm2(self.conv2(out))))
        out = self.block3(self.block2(F.relu(self.norm3(self.conv3(out)))))
        out = self.block5(self.block4(F.relu(self.norm4(self.conv4(out)))))
        out = self.block7(self.block6(F.relu(self.norm5(self.conv5(out)))))
        return F.adaptive_avg_pool2d(out, 1).flatten(1)

    def forward(self, x: torch.Tensor) -> HeadPose:
        # the pose becomes keypoint positions (a rotation of every keypoint), so it stays float32 under autocast
        with full_precision(x):
            features = self.features(x.to(self.fc_t.weight.dtype))
            # the released weights were trained with yaw read from `fc_roll` and roll from `fc_yaw`
            return HeadPose(yaw=self.fc_roll(features), pitch=self.fc_pitch(features), roll=self.fc_yaw(features),
                            t=self.fc_t(features), exp=self.fc_exp(features))


def bins_to_degrees(logits: torch.Tensor) -> torch.Tensor:
    """(B, num_bins) logits -> (B,) angles in degrees: 3 * (expected bin index) - 99."""
    index = torch.arange(logits.shape[1], dtype=logits.dtype, device=logits.device)
    return torch.sum(F.softmax(logits, dim=1) * index, dim=1) * 3 - 99


def rotation_matrix(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) R = R_x(pitch) R_y(yaw) R_z(roll) for (B,) angles in degrees."""
    yaw, pitch, roll = (angle * DEGREES_TO_RADIANS for angle in (yaw, pitch, roll))
    zero, one = torch.zeros_like(yaw), torch.ones_like(yaw)

    def matrix(*rows: torch.Tensor) -> torch.Tensor:
        return torch.stack(rows, dim=1).view(-1, 3, 3)

    pitch_matrix = matrix(one, zero, zero, zero, pitch.cos(), -pitch.sin(), zero, pitch.sin(), pitch.cos())
    yaw_matrix = matrix(yaw.cos(), zero, yaw.sin(), zero, one, zero, -yaw.sin(), zero, yaw.cos())
    roll_matrix = matrix(roll.cos(), -roll.sin(), zero, roll.sin(), roll.cos(), zero, zero, zero, one)
    return torch.einsum("bij,bjk,bkm->bim", pitch_matrix, yaw_matrix, roll_matrix)


def transform_keypoints(canonical: Keypoints, pose: HeadPose, *, yaw: float | None = None,
                        pitch: float | None = None, roll: float | None = None) -> Keypoints:
    """The canonical keypoints moved by `pose`: R x_c + t + delta (and R J_c). A batch-1 `canonical`
    serves a batch of poses. yaw / pitch / roll (degrees) replace the estimated angle (free view)."""
    batch = pose.t.shape[0]
    angles = []
    for given, logits in ((yaw, pose.yaw), (pitch, pose.pitch), (roll, pose.roll)):
        angles.append(bins_to_degrees(logits) if given is None else logits.new_full((batch,), float(given)))
    rotation = rotation_matrix(*angles)
    value = canonical.value.expand(batch, *canonical.value.shape[1:])
    moved = torch.einsum("bmp,bkp->bkm", rotation, value) + pose.t.unsqueeze(1)
    moved = moved + pose.exp.view(batch, -1, 3)
    jacobian = None
    if canonical.jacobian is not None:
        jacobian = torch.einsum("bmp,bkps->bkms", rotation,
                                canonical.jacobian.expand(batch, *canonical.jacobian.shape[1:]))
    return Keypoints(moved, jacobian)
