"""One clip of EMO inference: conditions for classifier-free guidance, the DDIM loop, VAE encode and decode.

The scheduler is diffusers' `DDIMScheduler` with the settings of Hallo's inference config: linear betas
0.00085..0.012 rescaled to zero terminal SNR, v-prediction, trailing timesteps, eta 0. Guidance is Hallo's:
the batch is [unconditional, conditional]; the unconditional half gets the projection of a zero identity
embedding, zero audio tokens, a zero face-locator feature and plain self-attention (no reference tokens),
and keeps the region masks and the motion frames. `guidance <= 1` runs the conditional half alone (Hallo's own
pipeline cannot: it always prepends the zero audio).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .model import EMOModel
from .unet import Conditions

SCHEDULER_SETTINGS = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="linear",
                          clip_sample=False, steps_offset=1, prediction_type="v_prediction",
                          rescale_betas_zero_snr=True, timestep_spacing="trailing", set_alpha_to_one=True)
MASK_NAMES = ("full", "face", "lip")


def make_scheduler(**overrides):
    from diffusers import DDIMScheduler

    return DDIMScheduler(**{**SCHEDULER_SETTINGS, **overrides})


@dataclass
class ClipInputs:
    """One clip's conditions for one video (batch 1), before guidance doubles them.

    ref_latents: (1 + n, 4, h, w) scaled latents of the reference image and the n motion frames.
    audio: (1, F, tokens, C) projected audio tokens.
    face: (1, C0, h, w) face-locator feature, or None.
    masks: {"full"|"face"|"lip": [per level (1, h_l*w_l)]}, or None (plain audio attention).
    speed: (n + F,) head speeds in degrees per frame, or None.
    zero_motion: the motion frames' tokens are zero maps (EMO's first clip) rather than ReferenceNet's.
    """

    ref_latents: torch.Tensor
    audio: torch.Tensor
    face: torch.Tensor | None = None
    masks: dict[str, list[torch.Tensor]] | None = None
    speed: torch.Tensor | None = None
    zero_motion: bool = False


def clip_conditions(model: EMOModel, clip: ClipInputs, identity: torch.Tensor | None, *, guidance: float,
                    motion_scale: torch.Tensor | None = None,
                    bank_dtype: torch.dtype | None = torch.float16) -> Conditions:
    """The backbone's conditions for one clip: ReferenceNet runs here, once."""
    cfg = guidance > 1
    context = model.identity_context(identity, guidance=cfg)
    bank = model.bank(clip.ref_latents, context, bank_dtype=bank_dtype)
    if clip.zero_motion:
        for tokens in bank.features.values():
            tokens[:, 1:] = 0
    frames = clip.audio.shape[1]
    audio, face = clip.audio, clip.face
    copies = 2 if cfg else 1
    if cfg:
        audio = torch.cat([torch.zeros_like(audio), audio])
        face = torch.cat([torch.zeros_like(face), face]) if face is not None else None
    masks = None
    if clip.masks is not None:
        masks = {name: [m.reshape(1, -1).repeat(frames * copies, 1) for m in clip.masks[name]] for name in MASK_NAMES}
    speed = model.speed_tokens(clip.speed, copies)
    return Conditions(context=context, audio=audio, bank=bank, face=face, masks=masks, motion_scale=motion_scale,
                      speed=speed, plain_batches=1 if cfg else 0)


StepCallback = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], None]


@torch.no_grad()
def denoise_clip(model: EMOModel, scheduler, cond: Conditions, latents: torch.Tensor, *, steps: int,
                 guidance: float, on_step: StepCallback | None = None) -> torch.Tensor:
    """The DDIM loop from `latents` (1, 4, F, h, w); `on_step(i, t, model_output, new_latents)` sees each step."""
    scheduler.set_timesteps(steps, device=latents.device)
    cfg = guidance > 1
    for i, t in enumerate(scheduler.timesteps):
        model_in = torch.cat([latents, latents]) if cfg else latents
        out = model(scheduler.scale_model_input(model_in, t), t, cond)
        if cfg:
            uncond, cond_out = out.chunk(2)
            prediction = uncond + guidance * (cond_out - uncond)
        else:
            prediction = out
        latents = scheduler.step(prediction, t, latents, eta=0.0).prev_sample
        if on_step is not None:
            on_step(i, t, out, latents)
    return latents


@torch.no_grad()
def encode_images(vae, pixels: torch.Tensor, scale: float) -> torch.Tensor:
    """(N, 3, S, S) in [-1, 1] -> the scaled latent means (N, 4, S/8, S/8)."""
    return vae.encode(pixels.to(vae.dtype)).latent_dist.mean * scale


@torch.no_grad()
def decode_frames(vae, latents: torch.Tensor, scale: float) -> torch.Tensor:
    """(1, 4, F, h, w) -> (F, 3, S, S) in [-1, 1] (unclamped), decoded one frame at a time."""
    frames = latents[0].transpose(0, 1)
    return torch.cat([vae.decode(frame[None].to(vae.dtype) / scale).sample for frame in frames])
