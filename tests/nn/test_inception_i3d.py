"""The FID Inception-v3 and the FVD I3D: official parameter names and shapes, strict loading of files in
the official layout, TensorFlow's pooling quirks and padding, forward shapes."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from faceanim.errors import CheckpointError
from faceanim.nn.backbones.i3d import InceptionI3d, i3d_preprocess, load_i3d, same_padding
from faceanim.nn.backbones.inception import (FIDInceptionV3, InceptionA, InceptionE, _tf_average_pool,
                                             fid_preprocess, load_fid_inception)
from tests.random_weights import he_state

# --- the expected layouts, written from pytorch-fid (torchvision's Inception3 with aux_logits=False,
# --- num_classes=1008, FID blocks) and from piergiaj/pytorch-i3d's InceptionI3d

INCEPTION_STEM = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3")
INCEPTION_BRANCHES = {
    "A": ("branch1x1", "branch5x5_1", "branch5x5_2", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3",
          "branch_pool"),
    "B": ("branch3x3", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"),
    "C": ("branch1x1", "branch7x7_1", "branch7x7_2", "branch7x7_3", "branch7x7dbl_1", "branch7x7dbl_2",
          "branch7x7dbl_3", "branch7x7dbl_4", "branch7x7dbl_5", "branch_pool"),
    "D": ("branch3x3_1", "branch3x3_2", "branch7x7x3_1", "branch7x7x3_2", "branch7x7x3_3", "branch7x7x3_4"),
    "E": ("branch1x1", "branch3x3_1", "branch3x3_2a", "branch3x3_2b", "branch3x3dbl_1", "branch3x3dbl_2",
          "branch3x3dbl_3a", "branch3x3dbl_3b", "branch_pool"),
}
INCEPTION_MIXED = {"Mixed_5b": "A", "Mixed_5c": "A", "Mixed_5d": "A", "Mixed_6a": "B", "Mixed_6b": "C",
                   "Mixed_6c": "C", "Mixed_6d": "C", "Mixed_6e": "C", "Mixed_7a": "D", "Mixed_7b": "E",
                   "Mixed_7c": "E"}
CONV_BN = ("conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var")


def inception_2015_keys() -> set[str]:
    """Every tensor of pt_inception-2015-12-05-6726825d.pth (without BatchNorm step counters)."""
    layers = list(INCEPTION_STEM) + [f"{block}.{branch}" for block, kind in INCEPTION_MIXED.items()
                                     for branch in INCEPTION_BRANCHES[kind]]
    return {f"{layer}.{suffix}" for layer in layers for suffix in CONV_BN} | {"fc.weight", "fc.bias"}


I3D_MIXED = {  # name: (input channels, b0, b1a, b1b, b2a, b2b, b3b) as in the paper's Inception-v1 table
    "Mixed_3b": (192, 64, 96, 128, 16, 32, 32), "Mixed_3c": (256, 128, 128, 192, 32, 96, 64),
    "Mixed_4b": (480, 192, 96, 208, 16, 48, 64), "Mixed_4c": (512, 160, 112, 224, 24, 64, 64),
    "Mixed_4d": (512, 128, 128, 256, 24, 64, 64), "Mixed_4e": (512, 112, 144, 288, 32, 64, 64),
    "Mixed_4f": (528, 256, 160, 320, 32, 128, 128), "Mixed_5b": (832, 256, 160, 320, 32, 128, 128),
    "Mixed_5c": (832, 384, 192, 384, 48, 128, 128)}
I3D_UNITS = ("b0", "b1a", "b1b", "b2a", "b2b", "b3b")
UNIT3D_BN = ("conv3d.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var")


def i3d_keys() -> set[str]:
    units = ["Conv3d_1a_7x7", "Conv3d_2b_1x1", "Conv3d_2c_3x3"] + [f"{m}.{u}" for m in I3D_MIXED for u in I3D_UNITS]
    return {f"{unit}.{suffix}" for unit in units for suffix in UNIT3D_BN} | {"logits.conv3d.weight",
                                                                            "logits.conv3d.bias"}


def i3d_parameter_count() -> int:
    """Parameters from the channel table alone: conv weights (no bias) + BN scale and shift."""
    def unit(cin: int, cout: int, k: int) -> int:
        return cin * cout * k ** 3 + 2 * cout

    total = unit(3, 64, 7) + unit(64, 64, 1) + unit(64, 192, 3)
    for cin, b0, b1a, b1b, b2a, b2b, b3b in I3D_MIXED.values():
        total += unit(cin, b0, 1) + unit(cin, b1a, 1) + unit(b1a, b1b, 3) + unit(cin, b2a, 1) + unit(b2a, b2b, 3)
        total += unit(cin, b3b, 1)
    return total + 1024 * 400 + 400


def without_counters(state: dict) -> set[str]:
    return {name for name in state if not name.endswith("num_batches_tracked")}


# --- FID Inception --------------------------------------------------------------------------------------

def test_inception_keys_match_the_2015_file():
    model = FIDInceptionV3()
    state = model.state_dict()
    expected = inception_2015_keys()
    assert len(expected) == 94 * 5 + 2
    assert without_counters(state) == expected
    assert len(state) == 94 * 6 + 2     # plus one num_batches_tracked per batch norm
    shapes = {"Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3), "Conv2d_4a_3x3.conv.weight": (192, 80, 3, 3),
              "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1), "Mixed_5d.branch5x5_2.conv.weight": (64, 48, 5, 5),
              "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3), "Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7),
              "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7), "Mixed_7a.branch3x3_2.conv.weight": (320, 192, 3, 3),
              "Mixed_7b.branch3x3dbl_1.conv.weight": (448, 1280, 1, 1),
              "Mixed_7c.branch3x3_2b.conv.weight": (384, 384, 3, 1), "Mixed_7c.branch_pool.bn.running_var": (192,),
              "fc.weight": (1008, 2048), "fc.bias": (1008,)}
    for name, shape in shapes.items():
        assert tuple(state[name].shape) == shape, name
    # torchvision's published inception_v3 count (27,161,264: aux head, 1000 classes) minus its aux head
    # (98,560 + 2,459,136 + 769,000) plus 8 more classes (8 x 2048 + 8)
    assert sum(p.numel() for p in model.parameters()) == 27_161_264 - 3_326_696 + 16_392


def test_inception_loads_a_file_strictly(tmp_path):
    state = he_state(FIDInceptionV3())
    torch.save(state, tmp_path / "pt_inception-2015-12-05-6726825d.pth")
    model = load_fid_inception(tmp_path / "pt_inception-2015-12-05-6726825d.pth")
    assert not model.training
    assert torch.equal(model.Mixed_7c.branch_pool.conv.weight, state["Mixed_7c.branch_pool.conv.weight"])
    torch.save({k: v for k, v in state.items() if k != "fc.bias"}, tmp_path / "truncated.pth")
    with pytest.raises(CheckpointError, match="fc.bias"):
        load_fid_inception(tmp_path / "truncated.pth")
    torch.save({**state, "AuxLogits.fc.weight": torch.zeros(1008, 768)}, tmp_path / "torchvision_like.pth")
    with pytest.raises(CheckpointError, match="AuxLogits"):
        load_fid_inception(tmp_path / "torchvision_like.pth")


def test_inception_forward_shapes():
    model = FIDInceptionV3().eval()
    with torch.no_grad():
        pool3 = model(torch.randn(2, 3, 75, 80))
        assert pool3.shape == (2, 2048)
        assert model.classify(pool3).shape == (2, 1008)
        with pytest.raises(ValueError, match="75"):
            model(torch.randn(1, 3, 74, 200))


def test_tf_average_pooling_ignores_padding():
    ones = torch.ones(1, 2, 5, 5)
    assert torch.equal(_tf_average_pool(ones), ones)   # counting the zero padding would give 4/9 at corners
    x = torch.rand(1, 1, 4, 4)
    corner = x[0, 0, :2, :2].mean()
    assert torch.isclose(_tf_average_pool(x)[0, 0, 0, 0], corner)


def _branch(layer, x: torch.Tensor) -> torch.Tensor:
    return F.relu(F.batch_norm(layer.conv(x), layer.bn.running_mean, layer.bn.running_var, layer.bn.weight,
                               layer.bn.bias, eps=1e-3))


@pytest.mark.parametrize("pool", ["avg", "max"])
def test_inception_e_pooling_branch(pool):
    block = InceptionE(16, pool=pool)
    block.load_state_dict(he_state(block, seed=3), strict=False)
    block.eval()
    x = torch.randn(1, 16, 6, 6)
    if pool == "max":   # Mixed_7c of the 2015 graph
        pooled = F.max_pool2d(x, 3, stride=1, padding=1)
    else:
        pooled = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    with torch.no_grad():
        out = block(x)
        assert out.shape == (1, 320 + 768 + 768 + 192, 6, 6)
        torch.testing.assert_close(out[:, -192:], _branch(block.branch_pool, pooled))


def test_inception_a_branch_order():
    block = InceptionA(8, pool_features=5).eval()
    block.load_state_dict(he_state(block, seed=4), strict=False)
    x = torch.randn(1, 8, 7, 7)
    with torch.no_grad():
        out = block(x)
        assert out.shape == (1, 64 + 64 + 96 + 5, 7, 7)
        torch.testing.assert_close(out[:, :64], _branch(block.branch1x1, x))
        pooled = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
        torch.testing.assert_close(out[:, -5:], _branch(block.branch_pool, pooled))


def test_fid_preprocess_is_half_pixel_bilinear_to_minus_one_one():
    row = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]]).repeat(1, 3, 1, 1)
    out = fid_preprocess(row, size=4)
    # align_corners=False: output pixel centres at (i + 0.5) / 2 - 0.5 input pixels, clamped at the edges
    torch.testing.assert_close(out[0, 0, 0], torch.tensor([-1.0, -0.5, 0.5, 1.0]))
    assert fid_preprocess(torch.rand(1, 3, 64, 48)).shape == (1, 3, 299, 299)
    same = torch.rand(1, 3, 299, 299)
    torch.testing.assert_close(fid_preprocess(same), 2 * same - 1)


# --- I3D ------------------------------------------------------------------------------------------------

def test_i3d_keys_match_pytorch_i3d():
    model = InceptionI3d()
    state = model.state_dict()
    assert without_counters(state) == i3d_keys()
    assert len(i3d_keys()) == 57 * 5 + 2
    shapes = {"Conv3d_1a_7x7.conv3d.weight": (64, 3, 7, 7, 7), "Conv3d_1a_7x7.bn.running_mean": (64,),
              "Conv3d_2c_3x3.conv3d.weight": (192, 64, 3, 3, 3), "Mixed_3b.b0.conv3d.weight": (64, 192, 1, 1, 1),
              "Mixed_3b.b1b.conv3d.weight": (128, 96, 3, 3, 3), "Mixed_4f.b3b.conv3d.weight": (128, 528, 1, 1, 1),
              "Mixed_5c.b2b.conv3d.weight": (128, 48, 3, 3, 3), "logits.conv3d.weight": (400, 1024, 1, 1, 1),
              "logits.conv3d.bias": (400,)}
    for name, shape in shapes.items():
        assert tuple(state[name].shape) == shape, name
    assert sum(p.numel() for p in model.parameters()) == i3d_parameter_count() == 12_697_264


def test_i3d_loads_a_file_strictly(tmp_path):
    state = he_state(InceptionI3d())
    torch.save(state, tmp_path / "rgb_imagenet.pt")
    model = load_i3d(tmp_path / "rgb_imagenet.pt")
    assert torch.equal(model.logits.conv3d.bias, state["logits.conv3d.bias"])
    torch.save({k: v for k, v in state.items() if not k.startswith("logits.")}, tmp_path / "no_logits.pt")
    with pytest.raises(CheckpointError, match="logits"):
        load_i3d(tmp_path / "no_logits.pt")
    charades = {**state, "logits.conv3d.weight": torch.zeros(157, 1024, 1, 1, 1), "logits.conv3d.bias": torch.zeros(157)}
    torch.save(charades, tmp_path / "rgb_charades.pt")
    with pytest.raises(CheckpointError, match="shape"):
        load_i3d(tmp_path / "rgb_charades.pt")


@pytest.mark.parametrize("size,kernel,stride", list(itertools.product((7, 8, 15, 16, 224, 225), (1, 2, 3, 7), (1, 2))))
def test_same_padding_is_tensorflow_same(size, kernel, stride):
    # TensorFlow 'SAME': ceil(size / stride) outputs; padding total = max((out - 1) * stride + k - size, 0),
    # the smaller half in front
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    pads = same_padding((size, size, size), (kernel,) * 3, (stride,) * 3)
    assert pads == (total // 2, total - total // 2) * 3
    assert (size + total - kernel) // stride + 1 == out


def test_i3d_forward_shapes():
    model = InceptionI3d().eval()
    model.load_state_dict(he_state(model, seed=5), strict=False)
    clip = torch.rand(1, 3, 9, 224, 224) * 2 - 1       # the shortest clip the 2x7x7 pooling accepts
    with torch.no_grad():
        pooled = model.pooled(clip)
        logits = model(clip)
    assert pooled.shape == (1, 1024, 1) and logits.shape == (1, 400)
    torch.testing.assert_close(logits, model.logits(pooled[..., None, None])[:, :, 0, 0, 0])
    with pytest.raises(ValueError, match="224"):
        model(torch.zeros(1, 3, 16, 112, 112))
    with pytest.raises(ValueError, match="T >= 9"):
        model(torch.zeros(1, 3, 8, 224, 224))


def test_i3d_preprocess():
    frames = torch.rand(16, 3, 64, 80)
    clip = i3d_preprocess(frames)
    assert clip.shape == (3, 16, 224, 224)
    assert clip.min() >= -1 and clip.max() <= 1
    exact = torch.rand(4, 3, 224, 224)
    torch.testing.assert_close(i3d_preprocess(exact), (2 * exact - 1).transpose(0, 1))
