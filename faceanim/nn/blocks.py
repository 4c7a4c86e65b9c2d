"""Convolution blocks of the FOMM family (FOMM, DaGAN, face-vid2vid, FADM's coarse stage), for images
and for feature volumes alike.

One family, parameterised by `dims`: 2 for images (B, C, H, W), 3 for volumes (B, C, D, H, W). `dims`
picks the Conv / BatchNorm / AvgPool classes, and a 3-D block resamples H and W only, never the depth axis
(face-vid2vid's volumes keep their depth). The official classes are named variants with `dims` fixed
(SameBlock2d, DownBlock2d, UpBlock2d, ResBlock2d, SameBlock3d, DownBlock3d, UpBlock3d, ResBlock3d,
Hourglass3d), so call sites read as the official code does.

Parameter names follow the official code (`conv`, `norm`, `norm1`, `encoder.down_blocks.N`,
`decoder.up_blocks.N`, ...) so that official checkpoints load without renaming. The official code uses
synchronised BatchNorm; `torch.nn.BatchNorm{2,3}d` has the same state-dict keys and numerics on one device
(the trainer converts it to SyncBatchNorm under DDP).

Every resampling call passes the argument values that the official calls get by default, so the
numerics are the same and PyTorch prints no deprecation warnings.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

Size = int | tuple[int, ...]

CONV = {2: nn.Conv2d, 3: nn.Conv3d}
BATCH_NORM = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
AVG_POOL = {2: nn.AvgPool2d, 3: nn.AvgPool3d}


def check_dims(dims: int) -> int:
    if dims not in CONV:
        raise ValueError(f"dims must be 2 (images) or 3 (feature volumes), got {dims!r}")
    return dims


def height_width_factor(dims: int, factor: int = 2) -> tuple[int, ...]:
    """A resampling factor per spatial axis that scales H and W by `factor` and leaves the depth axis of a
    volume alone: (f, f) for dims 2, (1, f, f) for dims 3."""
    return (1,) * (check_dims(dims) - 2) + (factor, factor)


class SameBlock(nn.Module):
    """conv -> BatchNorm -> ReLU, resolution kept."""

    def __init__(self, in_features: int, out_features: int, groups: int = 1, kernel_size: Size = 3,
                 padding: Size = 1, *, dims: int = 2):
        super().__init__()
        self.conv = CONV[check_dims(dims)](in_features, out_features, kernel_size=kernel_size, padding=padding,
                                           groups=groups)
        self.norm = BATCH_NORM[dims](out_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x)))


class DownBlock(SameBlock):
    """SameBlock -> 2x2 average pooling over H and W: half height and width (same depth)."""

    def __init__(self, in_features: int, out_features: int, kernel_size: Size = 3, padding: Size = 1,
                 groups: int = 1, *, dims: int = 2):
        super().__init__(in_features, out_features, groups=groups, kernel_size=kernel_size, padding=padding,
                         dims=dims)
        self.pool = AVG_POOL[dims](kernel_size=height_width_factor(dims))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(super().forward(x))


class UpBlock(SameBlock):
    """Nearest x2 upsampling of H and W -> SameBlock: double height and width (same depth)."""

    def __init__(self, in_features: int, out_features: int, kernel_size: Size = 3, padding: Size = 1,
                 groups: int = 1, *, dims: int = 2):
        super().__init__(in_features, out_features, groups=groups, kernel_size=kernel_size, padding=padding,
                         dims=dims)
        self.scale_factor = height_width_factor(dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.interpolate(x, scale_factor=self.scale_factor, mode="nearest"))


class ResBlock(nn.Module):
    """Pre-activation residual block: x + conv2(relu(norm2(conv1(relu(norm1(x))))))."""

    def __init__(self, in_features: int, kernel_size: Size = 3, padding: Size = 1, *, dims: int = 2):
        super().__init__()
        conv, norm = CONV[check_dims(dims)], BATCH_NORM[dims]
        self.conv1 = conv(in_features, in_features, kernel_size=kernel_size, padding=padding)
        self.conv2 = conv(in_features, in_features, kernel_size=kernel_size, padding=padding)
        self.norm1 = norm(in_features, affine=True)
        self.norm2 = norm(in_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


def hourglass_width(block_expansion: int, level: int, max_features: int) -> int:
    """Channels after `level` halvings of the hourglass: block_expansion * 2**level, capped."""
    return min(max_features, block_expansion * 2 ** level)


class HourglassEncoder(nn.Module):
    """`num_blocks` DownBlock; returns the input and every block's output (the skips)."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256, *,
                 dims: int = 2):
        super().__init__()
        self.down_blocks = nn.ModuleList(
            DownBlock(in_features if i == 0 else hourglass_width(block_expansion, i, max_features),
                      hourglass_width(block_expansion, i + 1, max_features), kernel_size=3, padding=1, dims=dims)
            for i in range(num_blocks))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class HourglassDecoder(nn.Module):
    """`num_blocks` UpBlock, each followed by concatenation with the matching encoder skip.

    refine: end with conv -> BatchNorm -> ReLU over the result (`conv`, `norm`), as face-vid2vid's 3-D
    decoder does (FOMM's 2-D one does not)."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256, *,
                 dims: int = 2, refine: bool = False):
        super().__init__()
        blocks = []
        for i in reversed(range(num_blocks)):
            skip_factor = 1 if i == num_blocks - 1 else 2  # every block but the first also gets a skip
            blocks.append(UpBlock(skip_factor * hourglass_width(block_expansion, i + 1, max_features),
                                  hourglass_width(block_expansion, i, max_features), kernel_size=3, padding=1,
                                  dims=dims))
        self.up_blocks = nn.ModuleList(blocks)
        self.out_filters = block_expansion + in_features
        self.refine = refine
        if refine:
            self.conv = CONV[dims](self.out_filters, self.out_filters, kernel_size=3, padding=1)
            self.norm = BATCH_NORM[dims](self.out_filters, affine=True)

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor:
        out = skips[-1]
        for block, skip in zip(self.up_blocks, reversed(skips[:-1])):
            out = torch.cat([block(out), skip], dim=1)
        return F.relu(self.norm(self.conv(out))) if self.refine else out


class Hourglass(nn.Module):
    """U-Net without a bottleneck; output has `out_filters` = block_expansion + in_features channels at
    the input resolution (the input itself is the last skip). `dims` and `refine` as in the decoder."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256, *,
                 dims: int = 2, refine: bool = False):
        super().__init__()
        self.encoder = HourglassEncoder(block_expansion, in_features, num_blocks, max_features, dims=dims)
        self.decoder = HourglassDecoder(block_expansion, in_features, num_blocks, max_features, dims=dims,
                                        refine=refine)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def _named_variant(name: str, family: type[nn.Module], **fixed) -> type[nn.Module]:
    """`family` with the keyword arguments `fixed` (e.g. dims=3), under the official class name `name`."""
    settings = ", ".join(f"{key}={value}" for key, value in fixed.items())
    return type(name, (family,), {"__init__": functools.partialmethod(family.__init__, **fixed),
                                  "__module__": __name__, "__qualname__": name,
                                  "__doc__": f"`{family.__name__}` with {settings}. {family.__doc__}"})


