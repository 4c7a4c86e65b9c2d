"""`EMOModel`: ReferenceNet, the video backbone and the condition networks, under the names of Hallo's `net.pth`.

The VAE, wav2vec2 and the identity network are separate pretrained parts (the pipeline holds them). The model's
parts are grouped the way the training stages freeze and train them (`PARTS`, `parameters_of`).
"""
from __future__ import annotations

from typing import Iterator

import torch
from torch import nn

from .config import EMOConfig
from .modules import build_conditions
from .reference import build_reference_unet, reference_bank
from .unet import Conditions, DenoisingUNet, ReferenceBank

# Names of the parameter groups the paper's stages train (see `parameters_of`).
PARTS = ("reference_unet", "backbone", "face_locator", "identity", "audio", "temporal", "speed")


class EMOModel(nn.Module):
    def __init__(self, config: EMOConfig):
        super().__init__()
        self.config = config
        self.reference_unet = build_reference_unet(config)
        self.denoising_unet = DenoisingUNet(config)
        for name, module in build_conditions(config).items():
            self.add_module(name, module)
        if config.identity_dim is None:
            # EMO has no identity embedding: the spatial cross-attention sees a learned token set, which
            # starts at zero (then the attention returns only its output bias, the same for every input).
            self.null_context = nn.Parameter(torch.zeros(1, config.identity_tokens, config.cross_attention_dim))

    # ------------------------------------------------------------------------------------ conditions
    def identity_context(self, embedding: torch.Tensor | None, *, guidance: bool) -> torch.Tensor:
        """Cross-attention context, (2, T, C) = [unconditional, conditional] with guidance, else (1, T, C).

        Hallo's unconditional context is the projection of a zero embedding (not zeros)."""
        if self.config.identity_dim is None:
            ctx = self.null_context
            return ctx.expand(2, -1, -1) if guidance else ctx
        if embedding is None:
            raise ValueError("this model conditions on a face identity embedding: pass one")
        embedding = embedding.reshape(1, -1).to(self.imageproj.proj.weight)
        cond = self.imageproj(embedding)
        if not guidance:
            return cond
        return torch.cat([self.imageproj(torch.zeros_like(embedding)), cond])

    def bank(self, ref_latents: torch.Tensor, context: torch.Tensor, *,
             bank_dtype: torch.dtype | None = torch.float16) -> ReferenceBank:
        """ReferenceNet once per clip: one bank copy per context row."""
        return reference_bank(self.reference_unet, ref_latents, context, context.shape[0], bank_dtype=bank_dtype)

    def speed_tokens(self, speed: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        """(n + F,) or (B, n + F) head speeds -> speed tokens, or None for a model without speed layers."""
        if self.config.speed is None or speed is None:
            return None
        speed = speed.reshape(1, -1) if speed.ndim == 1 else speed
        tokens = self.speed_encoder(speed.to(self.speed_encoder.mlp[0].weight))
        return tokens.expand(batch, -1, -1, -1) if tokens.shape[0] == 1 else tokens

    def forward(self, latents: torch.Tensor, timestep: torch.Tensor | float, cond: Conditions) -> torch.Tensor:
        return self.denoising_unet(latents, timestep, cond)

    # ------------------------------------------------------------------------------------ training parts
    def named_parts(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by part: `temporal` = the motion modules (AnimateDiff), `audio` = audio attention and the
        audio projection, `speed` = speed layers (encoder and their attention in the temporal modules),
        `backbone` = everything else of the denoising UNet."""
        parts: dict[str, list[nn.Parameter]] = {name: [] for name in PARTS}
        for name, param in self.named_parameters():
            parts[_part_of(name)].append(param)
        return parts

    def parameters_of(self, *names: str) -> Iterator[nn.Parameter]:
        unknown = set(names) - set(PARTS)
        if unknown:
            raise ValueError(f"unknown model parts {sorted(unknown)} (known: {', '.join(PARTS)})")
        parts = self.named_parts()
        for name in names:
            yield from parts[name]


def _part_of(name: str) -> str:
    if name.startswith("reference_unet."):
        return "reference_unet"
    if name.startswith("speed_encoder.") or ".speed_" in name:
        return "speed"
    if name.startswith("face_locator."):
        return "face_locator"
    if name.startswith(("imageproj.", "null_context")):
        return "identity"
    if name.startswith("audioproj.") or ".audio_modules." in name:
        return "audio"
    if ".motion_modules." in name:
        return "temporal"
    return "backbone"
