"""DaGAN: depth-aware generative adversarial network for talking-head reenactment (Hong et al. 2022).

FOMM's keypoints and dense motion, with a self-supervised face-depth network (`depth.py`) whose
disparity feeds the keypoint detector (RGB-D input) and the cross-modal depth-aware attention: the
source depth's features give the queries, the warped source features the keys and values,
    F' = gamma * softmax(q^T k) v + F_w        (Sec. 3.3; gamma starts at 0).
Parameter names follow the official code so released checkpoints load (`weights.py`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...nn.blocks import SameBlock2d, hourglass_width
from ...nn.normalization import SPADEResnetBlock
from ...nn.precision import full_precision, run_full_precision
from ...warping.dense_motion import DenseMotionNetwork
from ...warping.discriminator import MultiScaleDiscriminator
from ...warping.generator import (apply_dense_motion, make_bottleneck, make_down_blocks, make_up_blocks,
                                  match_batch, resize_like, run_chain)
from ...warping.keypoints import KPDetector, Keypoints
from .config import DaGANConfig
from .depth import DepthDecoder, DepthEncoder


ATTENTION_BLOCK = 1 << 21   # attention-map entries per block (8 MB in float32)


class DepthAwareAttention(nn.Module):
    """Cross-modal attention over all h*w positions (an (h*w)^2 map per image: 64 MB at 64x64)."""

    def __init__(self, in_dim: int, activation: nn.Module | None = None):
        super().__init__()
        self.activation = activation if activation is not None else nn.ReLU()
        self.query_conv = nn.Conv2d(in_dim, in_dim // 8, kernel_size=1)
        self.key_conv = nn.Conv2d(in_dim, in_dim // 8, kernel_size=1)
        self.value_conv = nn.Conv2d(in_dim, in_dim, kernel_size=1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def query(self, depth_features: torch.Tensor) -> torch.Tensor:
        """The queries (B, h*w, C/8): they depend on the source depth only, so callers may keep them."""
        b, _, h, w = depth_features.shape
        return self.activation(self.query_conv(depth_features)).view(b, -1, h * w).permute(0, 2, 1)

    def attend(self, query: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """F' = gamma * softmax(q^T k) v + F for `query` from `query()` (a batch-1 query serves any batch).

        The (h*w)^2 attention map is made in blocks of query rows (at most ATTENTION_BLOCK entries), which
        stay in cache and never need the whole map in memory; each row is computed as a whole, so the
        result is the same. The logits are unscaled, so they and their softmax stay float32 under autocast."""
        b, c, h, w = features.shape
        with full_precision(features):
            key = self.activation(run_full_precision(self.key_conv, features)).view(b, -1, h * w)
        value = self.activation(self.value_conv(features)).view(b, c, h * w)
        rows = max(1, ATTENTION_BLOCK // (h * w))
        attended = []
        for index in range(b):
            queries = query[min(index, query.shape[0] - 1)].to(key.dtype)
            blocks = []
            for start in range(0, h * w, rows):
                with full_precision(features):
                    weights = F.softmax(torch.matmul(queries[start:start + rows], key[index]), dim=-1)
                blocks.append(torch.matmul(value[index], weights.t().to(value.dtype)))   # (C, rows)
            attended.append(torch.cat(blocks, dim=1))
        return self.gamma * torch.stack(attended).view(b, c, h, w) + features

    def forward(self, depth_features: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return self.attend(self.query(depth_features), features)


def _required(dense_motion_params: dict | None) -> dict:
    # Without dense motion the official DepthAwareGenerator skips warping and attention (an unanimated
    # autoencoder) and the SPADE one crashes; no DaGAN configuration does that, so refuse it here.
    if dense_motion_params is None:
        raise ValueError("DaGAN's generators need dense_motion_params")
    return dense_motion_params


@dataclass
class SourceFeatures:
    """What a generator computes from the source alone (`encode_source`), reusable for every driving frame.

    image: (B, 3, H, W) in [0, 1]; motion_image: the image at the dense-motion resolution; features:
    the RGB encoder's output (B, C, h, w); attention_query: the projected source-depth features
    (B, h*w, C/8). A batch-1 source serves any driving batch."""

    image: torch.Tensor
    motion_image: torch.Tensor
    features: torch.Tensor
    attention_query: torch.Tensor


class DepthAwareFeatures(nn.Module):
    """What both DaGAN generators share: RGB and source-depth encoders, dense motion, attention.

    Subclasses add `decode(features, output) -> logits`; `forward` = `forward_from(encode_source(...))`."""

    def __init__(self, num_channels: int, num_kp: int, block_expansion: int, max_features: int,
                 num_down_blocks: int, estimate_occlusion_map: bool, dense_motion_params: dict):
        super().__init__()
        self.dense_motion_network = DenseMotionNetwork(num_kp=num_kp, num_channels=num_channels,
                                                       estimate_occlusion_map=estimate_occlusion_map,
                                                       **dense_motion_params)
        self.first = SameBlock2d(num_channels, block_expansion, kernel_size=(7, 7), padding=(3, 3))
        self.down_blocks = make_down_blocks(block_expansion, max_features, num_down_blocks)
        self.src_first = SameBlock2d(1, block_expansion, kernel_size=(7, 7), padding=(3, 3))
        self.src_down_blocks = make_down_blocks(block_expansion, max_features, num_down_blocks)
        self.AttnModule = DepthAwareAttention(hourglass_width(block_expansion, num_down_blocks, max_features))
        self.estimate_occlusion_map = estimate_occlusion_map
        self.num_channels = num_channels

    def encode_source(self, source_image: torch.Tensor, source_depth: torch.Tensor) -> SourceFeatures:
        """The work that depends on the source alone: done once per source, reused for every driving frame."""
        features = run_chain(source_image, self.first, self.down_blocks)
        depth_features = run_chain(source_depth, self.src_first, self.src_down_blocks)
        return SourceFeatures(source_image, self.dense_motion_network.downsample(source_image), features,
                              self.AttnModule.query(depth_features))

    def attended_features(self, source: SourceFeatures, kp_driving: Keypoints, kp_source: Keypoints,
                          output: dict) -> torch.Tensor:
        """The source features warped to the driving keypoints, occlusion-masked, then attended."""
        source_image, kp_source, motion_image, features = match_batch(source.image, kp_source, kp_driving,
                                                                      source.motion_image, source.features)
        features = apply_dense_motion(self.dense_motion_network, features, source_image, kp_driving,
                                      kp_source, output, motion_source=motion_image)
        return self.AttnModule.attend(source.attention_query, features)

    def forward(self, source_image: torch.Tensor, kp_driving: Keypoints, kp_source: Keypoints,
                source_depth: torch.Tensor) -> dict:
        """The source moved to `kp_driving`: dict with `prediction` in [0, 1], `prediction_logits`,
        `deformed`, `occlusion_map`, `mask`, `sparse_deformed`, `deformation`. The official forward also
        takes the driving depth, which it never uses."""
        return self.forward_from(self.encode_source(source_image, source_depth), kp_driving, kp_source)

    def forward_from(self, source: SourceFeatures, kp_driving: Keypoints, kp_source: Keypoints) -> dict:
        """`forward` for an encoded source (a batch-1 source serves a batch of driving keypoints)."""
        output: dict = {}
        logits = self.decode(self.attended_features(source, kp_driving, kp_source, output), output)
        output.update(prediction_logits=logits, prediction=torch.sigmoid(logits))
        return output


class DepthAwareGenerator(DepthAwareFeatures):
    """The paper's generator: FOMM's decoder (bottleneck, up blocks, 7x7 conv, sigmoid) after the
    depth-aware attention."""

    def __init__(self, num_channels: int, num_kp: int, block_expansion: int, max_features: int,
                 num_down_blocks: int, num_bottleneck_blocks: int, estimate_occlusion_map: bool = False,
                 dense_motion_params: dict | None = None, estimate_jacobian: bool = False):
        del estimate_jacobian  # in the official signature; whether keypoints carry Jacobians decides
        super().__init__(num_channels, num_kp, block_expansion, max_features, num_down_blocks,
                         estimate_occlusion_map, _required(dense_motion_params))
        self.up_blocks = make_up_blocks(block_expansion, max_features, num_down_blocks)
        self.bottleneck = make_bottleneck(hourglass_width(block_expansion, num_down_blocks, max_features),
                                          num_bottleneck_blocks)
        self.final = nn.Conv2d(block_expansion, num_channels, kernel_size=(7, 7), padding=(3, 3))

    def decode(self, features: torch.Tensor, output: dict) -> torch.Tensor:
        """Attended features -> image logits."""
        return self.final(run_chain(features, self.bottleneck, self.up_blocks))


class SPADEDecoder(nn.Module):
    """The SPADE decoder of the "SPADE model" (official `SPADEGenerator`): 3 SPADE residual blocks at
    2x width, then two x2 upsamplings, conditioned on a label of 4 compressed feature channels plus the
    occlusion-masked warped image. Returns logits; the image is sigmoid(logits)."""

    def __init__(self, in_channels: int = 256, out_channels: int = 64, image_channels: int = 3,
                 compressed_channels: int = 4):
        super().__init__()
        label_nc = image_channels + compressed_channels
        self.compress = nn.Conv2d(in_channels, compressed_channels, 3, padding=1)
        self.fc = nn.Conv2d(in_channels, 2 * in_channels, 3, padding=1)
        for i in range(3):
            self.add_module(f"G_middle_{i}", SPADEResnetBlock(2 * in_channels, 2 * in_channels, label_nc))
        self.up_0 = SPADEResnetBlock(2 * in_channels, in_channels, label_nc)
        self.up_1 = SPADEResnetBlock(in_channels, out_channels, label_nc)
        self.conv_img = nn.Conv2d(out_channels, image_channels, 3, padding=1)

    def forward(self, features: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        compressed = F.interpolate(self.compress(features), size=image.shape[2:], mode="nearest")
        label = torch.cat([compressed, image], dim=1)
        x = self.fc(features)
        for block in (self.G_middle_0, self.G_middle_1, self.G_middle_2):
            x = block(x, label)
        x = self.up_0(F.interpolate(x, scale_factor=2, mode="nearest"), label)
        x = self.up_1(F.interpolate(x, scale_factor=2, mode="nearest"), label)
        return self.conv_img(F.leaky_relu(x, 0.2))


class SPADEDepthAwareGenerator(DepthAwareFeatures):
    """DaGAN's "SPADE model": the depth-aware features decoded by `SPADEDecoder` (same outputs as
    DepthAwareGenerator). Needs num_down_blocks 2 (the decoder upsamples twice)."""

    def __init__(self, num_channels: int, num_kp: int, block_expansion: int, max_features: int,
                 num_down_blocks: int, num_bottleneck_blocks: int, estimate_occlusion_map: bool = False,
                 dense_motion_params: dict | None = None, estimate_jacobian: bool = False):
        del estimate_jacobian, num_bottleneck_blocks  # in the official signature, unused by this decoder
        super().__init__(num_channels, num_kp, block_expansion, max_features, num_down_blocks,
                         estimate_occlusion_map, _required(dense_motion_params))
        # the official decoder is fixed at 256 -> 64 channels; the input width follows the encoder here
        # (it is 256 in every configuration the official code can run)
        self.decoder = SPADEDecoder(hourglass_width(block_expansion, num_down_blocks, max_features),
                                    out_channels=64, image_channels=num_channels)

    def decode(self, features: torch.Tensor, output: dict) -> torch.Tensor:
        """Attended features -> image logits, the SPADE label made from the occlusion-masked warped image."""
        label_image = output["deformed"]
        if "occlusion_map" in output:
            label_image = label_image * resize_like(output["occlusion_map"], label_image.shape[2:])
        return self.decoder(features, label_image)


GENERATOR_CLASSES = {"DepthAwareGenerator": DepthAwareGenerator,
                     "SPADEDepthAwareGenerator": SPADEDepthAwareGenerator}


class DaGANModel(nn.Module):
    """The DaGAN networks under the official component names: `generator`, `kp_detector`,
    `depth_encoder`, `depth_decoder` and, for training, `discriminator`.

    Images are (B, 3, H, W) float in [0, 1]. The depth network is frozen (the official trains it
    separately), so it stays in eval mode and has requires_grad False."""

    def __init__(self, config: DaGANConfig, discriminator: bool = False):
        super().__init__()
        self.config = config
        gen, kp = config.generator, config.kp_detector
        self.generator = GENERATOR_CLASSES[gen.kind](
            num_channels=config.num_channels, num_kp=config.num_kp, block_expansion=gen.block_expansion,
            max_features=gen.max_features, num_down_blocks=gen.num_down_blocks,
            num_bottleneck_blocks=gen.num_bottleneck_blocks, estimate_occlusion_map=gen.estimate_occlusion_map,
            dense_motion_params=dataclasses.asdict(gen.dense_motion))
        self.kp_detector = KPDetector(
            block_expansion=kp.block_expansion, num_kp=config.num_kp, num_channels=config.kp_channels,
            max_features=kp.max_features, num_blocks=kp.num_blocks, temperature=kp.temperature,
            estimate_jacobian=config.estimate_jacobian, scale_factor=kp.scale_factor,
            single_jacobian_map=kp.single_jacobian_map, pad=kp.pad)
        self.depth_encoder = DepthEncoder(config.depth_layers)
        self.depth_decoder = DepthDecoder(self.depth_encoder.num_ch_enc)
        self.depth_encoder.requires_grad_(False)
        self.depth_decoder.requires_grad_(False)
        self.discriminator = None
        if discriminator:
            disc = config.discriminator
            self.discriminator = MultiScaleDiscriminator(
                scales=disc.scales, num_channels=config.num_channels, block_expansion=disc.block_expansion,
                num_blocks=disc.num_blocks, max_features=disc.max_features, sn=disc.sn, use_kp=disc.use_kp,
                num_kp=config.num_kp, kp_variance=disc.kp_variance)

    def train(self, mode: bool = True) -> "DaGANModel":
        super().train(mode)
        self.depth_encoder.eval()
        self.depth_decoder.eval()
        return self

    def depth(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(disparity in (0, 1), its pre-sigmoid logits), both (B, 1, H, W)."""
        logits = self.depth_decoder(self.depth_encoder(image))
        return torch.sigmoid(logits), logits

    def keypoints(self, image: torch.Tensor, disparity: torch.Tensor | None = None) -> Keypoints:
        """Keypoints of `image`; the detector's input is RGB, depth or RGB-D as the config says."""
        kp_input = self.config.kp_input
        if kp_input != "rgb" and disparity is None:
            raise ValueError(f"the {kp_input} keypoint detector needs the disparity map")
        inputs = {"rgb": image, "depth": disparity}.get(kp_input)
        if inputs is None:
            inputs = torch.cat([image, disparity], dim=1)
        return self.kp_detector(inputs)

    def generate(self, source: torch.Tensor, kp_source: Keypoints, kp_driving: Keypoints,
                 source_depth: torch.Tensor) -> dict:
        """The source moved to `kp_driving` (a batch-1 source serves a batch of driving keypoints)."""
        return self.generator(source, kp_driving, kp_source, source_depth)

    def encode_source(self, source: torch.Tensor, source_depth: torch.Tensor) -> SourceFeatures:
        """The generator's source-only work, to reuse across driving frames with `generate_from`."""
        return self.generator.encode_source(source, source_depth)

    def generate_from(self, source: SourceFeatures, kp_source: Keypoints, kp_driving: Keypoints) -> dict:
        """`generate` for a source encoded by `encode_source` (same outputs)."""
        return self.generator.forward_from(source, kp_driving, kp_source)
