"""LPIPS (Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric", CVPR
2018), computed as the `lpips` package v0.1 does, without that package (it needs torchvision).

For two images x0, x1 in [-1, 1]:
  1. each is scaled channel-wise: (x - shift) / scale, with LPIPS's shift (-0.030, -0.088, -0.188) and
     scale (0.458, 0.448, 0.450) (about the ImageNet normalisation of a [-1, 1] image);
  2. a trunk gives five activations: AlexNet relu1..relu5 ("alex", the default) or VGG-16 relu1_2,
     relu2_2, relu3_3, relu4_3, relu5_3 ("vgg");
  3. each activation is unit-normalised over channels at every position, f / (||f|| + 1e-10);
  4. the squared difference of the two normalised activations goes through that layer's learned 1x1
     convolution (C -> 1, no bias: `lin{i}.model.1.weight`, shape (1, C, 1, 1)) and is averaged over space;
  5. the five layer values are summed. 0 for identical images; lower is more similar.

Frames (RGB uint8) are converted to [-1, 1] as the lpips package's `im2tensor` does: x / 127.5 - 1.

Weights are two local files: the linear layers (the lpips package's `weights/v0.1/alex.pth` or `vgg.pth`)
and the trunk (torchvision's `alexnet-owt-7be5be79.pth` or `vgg16-397923af.pth`; only `features.*` is
used). Both load strictly: a file of the other trunk or a truncated one raises CheckpointError.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import ClassVar, Iterator, Literal, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..checkpoints import load_into, load_state_dict
from ..errors import CheckpointError, InputError
from ..nn.backbones.alexnet import ALEXNET_LPIPS_TAPS, AlexNetFeatures
from ..nn.backbones.vgg import VGG16_LPIPS_TAPS, VGG16Features, load_features_only
from .base import EvalContext, FrameView, StreamingMetric
from .pixel import check_same_size

LPIPSNet = Literal["alex", "vgg"]
LPIPS_NETS = ("alex", "vgg")
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
LPIPS_EPS = 1e-10
# Channels of the five tapped activations of each trunk (the widths of lin0..lin4).
LPIPS_CHANNELS: dict[str, tuple[int, ...]] = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
LPIPS_TAPS: dict[str, tuple[int, ...]] = {"alex": ALEXNET_LPIPS_TAPS, "vgg": VGG16_LPIPS_TAPS}
TRUNK_FILES = {"alex": "alexnet (alexnet-owt-7be5be79.pth)", "vgg": "vgg16 (vgg16-397923af.pth)"}


class LinearHead(nn.Module):
    """One layer's learned weighting: a 1x1 convolution C -> 1 without bias. It sits at `model.1` because
    the official module has a Dropout (no parameters, inactive at evaluation) at `model.0`."""

    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(channels, 1, kernel_size=1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class LPIPSHeads(nn.Module):
    """lin0 ... lin4: its state dict has exactly the keys of the lpips package's weight files."""

    def __init__(self, channels: Sequence[int]):
        super().__init__()
        for index, width in enumerate(channels):
            self.add_module(f"lin{index}", LinearHead(width))

    def __iter__(self):
        return iter(self.children())


def unit_normalize(features: torch.Tensor, eps: float = LPIPS_EPS) -> torch.Tensor:
    """Each position's channel vector divided by its L2 norm (+ eps, so an all-zero vector stays zero)."""
    return features / (features.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


class LPIPS(nn.Module):
    """The LPIPS distance: `trunk` (AlexNetFeatures or VGG16Features) and `heads` (lin0..lin4).

    `forward(x0, x1)` takes (N, 3, H, W) images in [-1, 1] of the same size and returns (N,) distances."""

    def __init__(self, net: LPIPSNet = "alex"):
        super().__init__()
        if net not in LPIPS_NETS:
            raise ValueError(f"LPIPS net must be one of {', '.join(LPIPS_NETS)}, got {net!r}")
        self.net = net
        self.trunk = AlexNetFeatures() if net == "alex" else VGG16Features()
        self.heads = LPIPSHeads(LPIPS_CHANNELS[net])
        # Constants, not weights: kept out of the state dict, but moved with the module by .to(device).
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)

    def layer_distances(self, x0: torch.Tensor, x1: torch.Tensor) -> list[torch.Tensor]:
        """The five per-layer terms, each (N,)."""
        taps = LPIPS_TAPS[self.net]
        features0 = self.trunk((x0 - self.shift) / self.scale, taps)
        features1 = self.trunk((x1 - self.shift) / self.scale, taps)
        terms = []
        for head, f0, f1 in zip(self.heads, features0, features1):
            squared = (unit_normalize(f0) - unit_normalize(f1)) ** 2
            terms.append(head(squared).mean(dim=(1, 2, 3)))  # one output channel: mean over space
        return terms

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        return torch.stack(self.layer_distances(x0, x1)).sum(dim=0)


