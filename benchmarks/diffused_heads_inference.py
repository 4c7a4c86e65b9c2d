"""Benchmark: Diffused Heads inference speed against the official frame loop, at the released configuration
(`crema()`: the 215.7M-parameter UNet of crema_script.pt, 256 channels, multipliers 1,2,3 at 128 px, attention
at 32 px and in the middle, double_pre_gn audio conditioning, RGB motion frames; cosine schedule, T = 1000),
random weights with a fixed seed, float32.

Diffused Heads makes a video autoregressively: per 25 fps frame one full DDPM loop of the UNet (100 steps as
released), conditioned on the identity frame, the two previous outputs and a window of 5 audio embeddings.
A full 100-step second of video is 2,500 UNet evaluations, i.e. hours on this CPU, so whole videos are not
timed: per-step times are measured and the per-video figures computed from them.

  (a) the official loop, in the official style, on our modules' parameters: train-branch `models/diffusion.py`
      `Diffusion.sample` / `sample_loop` / `get_p_params` / `get_q_params` (after `space(steps)`): per step
      `torch.tensor([t] * B).to(device)` twice, the official `UNet.forward` (the `TimestepEmbedding` sinusoid
      recomputed from a CPU `arange`, `CondSequential`, `CondResBlock.forward` as GroupNorm with affine, then
      `* (1 + scale) + shift`, then the audio `* (1 + a_scale) + a_shift` as separate ops, `QKVAttentionLegacy`
      with `einsum` and a float32 softmax), the schedule coefficients gathered and moved with `.to(device)` per
      step through `broadcast`, under `torch.no_grad()`;
  (b) ours: `sample_frames` with `DiffusedHeadsUNet.forward` (fused modulation, SDPA attention) under
      `torch.inference_mode()` and the pipeline's compute context, as `DiffusedHeadsPipeline` runs it.
Both use the same module instance (its zero-initialised output convolutions re-initialised and its GroupNorm
affines perturbed, so every term of the modulation chain matters) and the same random draws: x_T and the step
noise of `torch.manual_seed(seed)`'s CPU stream (the official CPU run; `SeededFrameNoise` on our side). The
one deviation from the official numbers: with steps <= 6 its float32 respacing makes the last beta exactly 1
(NaN samples); both sides use 0.999 there (as `make_schedule`). The official code's gathers index CPU arrays,
so the step index is moved to the arrays' device for the gather (a no-op on the CPU).

Measured:
  - a short run, 1 frame at `--steps-check` steps per side, `--rounds` times interleaved (order reversed every
    other round): best round and range, with the process's CPU time per wall second (about the thread count on
    an idle machine, less when other jobs take the cores); its first round is the output check;
  - `--step-samples` single UNet evaluations of (a) and (b) at batch 1 and of (b) at batch `--batch`
    (independent videos side by side, `talk_queue`), interleaved (the order rotates): min / median / max;
  - the work outside the UNet (sampler arithmetic, gathers, noise, frame bookkeeping), by running both frame
    loops with the UNet replaced by a cached output, 1 frame at 100, 50, 20, 10 steps;
  - seconds per second of video = 25 x (steps x best UNet step + that per-frame remainder), and the ratio.
One video cannot be batched (frame n needs frames n-1 and n-2); several can: per-video frame rate and total
throughput at batch 1 vs batch `--batch`.

Check: ours vs official, the same x_T and noise, the frame after `--steps-check` steps: rel = ||b - a|| /
||a - mean(a)|| <= 1e-4 (float32; they differ only in rounding: fused modulation, SDPA), and the single steps'
UNet outputs likewise. In fast mode both sides run under the same autocast and the bound is 5e-2.

On a shared CPU, time both in one run, as here; OpenMP's default spin-waiting makes multi-threaded steps slower
and uneven when other jobs run: `OMP_WAIT_POLICY=PASSIVE` or `--threads 1` give steadier figures. Both sides
run inside the same compute context (on CUDA: cuDNN without TF32 in exact mode, so the check holds; fast:
float16 autocast on CUDA, bfloat16 on CPUs, `--dtype` overrides), with `torch.cuda.synchronize()` around
every timing on CUDA.

    python benchmarks/diffused_heads_inference.py [--config crema|tiny] [--steps-check 2] [--rounds 1]
        [--step-samples 3] [--batch 4] [--threads N] [--device cpu|cuda] [--precision exact|fast]
        [--dtype float16|bfloat16] [--seed 0]
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmark_media import load_crops
from faceanim.methods.diffused_heads.config import PRESETS
from faceanim.methods.diffused_heads.model import CondResBlock, DiffusedHeadsUNet
from faceanim.methods.diffused_heads.pipeline import DiffusedHeadsPipeline
from faceanim.methods.diffused_heads.sampling import (FrameLoop, SeededFrameNoise, make_schedule, sample_frames,
                                                      to_grayscale)
from faceanim.nn.guided_diffusion import AttentionBlock
from faceanim.nn.precision import backend_flags, compute_context

TOLERANCE = 1e-4
FAST_TOLERANCE = 5e-2
FPS = 25
VIDEO_STEPS = (100, 50, 20, 10)


# -- random weights ---------------------------------------------------------------------------------------
def randomize(unet: DiffusedHeadsUNet) -> None:
    """Re-initialise the zero-initialised output convolutions (default init, scaled by 1/2) and perturb the
    GroupNorm affines, so that no branch of the network is an identity and the modulation chain is tested."""
    with torch.no_grad():
        for module in unet.modules():
            if isinstance(module, (nn.Conv1d, nn.Conv2d)) and not module.weight.any():
                module.reset_parameters()
                module.weight.mul_(0.5)
            elif isinstance(module, nn.GroupNorm) and module.affine:
                module.weight.copy_(1 + 0.1 * torch.randn_like(module.weight))
                module.bias.copy_(0.1 * torch.randn_like(module.bias))


# -- the official UNet forward (train branch models/unet.py, models/blocks.py) on our modules ------------
def official_time_embed(embedding: nn.Module, timesteps: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """blocks.TimestepEmbedding.forward: the frequencies rebuilt (on the CPU, then moved) at every call."""
    freqs = torch.exp(
        -math.log(embedding.max_period) * torch.arange(start=0, end=embedding.channels // 2) / (embedding.channels * 2)
    ).to(dtype=dtype, device=timesteps.device)
    args = timesteps[:, None].type(dtype) * freqs[None]
    return embedding.fc(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))


def official_cond_res_block(block: CondResBlock, x: torch.Tensor, emb) -> torch.Tensor:
    """blocks.CondResBlock.forward (identity as a frame: emb is t_emb + a_emb or (t_emb, a_emb))."""
    if block.updown:
        in_rest, in_conv = block.in_layers[:-1], block.in_layers[-1]
        h = in_rest(x)
        h = block.h_upd(h)
        x = block.x_upd(x)
        h = in_conv(h)
    else:
        h = block.in_layers(x)
    if block.audio_condition_type in ("post_gn", "double_pre_gn"):
        t_emb, a_emb = emb
    else:
        t_emb = emb
    t_emb_out = block.t_emb_layers(t_emb).type(h.dtype)
    while len(t_emb_out.shape) < len(h.shape):
        t_emb_out = t_emb_out[..., None]
    out_norm, out_rest = block.out_layers[0], block.out_layers[1:]
    scale, shift = t_emb_out.chunk(2, 1)
    h = out_norm(h) * (1 + scale) + shift
    if block.audio_condition_type == "post_gn":
        audio_emb_out = block.audio_emb_layers(a_emb)
        while len(audio_emb_out.shape) < len(h.shape):
            audio_emb_out = audio_emb_out[..., None]
        h *= audio_emb_out
    elif block.audio_condition_type == "double_pre_gn":
        audio_emb_out = block.audio_emb_layers(a_emb)
        while len(audio_emb_out.shape) < len(h.shape):
            audio_emb_out = audio_emb_out[..., None]
        audio_scale, audio_shift = audio_emb_out.chunk(2, 1)
        h = h * (1 + audio_scale) + audio_shift
    h = out_rest(h)
    return block.skip_connection(x) + h


def official_qkv_attention_legacy(qkv: torch.Tensor, n_heads: int, dtype=torch.float32) -> torch.Tensor:
    """blocks.QKVAttentionLegacy.forward."""
    bs, width, length = qkv.shape
    assert width % (3 * n_heads) == 0
    ch = width // (3 * n_heads)
    q, k, v = qkv.reshape(bs * n_heads, ch * 3, length).split(ch, dim=1)
    scale = 1 / math.sqrt(math.sqrt(ch))
    weight = torch.einsum("bct,bcs->bts", q * scale, k * scale)
    weight = torch.softmax(weight.type(dtype), dim=-1).type(weight.dtype)
    a = torch.einsum("bts,bcs->bct", weight, v)
    return a.reshape(bs, -1, length)


def official_attention(block: AttentionBlock, x: torch.Tensor) -> torch.Tensor:
    """blocks.AttentionBlock.forward."""
    b, c, *spatial = x.shape
    x = x.reshape(b, c, -1)
    qkv = block.qkv(block.norm(x))
    h = official_qkv_attention_legacy(qkv, block.heads)
    h = block.proj_out(h)
    return (x + h).reshape(b, c, *spatial)


def official_cond_sequential(layers: nn.Sequential, x: torch.Tensor, emb) -> torch.Tensor:
    """blocks.CondSequential.forward."""
    for layer in layers:
        if isinstance(layer, CondResBlock):
            x = official_cond_res_block(layer, x, emb)
        elif isinstance(layer, AttentionBlock):
            x = official_attention(layer, x)
        else:
            x = layer(x)
    return x


def official_forward(unet: DiffusedHeadsUNet, x: torch.Tensor, timesteps: torch.Tensor, x_cond: torch.Tensor,
                     motion_frames: torch.Tensor | None = None, audio_emb: torch.Tensor | None = None) -> torch.Tensor:
    """unet.UNet.forward (id_condition_type 'frame', as released)."""
    t_emb = official_time_embed(unet.time_embed, timesteps, dtype=x.dtype)
    if audio_emb is not None:
        a_emb = audio_emb.reshape(audio_emb.shape[0], -1)
        a_emb = unet.audio_embed(a_emb)
    else:
        a_emb = 0
    if motion_frames is not None:
        x = torch.cat([x, motion_frames], dim=1)
    x = torch.cat([x, x_cond], dim=1)
    emb = t_emb + a_emb if unet.config.audio_condition_type == "pre_gn" else (t_emb, a_emb)
    hs = []
    h = x
    for module in unet.input_blocks:
        h = official_cond_sequential(module, h, emb)
        hs.append(h)
    h = official_cond_sequential(unet.middle_block, h, emb)
    for module in unet.output_blocks:
        h = torch.cat([h, hs.pop()], dim=1)
        h = official_cond_sequential(module, h, emb)
    return unet.out(h)


# -- the official diffusion (train branch models/diffusion.py) ---------------------------------------------
class OfficialDiffusion:
    """`Diffusion` after `space(steps)`: float32 cosine schedule, per-step gathers moved to the device."""

    def __init__(self, backbone, unet: DiffusedHeadsUNet, n_timesteps: int, steps: int, randn_like=torch.randn_like):
        c = unet.config
        self.nn_backbone, self.unet, self.randn_like = backbone, unet, randn_like
        self.n_timesteps, self.in_channels, self.out_channels = n_timesteps, c.in_channels, c.out_channels
        self.x_shape = (c.image_size, c.image_size)
        self.n_motion_frames, self.n_audio_motion_embs = c.n_motion_frames, c.n_audio_motion_embs
        self.motion_channels = c.motion_channels
        self.motion_transforms = to_grayscale if c.grayscale_motion else (lambda frame: frame)
        self.timesteps = torch.arange(n_timesteps)
        self.beta = self.get_beta_schedule().type(torch.float32)
        self.set_params()
        self.space(steps)

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    def get_beta_schedule(self, max_beta=0.999):
        alpha_bar = lambda t: np.cos((t + 0.008) / 1.008 * np.pi / 2) ** 2   # noqa: E731 (official)
        betas = []
        for i in range(self.n_timesteps):
            t1 = i / self.n_timesteps
            t2 = (i + 1) / self.n_timesteps
            betas.append(min(1 - alpha_bar(t2) / alpha_bar(t1), max_beta))
        return torch.tensor(betas)

    def set_params(self):
        self.alpha = 1 - self.beta
        self.alpha_bar = torch.cumprod(self.alpha, dim=0)
        self.alpha_bar_prev = torch.cat([torch.ones(1,), self.alpha_bar[:-1]])
        self.beta_tilde = self.beta * (1.0 - self.alpha_bar_prev) / (1.0 - self.alpha_bar)
        self.log_beta_tilde_clipped = torch.log(torch.cat([self.beta_tilde[1, None], self.beta_tilde[1:]]))
        self.coef1_x0 = torch.sqrt(1.0 / self.alpha_bar)
        self.coef2_x0 = torch.sqrt(1.0 / self.alpha_bar - 1)
        self.coef1_q = self.beta * torch.sqrt(self.alpha_bar_prev) / (1.0 - self.alpha_bar)
        self.coef2_q = (1.0 - self.alpha_bar_prev) * torch.sqrt(self.alpha) / (1.0 - self.alpha_bar)

    def space(self, n_timesteps_new):
        self.timesteps = self.space_timesteps(self.n_timesteps, n_timesteps_new)
        self.n_timesteps = n_timesteps_new
        self.beta = self.get_spaced_beta()
        self.beta = torch.where(self.beta >= 1, torch.tensor(0.999), self.beta)   # the one deviation (NaN fix)
        self.set_params()

    def space_timesteps(self, n_timesteps, target_timesteps):
        frac_stride = (n_timesteps - 1) / (target_timesteps - 1)
        cur_idx = 0.0
        taken_steps = []
        for _ in range(target_timesteps):
            taken_steps.append(round(cur_idx))
            cur_idx += frac_stride
        return taken_steps

    def get_spaced_beta(self):
        last_alpha_cumprod = 1.0
        new_beta = []
        for i, alpha_cumprod in enumerate(self.alpha_bar):
            if i in self.timesteps:
                new_beta.append(1 - alpha_cumprod / last_alpha_cumprod)
                last_alpha_cumprod = alpha_cumprod
        return torch.tensor(new_beta)

    def broadcast(self, arr, dim=4):
        while arr.dim() < dim:
            arr = arr[:, None]
        return arr.to(self.device)

    @staticmethod
    def gather(arr: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return arr[ids.to(arr.device)]       # official: arr[ids] (CPU arrays; ids on the device)

    def sample(self, x_cond, audio_emb, max_frames=None):
        with torch.no_grad():
            n_frames = audio_emb.shape[1]
            xT = torch.randn(x_cond.shape[0], n_frames, self.in_channels, self.x_shape[0], self.x_shape[1])
            audio_ids = [0] * self.n_audio_motion_embs
            for i in range(self.n_audio_motion_embs + 1):
                audio_ids += [i]
            motion_frames = [self.motion_transforms(x_cond) for _ in range(self.n_motion_frames)]
            motion_frames = torch.cat(motion_frames, dim=1)
            samples = []
            for i in range(n_frames if max_frames is None else min(n_frames, max_frames)):   # benchmark: cut short
                sample_frame = self.sample_loop(xT[:, i].to(x_cond.device), x_cond,
                                                motion_frames=motion_frames, audio_emb=audio_emb[:, audio_ids])
                samples.append(sample_frame.unsqueeze(1))
                motion_frames = torch.cat([motion_frames[:, self.motion_channels:, :],
                                           self.motion_transforms(sample_frame)], dim=1)
                audio_ids = audio_ids[1:] + [min(i + self.n_audio_motion_embs + 1, n_frames - 1)]
        return torch.cat(samples, dim=1)

    def sample_loop(self, xT, x_cond, motion_frames=None, audio_emb=None):
        p_bar = self.timesteps
        xt = xT
        for i, t in reversed(list(enumerate(p_bar))):
            timesteps = torch.tensor([t] * xT.shape[0]).to(xT.device)
            timesteps_ids = torch.tensor([i] * xT.shape[0]).to(xT.device)
            nn_out = self.nn_backbone(xt, timesteps, x_cond, motion_frames=motion_frames, audio_emb=audio_emb)
            mean, logvar = self.get_p_params(xt, timesteps_ids, nn_out)
            noise = self.randn_like(xt) if t > 0 else torch.zeros_like(xt)
            xt = mean + noise * torch.exp(logvar / 2)
        return xt

    def get_p_params(self, xt, timesteps, nn_out):
        if self.in_channels == self.out_channels:
            eps_pred = nn_out
            p_logvar = self.broadcast(torch.log(self.gather(self.beta, timesteps)))
        else:
            eps_pred, nu = nn_out.chunk(2, 1)
            nu = (nu + 1) / 2
            p_logvar = nu * self.broadcast(torch.log(self.gather(self.beta, timesteps))) + \
                (1 - nu) * self.broadcast(self.gather(self.log_beta_tilde_clipped, timesteps))
        p_mean, _ = self.get_q_params(xt, timesteps, eps_pred=eps_pred)
        return p_mean, p_logvar

    def get_q_params(self, xt, timesteps, eps_pred=None, x0=None):
        if x0 is None:
            coef1_x0 = self.broadcast(self.gather(self.coef1_x0, timesteps))
            coef2_x0 = self.broadcast(self.gather(self.coef2_x0, timesteps))
            x0 = coef1_x0 * xt - coef2_x0 * eps_pred
            x0 = x0.clamp(-1, 1)
        coef1_q = self.broadcast(self.gather(self.coef1_q, timesteps))
        coef2_q = self.broadcast(self.gather(self.coef2_q, timesteps))
        q_mean = coef1_q * x0 + coef2_q * xt
        q_logvar = self.broadcast(self.gather(self.log_beta_tilde_clipped, timesteps))
        return q_mean, q_logvar


# -- the two frame loops ---------------------------------------------------------------------------------
def official_video(unet, backbone, config, steps, x_cond, audio_emb, seed, context) -> torch.Tensor:
    """Diffusion.sample of one clip, stopped after its first frame: `torch.manual_seed(seed)`, then the official draws (on CUDA the step
    noise is drawn from the same CPU stream and moved, so that it equals the CPU run's)."""
    on_cpu = x_cond.device.type == "cpu"
    randn_like = torch.randn_like if on_cpu else (lambda x: torch.randn(x.shape, dtype=x.dtype).to(x.device))
    diffusion = OfficialDiffusion(backbone, unet, config.n_timesteps, steps, randn_like)
    torch.manual_seed(seed)
    with context():
        return diffusion.sample(x_cond, audio_emb, max_frames=1)[:, 0].float()    # (B, 3, S, S): the first frame


def ours_video(pipeline: DiffusedHeadsPipeline, denoiser, schedule, x_cond, audio_emb, seed, context) -> torch.Tensor:
    """DiffusedHeadsPipeline._frames on `_loop(...)`: sample_frames under inference_mode and the compute
    context, the noise of `SeededFrameNoise` (one stream per video, as `talk_queue`); the clip's first frame."""
    c = pipeline.config.unet
    loop = FrameLoop(x_cond, audio_emb, n_motion_frames=c.n_motion_frames, half_window=c.n_audio_motion_embs,
                     grayscale_motion=c.grayscale_motion, stabilize=pipeline.stabilize, segment_len=pipeline.segment_len)
    noise = SeededFrameNoise(seed, audio_emb.shape[1], tuple(x_cond.shape))
    with torch.inference_mode(), context():
        return next(iter(sample_frames(denoiser, schedule, loop, noise))).float()


# -- helpers ----------------------------------------------------------------------------------------------
def relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    ours, reference = ours.float(), reference.float()
    return float((ours - reference).norm() / (reference - reference.mean()).norm())


def load() -> str:
    return "/".join(f"{value:.1f}" for value in os.getloadavg())


def identities(count: int, size: int, device: torch.device) -> torch.Tensor:
    """(count, 3, size, size) in [-1, 1]: the shared portrait and driving frames, resized (area)."""
    photo, frames = load_crops(max(count - 1, 0))
    images = np.stack([photo, *frames][:count])
    tensor = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    return F.interpolate(tensor, size=(size, size), mode="area").to(device)


def fmt(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.2f} s" if seconds >= 0.1 else f"{seconds * 1e3:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", choices=sorted(PRESETS), default="crema", help="UNet preset (default crema)")
    parser.add_argument("--steps-check", type=int, default=2, help="DDPM steps of the short run / check (default 2)")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds of the short run (default 1)")
    parser.add_argument("--step-samples", type=int, default=3,
                        help="interleaved single UNet evaluations of each kind (default 3; 0: none)")
    parser.add_argument("--batch", type=int, default=4,
                        help="videos side by side for the talk-queue figure (default 4; 1: skip it)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--precision", choices=("exact", "fast"), default="exact",
                        help="exact: float32; fast: autocast (float16 on CUDA, bfloat16 on CPUs)")
    parser.add_argument("--dtype", choices=("float16", "bfloat16"), default=None,
                        help="the autocast dtype of --precision fast (default: the pipeline's choice)")
    parser.add_argument("--seed", type=int, default=0, help="weights and noise seed (default 0)")
    args = parser.parse_args()
    if args.dtype and args.precision != "fast":
        parser.error("--dtype needs --precision fast")
    if args.steps_check < 2 or args.rounds < 1 or args.batch < 1 or args.step_samples < 0:
        parser.error("--steps-check >= 2, --rounds >= 1, --batch >= 1, --step-samples >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)

    config = PRESETS[args.config]()
    if config.unet.id_condition_type != "frame" or config.unet.audio_condition_type == "attention":
        raise SystemExit("the official-style forward here covers identity 'frame' and pre/post/double_pre_gn audio")
    torch.manual_seed(args.seed)
    unet = DiffusedHeadsUNet(config.unet)
    randomize(unet)
    pipeline = DiffusedHeadsPipeline(unet, None, config, steps=args.steps_check, seed=args.seed, device=args.device,
                                     precision=args.precision)
    device, unet = pipeline.device, pipeline.model          # placed on the device, eval mode

    def context() -> contextlib.AbstractContextManager:
        if args.dtype is None:
            return compute_context(device, args.precision)
        stack = contextlib.ExitStack()
        stack.enter_context(backend_flags(device, args.precision))
        stack.enter_context(torch.autocast(device.type, dtype=getattr(torch, args.dtype)))
        return stack

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    autocast = "none (float32)" if args.precision == "exact" else \
        (args.dtype or ("bfloat16" if device.type == "cpu" else "float16")) + " autocast"
    parameters = sum(p.numel() for p in unet.parameters())
    print(f"Diffused Heads, config {args.config} ({parameters / 1e6:.1f}M parameters, {config.unet.image_size} px, "
          f"T = {config.n_timesteps}), random weights (seed {args.seed}); device {device}, precision {args.precision} "
          f"({autocast}), torch {torch.__version__}, {torch.get_num_threads()} threads (OMP_WAIT_POLICY "
          f"{os.environ.get('OMP_WAIT_POLICY', 'unset')}); load average (1/5/15 min) at start {load()} on "
          f"{os.cpu_count()} CPUs")

    size, n_frames = config.unet.image_size, config.unet.n_audio_motion_embs + 1   # the shortest clip the official
    # window takes; only its first frame is generated
    generator = torch.Generator().manual_seed(args.seed + 1)
    x_cond = identities(max(args.batch, 1), size, device)
    audio = (0.5 * torch.randn(max(args.batch, 1), n_frames, config.unet.audio_dim, generator=generator)).to(device)
    schedule = make_schedule(config.n_timesteps, args.steps_check)
    official_schedule = OfficialDiffusion(None, unet, config.n_timesteps, args.steps_check)
    if official_schedule.timesteps != schedule.timestep_map.tolist() or \
            not torch.equal(official_schedule.beta, schedule.betas.float()):
        print("note: the official respacing differs from make_schedule's:",
              official_schedule.timesteps, schedule.timestep_map.tolist())
    backbone = lambda *a, **k: official_forward(unet, *a, **k)     # noqa: E731
    x1, a1 = x_cond[:1], audio[:1]

    # warm-up (allocator, oneDNN kernel selection): one UNet evaluation of each side
    t_warm = torch.full((1,), config.n_timesteps // 2, dtype=torch.long, device=device)
    motion = torch.cat([x1] * config.unet.n_motion_frames, dim=1)
    audio_window = a1[:, [0] * (2 * config.unet.n_audio_motion_embs + 1)]
    with torch.no_grad(), context():
        backbone(torch.randn_like(x1), t_warm, x1, motion_frames=motion, audio_emb=audio_window)
    with torch.inference_mode(), context():
        unet(torch.randn_like(x1), t_warm, x1, motion, audio_window)
    sync()

    # -- the short run: 1 frame at --steps-check steps per side, interleaved rounds ------------------------
    official_name, ours_name = "(a) official loop", "(b) ours (sample_frames)"
    runs = {official_name: lambda: official_video(unet, backbone, config, args.steps_check, x1, a1, args.seed, context),
            ours_name: lambda: ours_video(pipeline, unet, schedule, x1, a1, args.seed, context)}
    seconds = {name: [] for name in runs}
    cpu_share = {name: [] for name in runs}
    frames = {}
    for round_ in range(args.rounds):
        for name in (list(runs) if round_ % 2 == 0 else list(reversed(runs))):
            sync()
            start, cpu = time.perf_counter(), time.process_time()
            frame = runs[name]()
            sync()
            wall = time.perf_counter() - start
            seconds[name].append(wall)
            cpu_share[name].append((time.process_time() - cpu) / wall)
            frames.setdefault(name, frame)
    print(f"short run: 1 frame at {args.steps_check} steps per side, {args.rounds} round(s), interleaved")
    print(f"  {'loop':28s} {'s/frame: best [range]':>24s} {'CPU time/wall':>14s}")
    for name, values in seconds.items():
        print(f"  {name:28s} {min(values):9.2f} [{min(values):.2f}-{max(values):.2f}] "
              f"{min(cpu_share[name]):8.2f}-{max(cpu_share[name]):.2f}")
    tolerance = TOLERANCE if args.precision == "exact" else FAST_TOLERANCE
    error = relative_error(frames[ours_name], frames[official_name])
    print(f"check (b) vs (a), same x_T and noise, the frame after {args.steps_check} steps (random weights: no "
          f"image, std {frames[official_name].std().item():.3g}): rel {error:.1e} -> "
          f"{'OK' if error <= tolerance else 'FAIL'} (tolerance {tolerance:.0e})")

    # -- single UNet evaluations, interleaved -------------------------------------------------------------
    step_seconds = {}
    if args.step_samples:
        kinds = {"(a) official, batch 1": (torch.no_grad, backbone, 1), "(b) ours, batch 1": (torch.inference_mode, unet, 1)}
        if args.batch > 1:
            kinds[f"(b) ours, batch {args.batch}"] = (torch.inference_mode, unet, args.batch)
        step_seconds = {name: [] for name in kinds}
        step_cpu = {name: [] for name in kinds}
        step_errors = []
        names = list(kinds)
        window_ids = [0] * (2 * config.unet.n_audio_motion_embs + 1)
        for sample in range(args.step_samples):
            t_value = (379 * sample + config.n_timesteps // 3) % config.n_timesteps
            x_all = torch.randn((args.batch, 3, size, size), generator=generator).to(device)   # batch 1: x_all[:1]
            outputs = {}
            for name in names[sample % len(names):] + names[:sample % len(names)]:     # rotating order
                mode, function, batch = kinds[name]
                x, cond, window = x_all[:batch], x_cond[:batch], audio[:batch, window_ids]
                frames_in = torch.cat([cond] * config.unet.n_motion_frames, dim=1)
                with mode(), context():
                    sync()
                    start, cpu = time.perf_counter(), time.process_time()
                    t = torch.tensor([t_value] * batch).to(device)
                    if function is backbone:
                        out = function(x, t, cond, motion_frames=frames_in, audio_emb=window)
                    else:
                        out = function(x, t, cond, frames_in, window)
                    sync()
                    wall = time.perf_counter() - start
                    step_seconds[name].append(wall)
                    step_cpu[name].append((time.process_time() - cpu) / wall)
                outputs[name] = out
            step_errors.append(relative_error(outputs[names[1]], outputs[names[0]]))   # same input and t
        print(f"single UNet evaluations, {args.step_samples} of each, interleaved (s): min / median / max, "
              f"CPU time/wall")
        for name, values in step_seconds.items():
            print(f"  {name:24s} {min(values):8.3f} / {statistics.median(values):8.3f} / {max(values):8.3f}   "
                  f"{min(step_cpu[name]):.2f}-{max(step_cpu[name]):.2f}")
        official_steps, ours_steps = step_seconds[names[0]], step_seconds[names[1]]
        print(f"  official/ours per step: min {min(official_steps) / min(ours_steps):.2f}x, median "
              f"{statistics.median(official_steps) / statistics.median(ours_steps):.2f}x; UNet output rel "
              f"{max(step_errors):.1e} -> {'OK' if max(step_errors) <= tolerance else 'FAIL'}")

    # -- the work outside the UNet: both loops with the UNet replaced by a cached output -----------------
    with torch.no_grad():
        cached = torch.randn((1, config.unet.out_channels, size, size), generator=generator).to(device).clamp(-1, 1)
    official_stub = lambda *a, **k: cached      # noqa: E731
    ours_stub = lambda *a: cached               # noqa: E731
    remainder = {}
    for steps in VIDEO_STEPS:
        stub_schedule = make_schedule(config.n_timesteps, steps)
        best = {}
        for _ in range(2):
            for name, run in ((official_name, lambda: official_video(unet, official_stub, config, steps, x1, a1,
                                                                     args.seed, context)),
                              (ours_name, lambda: ours_video(pipeline, ours_stub, stub_schedule, x1, a1, args.seed,
                                                             context))):
                sync()
                start = time.perf_counter()
                run()
                sync()
                best[name] = min(best.get(name, math.inf), time.perf_counter() - start)
        remainder[steps] = best
    print("work outside the UNet per frame (sampler arithmetic, gathers, noise, bookkeeping; UNet replaced by a "
          "cached output), best of 2:")
    print("  " + ", ".join(f"{s} steps: (a) {fmt(r[official_name])}, (b) {fmt(r[ours_name])}"
                           for s, r in remainder.items()))

    if step_seconds:
        step_a, step_b = min(step_seconds[names[0]]), min(step_seconds[names[1]])
        predicted = {name: args.steps_check * step for name, step in ((official_name, step_a), (ours_name, step_b))}
        print(f"  (short run consistency: measured best {min(seconds[official_name]):.2f} / "
              f"{min(seconds[ours_name]):.2f} s vs {args.steps_check} x best step = "
              f"{predicted[official_name]:.2f} / {predicted[ours_name]:.2f} s)")
        print(f"seconds per second of video ({FPS} fps) = {FPS} x (steps x best UNet step + the per-frame remainder "
              f"above), computed (a full 100-step second is {FPS * 100} UNet evaluations: "
              f"~{fmt(FPS * 100 * step_b)} of ours on this machine, not run):")
        print(f"  {'steps':>5s} {'(a) official':>14s} {'(b) ours':>14s} {'official/ours':>14s}")
        for steps in VIDEO_STEPS:
            video_a = FPS * (steps * step_a + remainder[steps][official_name])
            video_b = FPS * (steps * step_b + remainder[steps][ours_name])
            print(f"  {steps:5d} {fmt(video_a):>14s} {fmt(video_b):>14s} {video_a / video_b:13.2f}x")
        if args.batch > 1:
            step_q = min(step_seconds[names[2]])
            per_video_1, per_video_q = 1 / (100 * step_b), 1 / (100 * step_q)
            print(f"talk queue (independent videos side by side; one video cannot be batched: frame n needs n-1, n-2), "
                  f"UNet time at 100 steps: batch 1 {per_video_1:.2e} frames/s per video; batch {args.batch} "
                  f"{per_video_q:.2e} frames/s per video, {args.batch * per_video_q:.2e} in all -> throughput "
                  f"x{args.batch * per_video_q / per_video_1:.2f} (best step {step_b:.3f} s at batch 1, "
                  f"{step_q:.3f} s at batch {args.batch}: {step_q / step_b:.2f}x the time for {args.batch}x the frames)")
    print(f"load average at end {load()}")


if __name__ == "__main__":
    main()
