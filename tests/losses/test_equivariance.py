"""The random affine + TPS warp: the official drawing order, identity at zero noise, the Jacobian."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from faceanim.losses import RandomWarp
from faceanim.warping.keypoints import make_coordinate_grid


def test_same_seed_same_warp_as_the_official_drawing_order():
    torch.manual_seed(3)
    warp = RandomWarp(4, sigma_affine=0.05, sigma_tps=0.005, points_tps=5)
    torch.manual_seed(3)
    theta = torch.normal(mean=0, std=0.05 * torch.ones([4, 2, 3])) + torch.eye(2, 3).view(1, 2, 3)
    params = torch.normal(mean=0, std=0.005 * torch.ones([4, 1, 25]))
    assert torch.equal(warp.theta, theta) and torch.equal(warp.control_params, params)


def test_zero_noise_is_the_identity():
    warp = RandomWarp(2, sigma_affine=0.0, sigma_tps=0.0, points_tps=5)
    points = torch.rand(2, 7, 2) * 2 - 1
    assert torch.equal(warp.warp_coordinates(points), points)
    assert torch.allclose(warp.jacobian(points), torch.eye(2).expand(2, 7, 2, 2))
    frame = torch.rand(2, 3, 16, 16)
    # the official frame transform samples the [-1, 1] corner-to-corner grid with align_corners=False
    grid = make_coordinate_grid((16, 16)).expand(2, 16, 16, 2)
    expected = F.grid_sample(frame, grid, padding_mode="reflection", align_corners=False)
    assert torch.allclose(warp.transform_frame(frame), expected, atol=1e-6)


def test_spline_term_matches_its_formula():
    torch.manual_seed(0)
    warp = RandomWarp(1, sigma_affine=0.05, sigma_tps=0.01, points_tps=3)
    point = torch.tensor([[[0.3, -0.2]]], dtype=torch.float64)
    theta = warp.theta[0].double()
    expected = theta[:, :2] @ point[0, 0] + theta[:, 2]
    for k, control in enumerate(make_coordinate_grid((3, 3), torch.float64).view(-1, 2)):
        r = (point[0, 0] - control).abs().sum()
        expected = expected + warp.control_params[0, 0, k].double() * r ** 2 * torch.log(r + 1e-6)
    assert torch.allclose(warp.warp_coordinates(point)[0, 0], expected, atol=1e-7)


def test_jacobian_matches_finite_differences():
    torch.manual_seed(1)
    warp = RandomWarp(2, sigma_affine=0.05, sigma_tps=0.005, points_tps=5)
    points = (torch.rand(2, 6, 2, dtype=torch.float64) * 1.6 - 0.8)
    jacobian = warp.jacobian(points)
    eps = 1e-6
    for axis in range(2):
        step = torch.zeros_like(points)
        step[..., axis] = eps
        derivative = (warp.warp_coordinates(points + step) - warp.warp_coordinates(points - step)) / (2 * eps)
        assert torch.allclose(jacobian[..., :, axis], derivative, atol=1e-6)
    assert not torch.allclose(jacobian, torch.eye(2, dtype=torch.float64))


def test_jacobian_is_differentiable_for_the_loss():
    torch.manual_seed(2)
    warp = RandomWarp(1, sigma_affine=0.05, sigma_tps=0.005, points_tps=5)
    source = torch.rand(1, 4, 2, requires_grad=True)
    points = source * 2 - 1  # not a leaf, as keypoints from a detector
    warp.jacobian(points).sum().backward()
    assert source.grad is not None and source.grad.abs().sum() > 0


def test_affine_only_when_no_spline_is_asked():
    torch.manual_seed(4)
    warp = RandomWarp(3, sigma_affine=0.1)
    points = torch.rand(3, 5, 2)
    expected = points @ warp.theta[:, :, :2].transpose(1, 2) + warp.theta[:, None, :, 2]
    assert torch.allclose(warp.warp_coordinates(points), expected, atol=1e-6)
    assert torch.allclose(warp.jacobian(points), warp.theta[:, None, :, :2].expand(3, 5, 2, 2), atol=1e-6)


def test_positions_stay_float32_under_autocast():
    torch.manual_seed(5)
    warp = RandomWarp(2, sigma_affine=0.05, sigma_tps=0.005, points_tps=5)
    points, frame = torch.rand(2, 10, 2) * 2 - 1, torch.rand(2, 3, 16, 16)
    expected, expected_frame, expected_jacobian = (warp.warp_coordinates(points), warp.transform_frame(frame),
                                                   warp.jacobian(points))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, got_frame, got_jacobian = warp.warp_coordinates(points), warp.transform_frame(frame), warp.jacobian(points)
        from_half = warp.warp_coordinates(points.bfloat16())
    assert got.dtype == got_frame.dtype == from_half.dtype == torch.float32
    assert torch.equal(got, expected) and torch.equal(got_frame, expected_frame)
    assert torch.equal(got_jacobian, expected_jacobian)
