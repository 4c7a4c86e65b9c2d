"""The small condition networks around the backbone: face locator, identity and audio projections, speed encoder.

Parameter names are those of Hallo's `net.pth` (`face_locator.*`, `imageproj.*`, `audioproj.*`). Every network
works frame by frame; video tensors are (B, C, F, H, W) as in Hallo.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import EMOConfig, SpeedConfig


class FaceLocator(nn.Module):
    """A light conv encoder of the face-region image, added to the backbone's first conv features.

    3x3 convs with SiLU; each stage keeps its width once, then halves the resolution while widening (three
    stride-2 convs: 512 px -> the 64 px latent grid). The output conv starts at zero (Hallo / EMO)."""

    def __init__(self, out_channels: int, in_channels: int = 3, widths: tuple[int, ...] = (16, 32, 64, 128)):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        layers = []
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(c_in, c_in, 3, padding=1), nn.Conv2d(c_in, c_out, 3, padding=1, stride=2)]
        self.blocks = nn.ModuleList(layers)
        self.conv_out = nn.Conv2d(widths[-1], out_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, region: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) in [0, 1] -> (N, C, S/8, S/8); a video (B, 3, F, S, S) is run frame by frame."""
        if region.ndim == 5:
            b, _, f = region.shape[:3]
            out = self(region.transpose(1, 2).flatten(0, 1))
            return out.unflatten(0, (b, f)).transpose(1, 2)
        h = F.silu(self.conv_in(region))
        for conv in self.blocks:
            h = F.silu(conv(h))
        return self.conv_out(h)


class ImageProjection(nn.Module):
    """Hallo's `ImageProjModel`: a 512-d face embedding -> `tokens` cross-attention tokens (Linear, LayerNorm)."""

    def __init__(self, context_dim: int, embedding_dim: int = 512, tokens: int = 4):
        super().__init__()
        self.tokens, self.context_dim = tokens, context_dim
        self.proj = nn.Linear(embedding_dim, tokens * context_dim)
        self.norm = nn.LayerNorm(context_dim)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(embedding).reshape(-1, self.tokens, self.context_dim))


class AudioProjection(nn.Module):
    """Hallo's `AudioProjModel`: each frame's window of multi-layer wav2vec features (window, blocks, channels),
    flattened, through Linear-ReLU-Linear-ReLU-Linear to `tokens` tokens of `out_dim`, then LayerNorm."""

    def __init__(self, window: int, blocks: int, channels: int, hidden: int, out_dim: int, tokens: int):
        super().__init__()
        self.tokens, self.out_dim = tokens, out_dim
        self.proj1 = nn.Linear(window * blocks * channels, hidden)
        self.proj2 = nn.Linear(hidden, hidden)
        self.proj3 = nn.Linear(hidden, tokens * out_dim)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """(B, F, window, blocks, channels) -> (B, F, tokens, out_dim)."""
        b, f = windows.shape[:2]
        h = torch.relu(self.proj1(windows.reshape(b * f, -1)))
        h = torch.relu(self.proj2(h))
        tokens = self.norm(self.proj3(h).reshape(b * f, self.tokens, self.out_dim))
        return tokens.reshape(b, f, self.tokens, self.out_dim)


def speed_buckets(speed: torch.Tensor, config: SpeedConfig) -> torch.Tensor:
    """EMO's soft bucket scores s_d = tanh(3 (w - c_d) / r_d) of per-frame head speeds w: (..., F) -> (..., F, d)."""
    centers = speed.new_tensor(config.bucket_centers())
    radii = speed.new_tensor(config.bucket_radii())
    return torch.tanh(3.0 * (speed[..., None] - centers) / radii)


class SpeedEncoder(nn.Module):
    """Bucket scores of the +-`window` frames round each frame -> an MLP -> speed tokens per frame."""

    def __init__(self, config: SpeedConfig):
        super().__init__()
        self.config = config
        width = (2 * config.window + 1) * config.buckets
        self.mlp = nn.Sequential(nn.Linear(width, config.embed_dim), nn.SiLU(),
                                 nn.Linear(config.embed_dim, config.tokens * config.embed_dim))

    def forward(self, speed: torch.Tensor) -> torch.Tensor:
        """(B, F) head speeds in degrees per frame -> (B, F, tokens, embed_dim)."""
        scores = speed_buckets(speed, self.config)                     # (B, F, d)
        f, m = speed.shape[1], self.config.window
        index = (torch.arange(f, device=speed.device)[:, None]
                 + torch.arange(-m, m + 1, device=speed.device)).clamp(0, f - 1)
        windows = scores[:, index].flatten(2)                          # (B, F, (2m+1) d)
        out = self.mlp(windows)
        return out.unflatten(-1, (self.config.tokens, self.config.embed_dim))


def build_conditions(config: EMOConfig) -> dict[str, nn.Module]:
    """The condition networks of a configuration, under their `net.pth` names."""
    modules: dict[str, nn.Module] = {
        "face_locator": FaceLocator(config.block_out_channels[0], 3, config.face_locator_channels),
        "audioproj": AudioProjection(config.audio_window, config.audio_blocks, config.audio_channels,
                                     config.audio_intermediate_dim, config.audio_attention_dim,
                                     config.audio_context_tokens)}
    if config.identity_dim is not None:
        modules["imageproj"] = ImageProjection(config.cross_attention_dim, config.identity_dim, config.identity_tokens)
    if config.speed is not None:
        modules["speed_encoder"] = SpeedEncoder(config.speed)
    return modules
