"""Benchmark: DaGAN inference speed at the released configuration (vox256, 256x256 crops, random weights).

Seconds per driving frame of
  (a) the official demo's loop (`demo.py` `make_animation`), written with our modules: batch 1, float32,
      the generator re-encoding the source for every frame (source depth and keypoints once, as there);
      (a*) the same with the source depth and keypoints recomputed every frame as well;
  (b) `DaGANPipeline` "exact": float32, source work once, driving frames in batches;
  (c) `DaGANPipeline` "fast": autocast (bfloat16 on CPU, float16 on CUDA) with float32 islands.
(b) and (c) include `prepare_source`. Each loop runs `--rounds` times, interleaved, and its best round
counts (the machine may be shared). It also prints the fast mode's relative error on the pre-sigmoid
output, rel = ||fast - exact|| / ||exact - mean(exact)||, for the random weights as initialised and with
batch-norm statistics gathered from the clip (unit-scale activations, a harsher case for bfloat16);
the attention gate gamma is set to 1 so that the attention's numerics count (it starts at 0).

With `--float16-error` it also prints the error of the CUDA fast mode's dtype (float16 autocast), emulated
on the CPU (slow: about a minute), so the error side of the CUDA target can be checked without a GPU.

    python benchmarks/dagan_inference.py [--frames 16] [--batch-size 8] [--device cpu] [--rounds 3] [--float16-error]
"""
from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np
import torch

from benchmark_media import load_crops
from faceanim.methods.dagan import DaGANModel, DaGANPipeline
from faceanim.methods.dagan.config import vox256
from faceanim.warping.motion import normalize_keypoints

def random_model(seed: int = 0) -> DaGANModel:
    torch.manual_seed(seed)
    model = DaGANModel(vox256()).eval()
    with torch.no_grad():
        model.generator.AttnModule.gamma.fill_(1.0)
    return model


def to_tensor(crops: list[np.ndarray], device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.stack(crops)).to(device).permute(0, 3, 1, 2).float() / 255


@torch.inference_mode()
def official_loop(model: DaGANModel, source_crop: np.ndarray, driving: list[np.ndarray], device: torch.device,
                  source_per_frame: bool = False) -> list[np.ndarray]:
    """`make_animation` with relative motion and adapt_scale, one frame at a time."""
    source = to_tensor([source_crop], device)
    source_depth, _ = model.depth(source)
    kp_source = model.keypoints(source, source_depth)
    initial = to_tensor(driving[:1], device)
    kp_initial = model.keypoints(initial, model.depth(initial)[0])
    outputs = []
    for crop in driving:
        if source_per_frame:
            source_depth, _ = model.depth(source)
            kp_source = model.keypoints(source, source_depth)
        frame = to_tensor([crop], device)
        kp_driving = model.keypoints(frame, model.depth(frame)[0])
        kp_norm = normalize_keypoints(kp_source, kp_driving, kp_initial, relative=True, adapt_scale=True)
        prediction = model.generate(source, kp_source, kp_norm, source_depth)["prediction"]
        outputs.append((prediction[0].permute(1, 2, 0) * 255).round().byte().cpu().numpy())
    return outputs


def pipeline_loop(pipeline: DaGANPipeline, source_crop: np.ndarray, driving: list[np.ndarray]) -> list[np.ndarray]:
    source = pipeline.prepare_source(source_crop)
    return list(pipeline.animate_crops(source, iter(driving), driving[0]))


def seconds_per_frame(loops: dict, frames: int, rounds: int) -> dict[str, float]:
    best = {name: float("inf") for name in loops}
    for _ in range(rounds):
        for name, loop in loops.items():
            start = time.perf_counter()
            loop()
            best[name] = min(best[name], (time.perf_counter() - start) / frames)
    return best


