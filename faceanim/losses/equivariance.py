"""The random warp of FOMM's equivariance constraints (also DaGAN's): affine plus thin-plate spline.

Keypoints detected on a warped frame, mapped back through the warp, should land on the keypoints of the
original frame; their Jacobians should compose with the warp's Jacobian to the original ones. This module
draws the warp, applies it to frames (`grid_sample`, reflection padding, as the official code) and to
coordinates, and differentiates it with autograd. Coordinates are (x, y) in [-1, 1].

The noise is drawn on the CPU with `torch.normal`, affine first and spline second, as the official
`Transform` does, so the same seed gives the same warp. Positions are computed in float32 (at least)
even under autocast: bfloat16 would round them by more than the warp's own size.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..nn.precision import full_precision
from ..warping.keypoints import make_coordinate_grid


class RandomWarp:
    """theta (B, 2, 3) = identity + N(0, sigma_affine); with `points_tps`, a P x P grid of spline
    control points in [-1, 1] with weights N(0, sigma_tps) (B, 1, P*P).

    The spline term of a point z is sum_k w_k * r_k^2 * log(r_k + 1e-6) with r_k = |z - c_k|_1 (the
    official code's L1 distance)."""

    def __init__(self, batch_size: int, sigma_affine: float, sigma_tps: float | None = None,
                 points_tps: int | None = None, *, generator: torch.Generator | None = None):
        affine_noise = torch.normal(0.0, torch.full((batch_size, 2, 3), float(sigma_affine)), generator=generator)
        self.theta = affine_noise + torch.eye(2, 3).view(1, 2, 3)
        self.batch_size = batch_size
        self.control_points = self.control_params = None
        if sigma_tps is not None and points_tps is not None:
            self.control_points = make_coordinate_grid((points_tps, points_tps)).view(1, -1, 2)
            self.control_params = torch.normal(0.0, torch.full((batch_size, 1, points_tps ** 2), float(sigma_tps)),
                                               generator=generator)

    def warp_coordinates(self, coordinates: torch.Tensor) -> torch.Tensor:
        """Warped coordinates (B, N, 2) of points (B or 1, N, 2)."""
        with full_precision(coordinates):
            return self._warp(coordinates.float() if coordinates.element_size() < 4 else coordinates)

    def _warp(self, coordinates: torch.Tensor) -> torch.Tensor:
        theta = self.theta.to(coordinates).unsqueeze(1)
        warped = (theta[..., :2] @ coordinates.unsqueeze(-1) + theta[..., 2:]).squeeze(-1)
        if self.control_points is None:
            return warped
        points = self.control_points.to(coordinates)
        distances = torch.abs(coordinates.view(coordinates.shape[0], -1, 1, 2) - points.view(1, 1, -1, 2)).sum(-1)
        spline = distances ** 2 * torch.log(distances + 1e-6) * self.control_params.to(coordinates)
        return warped + spline.sum(dim=2).view(self.batch_size, coordinates.shape[1], 1)

    def transform_frame(self, frame: torch.Tensor) -> torch.Tensor:
        """The frames (B, C, H, W) resampled at the warped pixel grid (bilinear, reflection padding)."""
        height, width = frame.shape[2:]
        grid = make_coordinate_grid((height, width), frame.dtype, frame.device).view(1, height * width, 2)
        grid = self.warp_coordinates(grid).view(self.batch_size, height, width, 2)
        with full_precision(frame):
            return F.grid_sample(frame.to(grid.dtype), grid, mode="bilinear", padding_mode="reflection",
                                 align_corners=False)

    def jacobian(self, coordinates: torch.Tensor) -> torch.Tensor:
        """d warp / d coordinates at each point: (B, N, 2, 2), row i the gradient of output coordinate i.

        Differentiable (create_graph) with respect to `coordinates` when they require grad, as the loss
        needs; plain tensors are differentiated as constants."""
        with torch.enable_grad(), full_precision(coordinates):
            if not coordinates.requires_grad:
                coordinates = coordinates.detach().requires_grad_(True)
            warped = self.warp_coordinates(coordinates)
            grad_x, = torch.autograd.grad(warped[..., 0].sum(), coordinates, create_graph=True)
            grad_y, = torch.autograd.grad(warped[..., 1].sum(), coordinates, create_graph=True)
        return torch.stack([grad_x, grad_y], dim=-2)
