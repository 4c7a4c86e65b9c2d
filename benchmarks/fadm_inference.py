"""Benchmark: FADM inference speed against the official denoiser loop, at the released configuration
(diffusion.pth layout: 64-channel UNet at 256x256, multipliers 1,2,4,4,8,8, attention at 16 px, T = 100;
DECA's ResNet-50 encoder; face-vid2vid vox-256 as the coarse animator), random weights, float32.

Seconds per denoiser step and per output frame of
  (a) the official loop: `demo.py` `get_result` -> `DiffusionGenerator.refer` -> `GaussianDiffusion.
      generalized_steps` (DDIM, eta 1, all 100 steps, the caller's noise list), written with our modules under
      their official names and doing the official per-step work: every step runs the official `UNet.forward`,
      i.e. the whole `condition_net` (both colour encodings and the three coarse-frame encodings at 256 px are
      recomputed at every step, as there), x*sigmoid(x), the einsum self-attention, and the kept states are
      concatenated every 11 steps; per frame DECA encodes the source and the coarse frame (batch 1, no_grad);
  (b) ours, `FADMPipeline.refine_crops` at steps None (the official sampler), `prepare_source` included;
  (c) ours respaced to 25 steps (a different sampler: fewer steps, so its per-frame ratio is not a like-for-like
      speed-up; its per-step time is).
All three refine the same coarse frames (face-vid2vid's output for the shared test clip) with the same x_T and
per-step noise (the pipeline's seeded noise, handed to (a) as the official `noise_list`). The loops run
`--rounds` times, interleaved (the order reversed every other round); the best round counts and the range is
printed, with the process's CPU time per wall second (about the thread count on an idle machine, less when
other jobs take the cores) and the load average. Then `--step-samples` single denoiser steps of (a) and of
(b), interleaved, give the per-step time without any per-frame work (min / median / max).

On a shared CPU, time both loops in one run, as here: with other jobs running, OpenMP's default spin-waiting
makes multi-threaded steps 2-3x slower and very uneven (the threads wait for each other at every operator);
`OMP_WAIT_POLICY=PASSIVE` or `--threads 1` give steadier figures.

Check: (b)'s final state before the clamp must equal (a)'s, rel = ||b - a|| / ||a - mean(a)|| <= 1e-4
(float32; they differ only in rounding: summation order, fused SiLU), and the single steps' epsilon likewise.

    python benchmarks/fadm_inference.py [--frames 1] [--rounds 2] [--step-samples 5] [--threads N] [--device cpu]
"""
from __future__ import annotations

import argparse
import importlib
import math
import os
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmark_media import load_crops
from faceanim.media.convert import to_tensor
from faceanim.methods.fadm import DECAEncoder, FADMModel, FADMPipeline, coarse_condition
from faceanim.methods.fadm.condition import ConditionNetwork
from faceanim.methods.fadm import config as fadm_config
from faceanim.methods.fadm.deca import attribute
from faceanim.nn.unet_blocks import Block, ResnetBlock, ResnetBlocWithAttn, SelfAttention, Swish, TimeEmbedding

TOLERANCE = 1e-4


def fadm_vox256():
    """The configuration of the official diffusion.pth (preset `vox256`, formerly `released`)."""
    preset = getattr(fadm_config, "vox256", None) or getattr(fadm_config, "released")
    return preset()


def facevid_parts():
    """FaceVidPipeline, FaceVidModel and the vox-256 config, from `faceanim.methods.facevid` or, where the
    networks still live there, `faceanim.warping.facevid`."""
    found = {}
    for module_name in ("faceanim.methods.facevid", "faceanim.methods.facevid.config", "faceanim.warping.facevid"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for name in ("FaceVidPipeline", "FaceVidModel", "vox256"):
            if name not in found and hasattr(module, name):
                found[name] = getattr(module, name)
    return found["FaceVidPipeline"], found["FaceVidModel"], found["vox256"]


# -- the official forward, on our modules (official attribute names; modules/diffusion/*.py) ---------------
def swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)                                             # util.Swish


