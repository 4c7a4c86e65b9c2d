"""ReferenceNet: the SD-1.5 UNet itself (`diffusers.UNet2DConditionModel`), read for its self-attention inputs.

It runs once per clip at timestep 0 on the VAE latents of the reference image and the motion frames; every
`BasicTransformerBlock` contributes its `norm1` output (the tokens its self-attention sees), which the
backbone's reference attention and temporal modules read at every denoising step. Nothing after the last
such block influences the result, so the pass stops there (Hallo's ReferenceNet has no `conv_norm_out` /
`conv_out`; ours keeps the UNet class and leaves them out the same way).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .config import EMOConfig
from .unet import ReferenceBank


class _BankComplete(Exception):
    """Raised by the last writer: the rest of the UNet is not needed."""


def reference_unet_config(config: EMOConfig) -> dict[str, Any]:
    """The `UNet2DConditionModel` settings of ReferenceNet (SD-1.5's `unet/config.json` at these widths)."""
    return dict(sample_size=config.sample_size, in_channels=config.in_channels, out_channels=config.out_channels,
                down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
                block_out_channels=config.block_out_channels, layers_per_block=config.layers_per_block,
                attention_head_dim=config.attention_head_dim, cross_attention_dim=config.cross_attention_dim,
                norm_num_groups=config.norm_num_groups, norm_eps=config.norm_eps, flip_sin_to_cos=True,
                freq_shift=0, downsample_padding=1, act_fn="silu")


def build_reference_unet(config: EMOConfig) -> nn.Module:
    """A `diffusers.UNet2DConditionModel` without the output head (the keys of Hallo's `reference_unet.*`)."""
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel(**reference_unet_config(config))
    strip_output_head(unet)
    return unet


def strip_output_head(unet: nn.Module) -> nn.Module:
    unet.conv_norm_out = None   # diffusers skips a missing output norm
    unet.conv_out = nn.Identity()
    return unet


def transformer_block_paths(unet: nn.Module) -> list[str]:
    """The `BasicTransformerBlock` paths in the order the forward pass reaches them (down, mid, up; the
    modules are registered down, up, mid)."""
    from diffusers.models.attention import BasicTransformerBlock

    stage = {"down_blocks": 0, "mid_block": 1, "up_blocks": 2}
    paths = [name for name, module in unet.named_modules() if isinstance(module, BasicTransformerBlock)]
    return sorted(paths, key=lambda path: stage[path.split(".")[0]])  # stable: keeps the order within a stage


@torch.no_grad()
def reference_bank(unet: nn.Module, latents: torch.Tensor, context: torch.Tensor, copies: int, *,
                   bank_dtype: torch.dtype | None = torch.float16, stop_early: bool = True) -> ReferenceBank:
    """ReferenceNet's tokens for `copies` bank copies.

    latents: (1 + n, 4, h, w) scaled VAE latents of [reference, motion frames...];
    context: (copies, T, C) cross-attention context of each copy (copy b is written with context b, as
    Hallo's `E.repeat` pairs them). `bank_dtype` rounds the tokens as Hallo's bank does (float16); None keeps
    them as computed. `stop_early=False` runs the whole UNet (as Hallo does; the result is the same)."""
    frames = latents.shape[0]
    batch = latents.repeat(copies, 1, 1, 1)
    # Hallo's batch is the latents once per copy ([r, m.., r, m..]) and the context tiled over it
    # (`E.repeat(frames)`): row j carries context j mod copies, whatever copy the row belongs to.
    ctx = context.repeat(frames, 1, 1)
    paths = transformer_block_paths(unet)
    modules = dict(unet.named_modules())
    stored: dict[str, torch.Tensor] = {}
    handles = []

    def writer(path: str, last: bool):
        def hook(_module, _inputs, output):
            stored[path] = output.detach()
            if last and stop_early:
                raise _BankComplete
        return hook

    for i, path in enumerate(paths):
        handles.append(modules[path].norm1.register_forward_hook(writer(path, i == len(paths) - 1)))
    try:
        timestep = torch.zeros((), device=latents.device)
        unet(batch, timestep, encoder_hidden_states=ctx, return_dict=False)
    except _BankComplete:
        pass
    finally:
        for handle in handles:
            handle.remove()
    features = {}
    for path, tokens in stored.items():
        tokens = tokens.unflatten(0, (copies, frames))       # (copies, 1 + n, L, C)
        features[path] = tokens.to(bank_dtype) if bank_dtype is not None else tokens
    return ReferenceBank(features)