def calibrate_batchnorm(model: DaGANModel, crops: list[np.ndarray], device: torch.device) -> None:
    """Running statistics of every batch norm from these frames (as training would leave them)."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a plain average over the calibration batch
        norm.train()
    frames = to_tensor(crops, device)
    with torch.no_grad():
        depth, _ = model.depth(frames)
        keypoints = model.keypoints(frames, depth)
        model.generate(frames[:1], keypoints[:1], keypoints, depth[:1])
    model.eval()


def logits_error(model: DaGANModel, source_crop: np.ndarray, driving: list[np.ndarray], device, batch: int) -> float:
    exact = DaGANPipeline(model, device=device, precision="exact", batch_size=batch)
    fast = DaGANPipeline(model, device=device, precision="fast", batch_size=batch)
    crops = driving[:batch]
    results = []
    for pipeline in (exact, fast):
        source = pipeline.prepare_source(source_crop)
        kp_initial, kp_driving = pipeline.keypoints(driving[:1]), pipeline.keypoints(crops)
        results.append(pipeline.generate(source, kp_driving, kp_initial)["prediction_logits"].float())
    reference, approximate = results
    return float((approximate - reference).norm() / (reference - reference.mean()).norm())


@contextlib.contextmanager
def float16_fast_mode():
    """Make the pipeline's fast mode use float16 autocast on any device (what it uses on CUDA)."""
    import faceanim.methods.dagan.pipeline as pipeline_module

    chosen = pipeline_module.compute_context

    @contextlib.contextmanager
    def float16_context(device, precision):
        with chosen(device, "exact"), torch.autocast(device.type, dtype=torch.float16,
                                                      enabled=precision == "fast"):
            yield
    pipeline_module.compute_context = float16_context
    try:
        yield
    finally:
        pipeline_module.compute_context = chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=16, help="driving frames per loop (default 16)")
    parser.add_argument("--batch-size", type=int, default=8, help="pipeline batch size (default 8)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per loop; the best counts (default 3)")
    parser.add_argument("--float16-error", action="store_true",
                        help="also print the error of float16 autocast (CUDA's fast mode), emulated here")
    args = parser.parse_args()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    source_crop, driving = load_crops(args.frames)
    reference = random_model().to(device)  # the official loop's own copy, in PyTorch's default layout
    model = random_model()
    exact = DaGANPipeline(model, device=device, precision="exact", batch_size=args.batch_size)
    fast = DaGANPipeline(model, device=device, precision="fast", batch_size=args.batch_size)
    loops = {"(a) official loop": lambda: official_loop(reference, source_crop, driving, device),
             "(a*) official loop, source redone": lambda: official_loop(reference, source_crop, driving, device,
                                                                        source_per_frame=True),
             "(b) ours exact": lambda: pipeline_loop(exact, source_crop, driving),
             "(c) ours fast": lambda: pipeline_loop(fast, source_crop, driving)}
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{len(driving)} frames, batch size {args.batch_size}, best of {args.rounds} rounds")
    seconds_per_frame({name: loops[name] for name in ("(a) official loop", "(b) ours exact", "(c) ours fast")},
                      1, 1)  # warm-up: kernel selection, allocator
    timings = seconds_per_frame(loops, len(driving), args.rounds)
    for name, seconds in timings.items():
        print(f"{name:36s} {seconds:.3f} s/frame")
    baseline = timings["(a) official loop"]
    print(f"speed-up vs (a): exact {baseline / timings['(b) ours exact']:.2f}x (target >= 1.3x), "
          f"fast {baseline / timings['(c) ours fast']:.2f}x (target >= 3x)")
    print(f"fast-mode rel. error on prediction_logits: "
          f"{logits_error(model, source_crop, driving, device, min(args.batch_size, len(driving))):.2e} "
          f"(random init)", end="")
    calibrate_batchnorm(model, driving, device)
    print(f", {logits_error(model, source_crop, driving, device, min(args.batch_size, len(driving))):.2e} "
          f"(batch-norm statistics from the clip); target <= 1e-2")
    if args.float16_error:
        batch = min(args.batch_size, len(driving), 4)
        with float16_fast_mode():
            error = logits_error(model, source_crop, driving, device, batch)
        print(f"float16 autocast (CUDA fast mode) rel. error, batch-norm statistics from the clip: {error:.2e}")


if __name__ == "__main__":
    main()
