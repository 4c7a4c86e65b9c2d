"""Self-supervised monocular depth (Monodepth2, Godard et al. 2019, as Face-Depth-Network trains DaGAN's
depth network): the pose network, the camera geometry of inverse warping, and the photometric losses.

A target frame's depth and the relative camera motion to a neighbouring frame predict where each target
pixel appears in the neighbour: back-project the pixel with the depth and the inverse intrinsics, move it
by the 4x4 motion, project it with the intrinsics. Sampling the neighbour there should rebuild the target.

Face-Depth-Network's pose decoder also predicts the intrinsics (faces come from unknown cameras):
focal lengths `softplus(.) * (W, H)` and principal point `(softplus(.) + 0.5) * (W, H)`, each a spatial
mean of a 3x3 conv head. There `.trunc()` is applied to the intrinsics before use, which zeroes their
gradient, so the heads never learn; here they receive gradients.

Pixel coordinates are normalised for `grid_sample` with align_corners=True, consistently (Monodepth2
normalises that way but samples with the align_corners=False default).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...nn.backbones.resnet import RESNETS
from ...nn.precision import full_precision


class PoseNetwork(nn.Module):
    """(earlier frame, later frame) -> axis-angle (B, 3), translation (B, 3) of the camera motion between
    them, and intrinsics K (B, 3, 3) in pixels of `image_size`.

    Monodepth2's "separate_resnet" pose model: a ResNet on the two frames stacked (6 channels, input
    normalised as the depth encoder's) and a small conv decoder, outputs scaled by 0.01."""

    def __init__(self, num_layers: int = 18, image_size: int = 224):
        super().__init__()
        self.encoder = RESNETS[num_layers](num_classes=None, in_channels=6)
        width = self.encoder.stage_channels[-1]
        self.squeeze = nn.Conv2d(width, 256, 1)
        self.pose_0 = nn.Conv2d(256, 256, 3, padding=1)
        self.pose_1 = nn.Conv2d(256, 256, 3, padding=1)
        self.pose_2 = nn.Conv2d(256, 6, 1)
        self.focal = nn.Conv2d(256, 2, 3, padding=1)
        self.offset = nn.Conv2d(256, 2, 3, padding=1)
        self.image_size = image_size

    def forward(self, earlier: torch.Tensor, later: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        stacked = (torch.cat([earlier, later], dim=1) - 0.45) / 0.225
        features = torch.relu(self.squeeze(self.encoder.stages(stacked)[-1]))
        features = torch.relu(self.pose_1(torch.relu(self.pose_0(features))))
        motion = 0.01 * self.pose_2(features).mean(dim=(2, 3))
        size = float(self.image_size)
        focal = F.softplus(self.focal(features)).mean(dim=(2, 3)) * size
        centre = (F.softplus(self.offset(features)).mean(dim=(2, 3)) + 0.5) * size
        return motion[:, :3], motion[:, 3:], intrinsics_matrix(focal, centre)


def intrinsics_matrix(focal: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """K (B, 3, 3) from focal lengths (B, 2) and principal points (B, 2), in pixels."""
    zeros, ones = torch.zeros_like(focal[:, 0]), torch.ones_like(focal[:, 0])
    rows = [torch.stack([focal[:, 0], zeros, centre[:, 0]], dim=1),
            torch.stack([zeros, focal[:, 1], centre[:, 1]], dim=1),
            torch.stack([zeros, zeros, ones], dim=1)]
    return torch.stack(rows, dim=1)


def rotation_from_axis_angle(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (B, 3, 3) of axis-angle vectors (B, 3) (Rodrigues' formula)."""
    angle = axis_angle.norm(dim=1, keepdim=True)
    axis = axis_angle / (angle + 1e-7)
    x, y, z = axis.unbind(1)
    zero = torch.zeros_like(x)
    cross = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=1).view(-1, 3, 3)
    angle = angle.view(-1, 1, 1)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return eye + torch.sin(angle) * cross + (1 - torch.cos(angle)) * cross @ cross


def camera_motion(axis_angle: torch.Tensor, translation: torch.Tensor, invert: bool = False) -> torch.Tensor:
    """The 4x4 motion (B, 4, 4): x -> R x + t, or with `invert` its inverse x -> R^T (x - t)."""
    rotation = rotation_from_axis_angle(axis_angle)
    if invert:
        rotation = rotation.transpose(1, 2)
        translation = -(rotation @ translation.unsqueeze(-1)).squeeze(-1)
    motion = torch.eye(4, dtype=rotation.dtype, device=rotation.device).repeat(rotation.shape[0], 1, 1)
    motion[:, :3, :3] = rotation
    motion[:, :3, 3] = translation
    return motion


def disparity_to_depth(disparity: torch.Tensor, min_depth: float, max_depth: float) -> torch.Tensor:
    """Monodepth2's mapping of a sigmoid output in [0, 1] to depth in [min_depth, max_depth]."""
    scaled = 1 / max_depth + (1 / min_depth - 1 / max_depth) * disparity
    return 1 / scaled


def _pixel_grid(height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """Homogeneous pixel coordinates (3, H*W): x, y, 1."""
    y, x = torch.meshgrid(torch.arange(height, dtype=like.dtype, device=like.device),
                          torch.arange(width, dtype=like.dtype, device=like.device), indexing="ij")
    return torch.stack([x.reshape(-1), y.reshape(-1), torch.ones_like(x).reshape(-1)])


def reprojection_grid(depth: torch.Tensor, intrinsics: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
    """Where each pixel of the target (depth (B, 1, H, W)) lands in the other camera, as a `grid_sample`
    grid (B, H, W, 2) in [-1, 1] (align_corners=True)."""
    b, _, h, w = depth.shape
    with full_precision(depth):
        depth, intrinsics, motion = depth.float(), intrinsics.float(), motion.float()
        rays = torch.linalg.inv(intrinsics) @ _pixel_grid(h, w, depth)          # (B, 3, H*W)
        points = depth.view(b, 1, -1) * rays
        moved = motion[:, :3, :3] @ points + motion[:, :3, 3:]
        projected = intrinsics @ moved
        pixels = projected[:, :2] / (projected[:, 2:3] + 1e-7)
        scale = torch.tensor([w - 1, h - 1], dtype=pixels.dtype, device=pixels.device).view(1, 2, 1)
        return (2 * pixels / scale - 1).permute(0, 2, 1).view(b, h, w, 2)


def warp_frame(frame: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """`frame` sampled at `grid` (bilinear, border padding)."""
    return F.grid_sample(frame.to(grid.dtype), grid, mode="bilinear", padding_mode="border", align_corners=True)


def ssim_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-pixel (1 - SSIM) / 2 in [0, 1] over 3x3 windows (reflection padding), as Monodepth2."""
    x, y = F.pad(x, (1, 1, 1, 1), mode="reflect"), F.pad(y, (1, 1, 1, 1), mode="reflect")
    mu_x, mu_y = F.avg_pool2d(x, 3, 1), F.avg_pool2d(y, 3, 1)
    sigma_x = F.avg_pool2d(x * x, 3, 1) - mu_x ** 2
    sigma_y = F.avg_pool2d(y * y, 3, 1) - mu_y ** 2
    sigma_xy = F.avg_pool2d(x * y, 3, 1) - mu_x * mu_y
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    numerator = (2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)
    denominator = (mu_x ** 2 + mu_y ** 2 + c1) * (sigma_x + sigma_y + c2)
    return torch.clamp((1 - numerator / denominator) / 2, 0, 1)


def photometric_error(prediction: torch.Tensor, target: torch.Tensor, ssim_weight: float = 0.85) -> torch.Tensor:
    """Per-pixel error (B, 1, H, W): ssim_weight * (1 - SSIM) / 2 + (1 - ssim_weight) * L1, channel means."""
    l1 = (target - prediction).abs().mean(1, keepdim=True)
    if ssim_weight == 0:
        return l1
    return ssim_weight * ssim_distance(prediction, target).mean(1, keepdim=True) + (1 - ssim_weight) * l1


def smoothness_loss(disparity: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Edge-aware smoothness: disparity gradients, damped by exp(-|image gradient|)."""
    disparity_dx = (disparity[:, :, :, :-1] - disparity[:, :, :, 1:]).abs()
    disparity_dy = (disparity[:, :, :-1, :] - disparity[:, :, 1:, :]).abs()
    image_dx = (image[:, :, :, :-1] - image[:, :, :, 1:]).abs().mean(1, keepdim=True)
    image_dy = (image[:, :, :-1, :] - image[:, :, 1:, :]).abs().mean(1, keepdim=True)
    return (disparity_dx * torch.exp(-image_dx)).mean() + (disparity_dy * torch.exp(-image_dy)).mean()
