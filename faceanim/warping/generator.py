"""FOMM's occlusion-aware generator (Siarohin et al. 2019, Sec. 3.3).

The source image is encoded (SameBlock2d + DownBlock2d), its features are warped by the dense motion
flow and multiplied by the occlusion map, then decoded (ResBlock2d bottleneck, UpBlock2d, 7x7 conv,
sigmoid). The builders and `apply_dense_motion` here are shared with DaGAN's generators, which keep
the same parameter names.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.blocks import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d, hourglass_width
from .dense_motion import DenseMotion, DenseMotionNetwork, warp
from .keypoints import Keypoints


def resize_like(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Bilinear resize of (B, C, h, w) to `size` (align_corners=False, the default the official gets)."""
    if tuple(x.shape[2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def deform_input(image: torch.Tensor, deformation: torch.Tensor) -> torch.Tensor:
    """Warp (B, C, H, W) by a (B, h, w, 2) flow, resizing the flow to the image first if needed."""
    flow = resize_like(deformation.permute(0, 3, 1, 2), image.shape[2:]).permute(0, 2, 3, 1)
    return warp(image, flow)


def match_batch(source: torch.Tensor, kp_source: Keypoints, kp_driving: Keypoints,
                *extra: torch.Tensor) -> tuple:
    """Repeat a single source (image, keypoints and any `extra` per-source tensors) over a batch of
    driving keypoints: returns (source, kp_source, *extra)."""
    batch = kp_driving.value.shape[0]

    def expand(t: torch.Tensor) -> torch.Tensor:
        return t.expand(batch, *t.shape[1:]) if t.shape[0] == 1 and batch > 1 else t

    kp = kp_source.expand(batch) if kp_source.value.shape[0] == 1 and batch > 1 else kp_source
    return (expand(source), kp, *(expand(t) for t in extra))


def make_down_blocks(block_expansion: int, max_features: int, count: int) -> nn.ModuleList:
    """The encoder's DownBlock2d chain after a `block_expansion`-wide first block."""
    return nn.ModuleList(
        DownBlock2d(hourglass_width(block_expansion, i, max_features),
                    hourglass_width(block_expansion, i + 1, max_features), kernel_size=(3, 3), padding=(1, 1))
        for i in range(count))


def make_up_blocks(block_expansion: int, max_features: int, count: int) -> nn.ModuleList:
    """The decoder's UpBlock2d chain, mirroring `make_down_blocks`."""
    return nn.ModuleList(
        UpBlock2d(hourglass_width(block_expansion, count - i, max_features),
                  hourglass_width(block_expansion, count - i - 1, max_features), kernel_size=(3, 3), padding=(1, 1))
        for i in range(count))


def make_bottleneck(width: int, count: int) -> nn.Sequential:
    """`count` ResBlock2d named r0, r1, ... (the official names)."""
    bottleneck = nn.Sequential()
    for i in range(count):
        bottleneck.add_module(f"r{i}", ResBlock2d(width, kernel_size=(3, 3), padding=(1, 1)))
    return bottleneck


def run_chain(x: torch.Tensor, first: nn.Module, blocks: nn.ModuleList) -> torch.Tensor:
    x = first(x)
    for block in blocks:
        x = block(x)
    return x


def apply_dense_motion(network: DenseMotionNetwork, features: torch.Tensor, source_image: torch.Tensor,
                       kp_driving: Keypoints, kp_source: Keypoints, output: dict,
                       motion_source: torch.Tensor | None = None) -> torch.Tensor:
    """Warp encoded source features by the dense motion and mask them by the occlusion map.

    `motion_source`: the source already at the flow's resolution (`network.downsample`), if kept.
    Records `mask`, `sparse_deformed`, `deformation`, `occlusion_map` and `deformed` (the source image
    warped by the flow, before occlusion) in `output`."""
    if motion_source is None:
        motion_source = network.downsample(source_image)
    motion: DenseMotion = network.motion_from(motion_source, kp_driving, kp_source)
    output.update(mask=motion.mask, sparse_deformed=motion.sparse_deformed, deformation=motion.deformation)
    features = occlude(deform_input(features, motion.deformation), motion, output)
    output["deformed"] = deform_input(source_image, motion.deformation)
    return features


def occlude(features: torch.Tensor, motion: DenseMotion, output: dict) -> torch.Tensor:
    """2-D features (B, C, h, w) multiplied by the motion's occlusion map, resized to them, which is recorded
    in `output`; the features as they are when the motion has no occlusion map."""
    if motion.occlusion_map is None:
        return features
    output["occlusion_map"] = motion.occlusion_map
    return features * resize_like(motion.occlusion_map, features.shape[2:])


class OcclusionAwareGenerator(nn.Module):
    """(source image, driving keypoints, source keypoints) -> dict with `prediction` in [0, 1] and its
    pre-sigmoid `prediction_logits`, plus what `apply_dense_motion` records."""

    def __init__(self, num_channels: int, num_kp: int, block_expansion: int, max_features: int,
                 num_down_blocks: int, num_bottleneck_blocks: int, estimate_occlusion_map: bool = False,
                 dense_motion_params: dict | None = None, estimate_jacobian: bool = False):
        super().__init__()
        del estimate_jacobian  # in the official signature; whether keypoints carry Jacobians decides
        self.dense_motion_network = None
        if dense_motion_params is not None:
            self.dense_motion_network = DenseMotionNetwork(num_kp=num_kp, num_channels=num_channels,
                                                           estimate_occlusion_map=estimate_occlusion_map,
                                                           **dense_motion_params)
        self.first = SameBlock2d(num_channels, block_expansion, kernel_size=(7, 7), padding=(3, 3))
        self.down_blocks = make_down_blocks(block_expansion, max_features, num_down_blocks)
        self.up_blocks = make_up_blocks(block_expansion, max_features, num_down_blocks)
        self.bottleneck = make_bottleneck(hourglass_width(block_expansion, num_down_blocks, max_features),
                                          num_bottleneck_blocks)
        self.final = nn.Conv2d(block_expansion, num_channels, kernel_size=(7, 7), padding=(3, 3))
        self.estimate_occlusion_map = estimate_occlusion_map
        self.num_channels = num_channels

    def decode(self, features: torch.Tensor, output: dict) -> dict:
        """Bottleneck, up blocks and the final conv; adds `prediction_logits` and `prediction`."""
        logits = self.final(run_chain(features, self.bottleneck, self.up_blocks))
        output.update(prediction_logits=logits, prediction=torch.sigmoid(logits))
        return output

    def forward(self, source_image: torch.Tensor, kp_driving: Keypoints, kp_source: Keypoints) -> dict:
        source_image, kp_source = match_batch(source_image, kp_source, kp_driving)
        output: dict = {}
        features = run_chain(source_image, self.first, self.down_blocks)
        if self.dense_motion_network is not None:
            features = apply_dense_motion(self.dense_motion_network, features, source_image, kp_driving,
                                          kp_source, output)
        return self.decode(features, output)