def official(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """One layer of an official nn.Sequential, computed as the official class does."""
    if isinstance(module, Swish):
        return swish(x)
    if isinstance(module, TimeEmbedding):                                   # util.TimeEmbedding (torch.ger)
        angles = torch.outer(x.view(-1).float(), module.inv_freq)
        return torch.cat([angles.sin(), angles.cos()], dim=-1).view(*x.shape, module.dim)
    if isinstance(module, Block):                                           # util.Block: GN, Swish, Dropout, conv
        return sequential(module.block, x)
    if isinstance(module, ResnetBlock):                                     # condition_deal.ResnetBlock
        return resnet_block(module, x)
    if isinstance(module, nn.Sequential):
        return sequential(module, x)
    return module(x)                                                        # torch layers


def sequential(layers: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    for layer in layers:
        x = official(layer, x)
    return x


def resnet_block(block: ResnetBlock, x: torch.Tensor, time_emb: torch.Tensor | None = None) -> torch.Tensor:
    h = official(block.block1, x)                                           # util.ResnetBlock.forward
    if block.mlp is not None:
        h += sequential(block.mlp, time_emb)[:, :, None, None]
    h = official(block.block2, h)
    return h + block.res_conv(x)


def self_attention(attention: SelfAttention, x: torch.Tensor) -> torch.Tensor:
    batch, channel, height, width = x.shape                                 # util.SelfAttention, n_head 1
    qkv = attention.qkv(attention.norm(x)).view(batch, 1, channel * 3, height, width)
    query, key, value = qkv.chunk(3, dim=2)
    weights = torch.einsum("bnchw, bncyx -> bnhwyx", query, key).contiguous() / math.sqrt(channel)
    weights = torch.softmax(weights.view(batch, 1, height, width, -1), -1).view(batch, 1, height, width, height, width)
    out = torch.einsum("bnhwyx, bncyx -> bnchw", weights, value).contiguous()
    return attention.out(out.view(batch, channel, height, width)) + x


def resnet_bloc_with_attn(layer: ResnetBlocWithAttn, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    x = resnet_block(layer.res_block, x, t)
    return x if layer.attn is None else self_attention(layer.attn, x)


def condition_net(net: ConditionNetwork, warp_source, color_cond, attribute_, t):
    """condition_deal.condition_net.forward: all of it, at every step."""
    generated = official(net.pre_conv_color, color_cond["generated"])
    driving = official(net.pre_conv_color, color_cond["driving"])
    feature_loss = torch.abs(generated - driving).mean()
    motion = net.motion_cond
    mixed = sequential(motion.condition, torch.cat((attribute_, sequential(motion.time_mlp, t)), dim=1))
    motion_w = mixed + 0.4 * F.adaptive_max_pool1d(attribute_.unsqueeze(1), motion.inner_dim).squeeze(1)
    levels = len(warp_source) - 1
    conds = []
    for i, level in enumerate(warp_source):
        weight = (levels - i) / levels * torch.exp(motion_w - 0.3) + i / levels * torch.exp(-motion_w + 0.3)
        deal = net.deal_cond                                                # ResnetBlockCondition.forward
        if level.shape[-2:] != driving.shape[-2:]:
            level = F.interpolate(level, size=driving.shape[-2:], mode="bilinear")
        encoded = official(deal.block2, deal.block1(level)) + 0.4 * deal.res_conv(driving)
        conds.append(encoded * weight[:, :, None, None])
    out = torch.cat((conds[0] + conds[1] + conds[2], generated + 0.2 * driving), dim=1)
    return official(net.resnet, out), feature_loss


def unet_forward(unet: nn.Module, x: torch.Tensor, time: torch.Tensor, condition_input: dict):
    """core_net.UNet.forward."""
    t = official(unet.time_mlp, time)
    c, color_loss = condition_net(unet.condition_conv, condition_input["warping"], condition_input["generated"],
                                  condition_input["attribute"], t)
    x = torch.cat((c, x), dim=1)
    feats = []
    for layer in unet.downs:
        x = resnet_bloc_with_attn(layer, x, t) if isinstance(layer, ResnetBlocWithAttn) else layer(x)
        feats.append(x)
    for layer in unet.mid:
        x = resnet_bloc_with_attn(layer, x, t)
    for layer in unet.ups:
        if isinstance(layer, ResnetBlocWithAttn):
            x = resnet_bloc_with_attn(layer, torch.cat((x, feats.pop()), dim=1), t)
        else:
            x = layer.conv(F.interpolate(x, scale_factor=2, mode="nearest"))     # nn.Upsample + conv
    return official(unet.final_conv, x), color_loss


def extract(values: torch.Tensor, t: torch.Tensor, shape) -> torch.Tensor:
    return values.gather(-1, t).reshape(t.shape[0], *((1,) * (len(shape) - 1)))


def generalized_steps(diffusion: nn.Module, x_in: torch.Tensor, condition_input: dict, noise_list) -> torch.Tensor:
    """diffusion.GaussianDiffusion.generalized_steps (continous=True, as `refer` calls it)."""
    sample_inter = 1 | (diffusion.num_timesteps // 10)
    img = ret_img = x_in
    for i in reversed(range(diffusion.num_timesteps)):
        t = torch.full((x_in.shape[0],), i, device=x_in.device, dtype=torch.long)
        at = extract(diffusion.alphas_cumprod, t, img.shape)
        at_next = extract(diffusion.alphas_cumprod_prev, t, img.shape)
        et, _ = unet_forward(diffusion.denoise_fn, img, t, condition_input)
        x0_t = (img - et * (1 - at).sqrt()) / at.sqrt()
        c1 = 1.0 * extract(diffusion.ddim_c1, t, img.shape)
        c2 = ((1 - at_next) - c1 ** 2).sqrt()
        img = at_next.sqrt() * x0_t + c1 * noise_list[i] + c2 * et
        if i % sample_inter == 0:
            ret_img = torch.cat([ret_img, img], dim=0)
    return ret_img


def official_condition(d: torch.Tensor, attr: torch.Tensor) -> dict:
    """demo.get_result's condition_img (its unused 'source' entry left out)."""
    low_feat = [F.interpolate(d, size=(32, 32)), F.interpolate(d, size=(64, 64)), F.interpolate(d, size=(128, 128))]
    g = F.interpolate(d, size=(32, 32))
    g_dict = {"generated": F.interpolate(g, size=(256, 256)), "driving": F.interpolate(g, size=(256, 256))}
    return {"generated": g_dict, "warping": low_feat, "attribute": attr}


@torch.no_grad()
def official_loop(model: FADMModel, deca: DECAEncoder, photo: np.ndarray, coarse: list[np.ndarray],
                  test_noise: torch.Tensor, noise_list: list[torch.Tensor], device: torch.device,
                  finals: list | None = None) -> list[torch.Tensor]:
    """demo.make_animation's refinement: get_result for each coarse frame, batch 1; `finals` gets the last
    state before the clamp."""
    s = frame_tensor(photo, device)
    results = []
    for crop in coarse:
        d = frame_tensor(crop, device)
        attr = attribute(deca.encode(s), deca.encode(d))                    # deca(source_pic=s, driving_pic=d)
        img = generalized_steps(model.diffusion, test_noise, official_condition(d, attr), noise_list)
        if finals is not None:
            finals.append(img[10:11])
        results.append(img[10:11].clamp(0, 1))
    return results


def ours_loop(pipeline: FADMPipeline, photo: np.ndarray, coarse: list[np.ndarray], steps: int | None,
              finals: list | None = None) -> list[np.ndarray]:
    pipeline.steps = steps
    last = {}
    pipeline.step_callback = None if finals is None else (lambda step: last.__setitem__("x", step.x))
    frames = []
    for frame in pipeline.refine_crops(coarse, pipeline.prepare_source(photo)):
        frames.append(frame)
        if finals is not None:
            finals.append(last["x"])
    pipeline.step_callback = None
    return frames


def frame_tensor(crop: np.ndarray, device: torch.device) -> torch.Tensor:
    """(1, 3, S, S) in [0, 1], converted as the pipeline converts its crops."""
    return to_tensor(np.stack([crop]), device=device)


def relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours - reference).norm() / (reference - reference.mean()).norm())


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def load() -> str:
    return "/".join(f"{value:.1f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=1, help="coarse frames refined per loop (default 1)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of the three loops (default 2)")
    parser.add_argument("--step-samples", type=int, default=5,
                        help="interleaved single denoiser steps of (a) and (b) (default 5; 0: none)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads (OMP_WAIT_POLICY "
          f"{os.environ.get('OMP_WAIT_POLICY', 'unset')}), {args.frames} frame(s), {args.rounds} rounds; load average "
          f"(1/5/15 min) at start {load()} on {os.cpu_count()} CPUs")

    FaceVidPipeline, FaceVidModel, facevid_vox256 = facevid_parts()
    torch.manual_seed(0)
    photo, driving = load_crops(args.frames)
    coarse_pipeline = FaceVidPipeline(FaceVidModel(facevid_vox256()).eval(), device=device, batch_size=1)
    coarse_source = coarse_pipeline.prepare_source(photo)
    coarse: list[np.ndarray] = []
    coarse_seconds = timed(lambda: coarse.extend(coarse_pipeline.animate_crops(coarse_source, driving, driving[0])))
    torch.manual_seed(0)
    model, deca = FADMModel(fadm_vox256()).eval().to(device), DECAEncoder().eval().to(device)
    pipeline = FADMPipeline(model, deca, device=device, batch_size=1, seed=0)
    x_T, noise = pipeline.noise()
    noise_list = [noise(i, x_T) for i in range(model.diffusion.num_timesteps)]   # demo.set_noise, same draws
    steps_total = model.diffusion.num_timesteps

    # warm-up (allocator, oneDNN kernel selection): two steps of each
    pipeline.steps = 2
    list(pipeline.refine_crops(coarse[:1], pipeline.prepare_source(photo)))
    with torch.no_grad():
        d = frame_tensor(coarse[0], device)
        condition_input = official_condition(d, attribute(deca.encode(frame_tensor(photo, device)),
                                                          deca.encode(d)))
        unet_forward(model.diffusion.denoise_fn, x_T, torch.full((1,), 50, dtype=torch.long, device=device),
                     condition_input)

    official_name, ours_name = f"(a) official loop, {steps_total} steps", f"(b) ours, {steps_total} steps (official)"
    loops = {official_name: (steps_total, lambda finals: official_loop(
                 model, deca, photo, coarse, x_T, noise_list, device, finals)),
             ours_name: (steps_total, lambda finals: ours_loop(pipeline, photo, coarse, None, finals)),
             "(c) ours, respaced 25 steps": (min(25, steps_total), lambda finals: ours_loop(
                 pipeline, photo, coarse, 25, finals))}
    seconds = {name: [] for name in loops}
    cpu_share = {name: [] for name in loops}
    finals = {name: [] for name in loops}
    for round_ in range(args.rounds):
        order = list(loops) if round_ % 2 == 0 else list(reversed(loops))   # no loop always goes first
        for name in order:
            start, cpu = time.perf_counter(), time.process_time()
            loops[name][1](finals[name] if round_ == 0 else None)
            sync()
            wall = time.perf_counter() - start
            seconds[name].append(wall / len(coarse))
            cpu_share[name].append((time.process_time() - cpu) / wall)

    print(f"coarse stage (face-vid2vid vox-256, shared by all): {coarse_seconds / len(coarse):.2f} s/frame")
    print(f"{'loop':38s} {'s/frame: best [range]':>22s} {'s/step: best [range]':>22s} {'CPU time/wall':>14s}")
    for name, values in seconds.items():
        steps = loops[name][0]
        print(f"{name:38s} {min(values):7.1f} [{min(values):.1f}-{max(values):.1f}] "
              f"{min(values) / steps:8.2f} [{min(values) / steps:.2f}-{max(values) / steps:.2f}] "
              f"{min(cpu_share[name]):8.2f}-{max(cpu_share[name]):.2f}")
    official_best, ours_best, fast_best = (min(v) for v in seconds.values())
    fast_steps = loops["(c) ours, respaced 25 steps"][0]
    print(f"ours/official (best rounds; < 1: ours faster): (b) {ours_best / official_best:.2f}x per frame and per "
          f"step; (c) {fast_best / official_best:.2f}x per frame, "
          f"{(fast_best / fast_steps) / (official_best / steps_total):.2f}x per step")

    official_final = torch.cat(finals[official_name])
    ours_final = torch.cat(finals[ours_name])
    error = relative_error(ours_final, official_final)
    print(f"check (b) vs (a), same x_T and noise, final state before the clamp (random weights: no image, std "
          f"{official_final.std().item():.3g}): rel {error:.1e} -> {'OK' if error <= TOLERANCE else 'FAIL'} "
          f"(tolerance {TOLERANCE:.0e})")

    if args.step_samples:
        step_seconds = {"(a) official step": [], "(b) ours step": []}
        step_errors = []
        condition = coarse_condition(d, condition_input["attribute"])
        with torch.inference_mode():                                        # as in the pipeline: frame work cached
            model.denoise(x_T, torch.zeros(1, dtype=torch.long, device=device), condition)
        for sample in range(args.step_samples):
            t = torch.full((1,), (37 * sample + 50) % steps_total, dtype=torch.long, device=device)
            x = noise(sample, x_T)
            outputs = {}
            steps = (("(a) official step", torch.no_grad,                   # generalized_steps is no_grad
                      lambda: unet_forward(model.diffusion.denoise_fn, x, t, condition_input)[0]),
                     ("(b) ours step", torch.inference_mode,                # FADMPipeline.refine
                      lambda: model.denoise(x, t, condition)[0]))
            for name, mode, step in (steps if sample % 2 == 0 else steps[::-1]):
                with mode():
                    start = time.perf_counter()
                    outputs[name] = step()
                    sync()
                    step_seconds[name].append(time.perf_counter() - start)
            step_errors.append(relative_error(outputs["(b) ours step"], outputs["(a) official step"]))
        print(f"single denoiser steps, {args.step_samples} of each, interleaved (s): min / median / max")
        for name, values in step_seconds.items():
            print(f"  {name:20s} {min(values):6.2f} / {statistics.median(values):6.2f} / {max(values):6.2f}")
        official_steps, ours_steps = step_seconds.values()
        print(f"  ours/official per step: min {min(ours_steps) / min(official_steps):.2f}x, median "
              f"{statistics.median(ours_steps) / statistics.median(official_steps):.2f}x; epsilon rel "
              f"{max(step_errors):.1e} -> {'OK' if max(step_errors) <= TOLERANCE else 'FAIL'}")
    print(f"load average at end {load()}")


if __name__ == "__main__":
    main()
