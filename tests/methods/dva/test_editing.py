"""The classifier edit and the face blend, against the official formulas written out."""
from __future__ import annotations

import math

import torch

from faceanim.methods.dva.editing import IdentityStats, blend_face, classifier_edit


def _l2(x):
    return x / torch.norm(x, 2, 1, True)


def test_normalised_classifier_edit_matches_the_official_formula():
    g = torch.Generator().manual_seed(0)
    avg = _l2(torch.randn(1, 512, generator=g))
    weight = torch.randn(40, 512, generator=g)
    mean, std = torch.randn(512, generator=g) * 0.01, torch.rand(512, generator=g) * 0.05 + 0.01
    official = (avg - mean[None]) / std[None] + 0.5 * math.sqrt(512) * torch.nn.functional.normalize(weight[7][None], dim=1)
    official = _l2(official * std[None] + mean[None])
    ours = classifier_edit(avg, weight[7], 0.5, IdentityStats(mean, std))
    assert torch.allclose(ours, official, atol=1e-6)
    assert torch.allclose(ours.norm(dim=1), torch.ones(1))


def test_unnormalised_edit_and_zero_scale():
    g = torch.Generator().manual_seed(1)
    avg = _l2(torch.randn(2, 512, generator=g))
    row = torch.randn(512, generator=g)
    assert torch.allclose(classifier_edit(avg, row, -0.3), _l2(avg - 0.3 * math.sqrt(512) * row[None]), atol=1e-6)
    assert torch.allclose(classifier_edit(avg, row, 0.0), avg, atol=1e-6)


def test_blend_keeps_the_crop_outside_the_mask():
    decoded, crop = torch.rand(1, 3, 8, 8) * 2 - 1, torch.rand(1, 3, 8, 8) * 2 - 1
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:6, 2:6] = 1
    out = blend_face(decoded, crop, mask)
    assert torch.equal(out[..., 0, 0], (crop[..., 0, 0] + 1) / 2)
    assert torch.allclose(out[..., 3, 3], (decoded[..., 3, 3] + 1) / 2)