def load_lpips(net: LPIPSNet, lin_path: str | os.PathLike, backbone_path: str | os.PathLike, *,
               device: str | torch.device = "cpu") -> LPIPS:
    """LPIPS with its linear layers from `lin_path` (lpips `weights/v0.1/{net}.pth`) and its trunk from
    `backbone_path` (torchvision alexnet/vgg16 file), in eval mode on `device`, without gradients."""
    model = LPIPS(net)
    with _hint(f"is it torchvision's {TRUNK_FILES[net]} file?"):
        load_features_only(model.trunk, backbone_path)
    with _hint(f"is it the lpips package's weights/v0.1/{net}.pth?"):
        load_into(model.heads, load_state_dict(lin_path), strict=True, source=lin_path)
    model.requires_grad_(False)
    return model.eval().to(device)


@contextmanager
def _hint(question: str) -> Iterator[None]:
    """Add a likely cause to a CheckpointError: the usual mistake is the file of the other trunk."""
    try:
        yield
    except CheckpointError as err:
        raise CheckpointError(err.path, f"{err.problem} ({question})") from None


def image_to_lpips_input(image: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """(H, W, 3) RGB -> (1, 3, H, W) float32 in [-1, 1]: uint8 as x / 127.5 - 1 (the lpips package's
    im2tensor), float images (taken to be in [0, 1]) as 2x - 1."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        scaled = image.astype(np.float32) / 127.5 - 1.0
    elif np.issubdtype(image.dtype, np.floating):
        scaled = image.astype(np.float32) * 2.0 - 1.0
    else:
        raise TypeError(f"expected a uint8 or float image, got dtype {image.dtype}")
    if scaled.ndim != 3 or scaled.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {scaled.shape}")
    return torch.from_numpy(np.ascontiguousarray(scaled.transpose(2, 0, 1)))[None].to(device)


def lpips_distance(model: LPIPS, pred: np.ndarray, ref: np.ndarray) -> float:
    """LPIPS between two (H, W, 3) RGB images of the same size (uint8, or float in [0, 1])."""
    check_same_size(pred, ref, "lpips")
    device = model.shift.device
    with torch.inference_mode():
        return float(model(image_to_lpips_input(pred, device), image_to_lpips_input(ref, device))[0])


class LPIPSMetric(StreamingMetric):
    """LPIPS per frame against the reference; summary `lpips` = mean over frames (nan with no frames).

    Trunk: `context.options["lpips_net"]`, "alex" (default) or "vgg"; weights "lpips" (--lpips-weights)
    and "lpips_backbone" (--lpips-backbone), loaded when the metric is made, on `context.device`."""

    name = "lpips"
    needs: ClassVar[frozenset[str]] = frozenset({"ref"})
    weights: ClassVar[tuple[str, ...]] = ("lpips", "lpips_backbone")
    higher_is_better = {"lpips": False}

    def __init__(self, context: EvalContext):
        super().__init__(context)
        net = context.options.get("lpips_net", "alex")
        if net not in LPIPS_NETS:
            raise InputError(None, f"lpips_net must be one of {', '.join(LPIPS_NETS)}, got {net!r}")
        self.model = load_lpips(net, context.weight("lpips"), context.weight("lpips_backbone"),
                                device=context.device)
        self._sum = 0.0
        self._frames = 0

    def update(self, pred: FrameView, ref: FrameView | None) -> Mapping[str, float]:
        if ref is None:
            raise InputError(None, "lpips compares with a reference video, and none was given")
        check_same_size(pred.image, ref.image, f"lpips (frame {pred.index})")
        value = lpips_distance(self.model, pred.image, ref.image)
        self._sum += value
        self._frames += 1
        return {"lpips": value}

    def compute(self) -> dict[str, float]:
        return {"lpips": self._sum / self._frames if self._frames else float("nan")}