SameBlock2d = _named_variant("SameBlock2d", SameBlock, dims=2)
DownBlock2d = _named_variant("DownBlock2d", DownBlock, dims=2)
UpBlock2d = _named_variant("UpBlock2d", UpBlock, dims=2)
ResBlock2d = _named_variant("ResBlock2d", ResBlock, dims=2)
SameBlock3d = _named_variant("SameBlock3d", SameBlock, dims=3)
DownBlock3d = _named_variant("DownBlock3d", DownBlock, dims=3)
UpBlock3d = _named_variant("UpBlock3d", UpBlock, dims=3)
ResBlock3d = _named_variant("ResBlock3d", ResBlock, dims=3)
Hourglass3d = _named_variant("Hourglass3d", Hourglass, dims=3, refine=True)


class AntiAliasInterpolation2d(nn.Module):
    """Gaussian blur then subsampling by 1/scale (band-limited downsampling).

    The kernel is a buffer named `weight`: it is part of the official state dicts, and a checkpoint's
    kernel replaces the one computed here."""

    def __init__(self, channels: int, scale: float):
        super().__init__()
        sigma = (1 / scale - 1) / 2
        kernel_size = 2 * round(sigma * 4) + 1
        self.ka = kernel_size // 2
        self.kb = self.ka - 1 if kernel_size % 2 == 0 else self.ka
        self.register_buffer("weight", _gaussian_kernel(kernel_size, sigma).repeat(channels, 1, 1, 1))
        self.groups = channels
        self.scale = scale
        self.int_inv_scale = int(1 / scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale == 1.0:
            return x
        out = F.pad(x, (self.ka, self.kb, self.ka, self.kb))
        out = F.conv2d(out, weight=self.weight, groups=self.groups)
        return out[:, :, ::self.int_inv_scale, ::self.int_inv_scale]


def _gaussian_kernel(size: int, sigma: float) -> torch.Tensor:
    """(1, 1, size, size) normalised 2-D Gaussian, the product of two 1-D ones."""
    if size == 1:  # scale 1: no blur (and sigma 0 would divide by zero)
        return torch.ones(1, 1, 1, 1)
    rows, cols = torch.meshgrid(torch.arange(size, dtype=torch.float32),
                                torch.arange(size, dtype=torch.float32), indexing="ij")
    centre = (size - 1) / 2
    kernel = torch.exp(-(rows - centre) ** 2 / (2 * sigma ** 2)) * torch.exp(-(cols - centre) ** 2 / (2 * sigma ** 2))
    return (kernel / kernel.sum()).view(1, 1, size, size)
