"""Benchmark: FADM inference speed at the released configuration (diffusion.pth layout: 64-channel UNet at
256x256, T = 100; DECA's ResNet-50 encoder; face-vid2vid vox-256 as the coarse animator), random weights.

Seconds per output frame of
  (a) the official sampler: DDIM with eta 1 over all 100 steps (`FADMPipeline`, steps None);
  (b) a respaced 25-step sampler (`--steps 25`);
and their ratio, plus the coarse stage (face-vid2vid) per frame, which both share. Each sampler refines
the same `--frames` coarse frames (the coarse animator's output for the shared test clip) after a
short warm-up; per-frame work (DECA codes, the condition network's frame part) is included.

    python benchmarks/fadm_inference.py [--frames 2] [--batch-size 1] [--device cpu]
"""
from __future__ import annotations

import argparse
import time

import torch

from benchmark_media import load_crops
from faceanim.methods.facevid import FaceVidPipeline
from faceanim.methods.fadm import DECAEncoder, FADMModel, FADMPipeline
from faceanim.methods.fadm.config import released
from faceanim.warping.facevid import FaceVidModel, vox256

def timed(function) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    photo, driving = load_crops(args.frames)
    coarse = FaceVidPipeline(FaceVidModel(vox256()).eval(), device=args.device, batch_size=args.batch_size)
    source = coarse.prepare_source(photo)
    coarse_seconds, coarse_frames = timed(lambda: list(coarse.animate_crops(source, driving, driving[0])))
    pipeline = FADMPipeline(FADMModel(released()).eval(), DECAEncoder().eval(), device=args.device,
                            batch_size=args.batch_size)
    prepared = pipeline.prepare_source(photo)
    pipeline.steps = 2
    list(pipeline.refine_crops(coarse_frames[:1], prepared))              # warm-up (allocator, oneDNN kernels)
    results = {}
    for label, steps in (("official sampler, 100 steps", None), ("respaced, 25 steps", 25)):
        pipeline.steps = steps
        seconds, _ = timed(lambda: list(pipeline.refine_crops(coarse_frames, prepared)))
        results[label] = seconds / args.frames
    print(f"device {args.device}, {torch.get_num_threads()} threads, {args.frames} frames, batch {args.batch_size}")
    print(f"coarse stage (face-vid2vid vox-256):  {coarse_seconds / args.frames:8.2f} s/frame")
    for label, seconds in results.items():
        print(f"FADM refinement, {label:28s} {seconds:8.2f} s/frame")
    full, fast = results.values()
    print(f"ratio 100 steps / 25 steps: {full / fast:.2f}x")


if __name__ == "__main__":
    main()
