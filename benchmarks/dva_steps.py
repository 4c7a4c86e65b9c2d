"""Benchmark: what fewer DDIM steps cost DVA's edits, against the released 1000 steps each way.

The official editing scripts invert every frame with 1000 DDIM steps and decode it with 1000 more (`--T 1000`):
2000 UNet evaluations a frame. `faceanim edit --method dva --steps N` uses N each way. For every N of `--steps`
(default 1000, 250, 100, 50, 20), on the same FFHQ-aligned crops of `--video`, with the same model and the same
video identity:

  - the unedited round trip (inversion, then decoding with the same code), against the input crop: PSNR over
    the whole crop and over the parser's face mask (what is pasted back), and its mean absolute difference
    from the 1000-step round trip (8-bit levels);
  - the edit (the classifier attribute of `--attribute`/`--scale`, or with `--direction random` a fixed random
    unit direction of the identity space at the same scale, for models without a classifier), blended over the
    crop as pasted: its identity distance to the 1000-step edit (1 - cos of the model's own ArcFace features
    of the two results, mean over frames) and its mean absolute difference from it;
  - seconds per frame (inversion + decoding) and the speed-up over 1000 steps, measured in the same run.

The model is whatever `--checkpoint` names (the released Lightning checkpoint, a training run, a converted
folder). Without one, a tiny random model is built: the figures then only show that the script runs.

    python benchmarks/dva_steps.py --checkpoint CKPT [--classifier last.ckpt --attribute Eyeglasses]
        [--identity-stats latent.pkl] [--direction random] [--scale 0.5] [--video clip.mp4] [--frames 4]
        [--steps 1000,250,100,50,20] [--device cpu|cuda] [--precision exact|fast] [--batch-size 4]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_VIDEO = REPO.parent / "shared" / "testdata" / "driving_256.mp4"


def video_crops(video: Path, count: int) -> list[np.ndarray]:
    """`count` FFHQ-aligned 256 px crops spread evenly over the video (the edit route's crops)."""
    from faceanim.face.video import track_video
    from faceanim.media import VideoReader

    track = track_video(video)
    plan = track.crop_plan("ffhq", 256)
    wanted = set(np.linspace(0, len(track.found) - 1, count).round().astype(int).tolist())
    with VideoReader(video) as reader:
        return [plan.crop(frame, i) for i, frame in enumerate(reader) if i in wanted]


def load_pipeline(args):
    from faceanim.methods.dva.config import tiny
    from faceanim.methods.dva.model import DVAModel
    from faceanim.methods.dva.pipeline import ClassifierEdit, DVAPipeline
    from faceanim.methods.dva.weights import AttributeClassifier, load_classifier, load_identity_stats, load_model

    if args.checkpoint:
        config, model = load_model(args.checkpoint)
    else:
        print("no --checkpoint: a tiny random model (the figures only show that the script runs)")
        torch.manual_seed(0)
        config, model = tiny(), DVAModel(tiny()).eval()
    classifier, stats, edit = None, None, None
    if args.direction == "random":
        generator = torch.Generator().manual_seed(0)
        weight = torch.nn.functional.normalize(torch.randn(1, 512, generator=generator), dim=1)
        classifier = AttributeClassifier(weight, torch.zeros(1), ("random",))
        edit = ClassifierEdit("random", args.scale, normalize=False)
    elif args.classifier:
        classifier = load_classifier(args.classifier)
        stats = load_identity_stats(args.identity_stats) if args.identity_stats else classifier.stats
        edit = ClassifierEdit(args.attribute, args.scale, normalize=stats is not None)
    return DVAPipeline(model, config, edit=edit, classifier=classifier, stats=stats, steps=2, device=args.device,
                       precision=args.precision, batch_size=args.batch_size)


def psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """PSNR in dB of images in [-1, 1] (over `mask` where given)."""
    error = ((a - b) / 2) ** 2
    if mask is not None:
        error = (error * mask).sum() / (mask.sum() * a.shape[1]).clamp(min=1)
    return float(10 * torch.log10(1 / error.mean().clamp(min=1e-12)))


def run_steps(pipeline, frames: torch.Tensor, steps: int) -> dict:
    pipeline.steps = steps
    sync = torch.cuda.synchronize if pipeline.device.type == "cuda" else (lambda: None)
    recon, edits, masks, seconds = [], [], [], 0.0
    for start in range(0, frames.shape[0], pipeline.batch_size):
        batch = frames[start:start + pipeline.batch_size]
        sync()
        began = time.perf_counter()
        decoded, mask = pipeline.decode_frames(batch, edited=False)
        sync()
        seconds += time.perf_counter() - began
        recon.append(decoded)
        masks.append(mask)
        if pipeline.edit is not None:
            edited, _ = pipeline.edit_frames(batch)
            edits.append(edited * 2 - 1)
    return {"recon": torch.cat(recon), "mask": torch.cat(masks), "seconds": seconds / frames.shape[0],
            "edit": torch.cat(edits) if edits else None}


def identity_distance(pipeline, a: torch.Tensor, b: torch.Tensor) -> float:
    with torch.inference_mode():
        fa, fb = pipeline.model.encoder.id_forward(a), pipeline.model.encoder.id_forward(b)
    return float((1 - torch.nn.functional.cosine_similarity(fa, fb, dim=1)).mean())


def levels(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().mean() * 127.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint")
    parser.add_argument("--classifier")
    parser.add_argument("--identity-stats")
    parser.add_argument("--attribute", default="Eyeglasses")
    parser.add_argument("--direction", choices=("classifier", "random"), default="classifier")
    parser.add_argument("--scale", type=float, default=0.5)
    parser.add_argument("--video", default=str(DEFAULT_VIDEO))
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--steps", default="1000,250,100,50,20")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="exact")
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args(argv)
    counts = sorted({int(s) for s in args.steps.split(",")}, reverse=True)
    reference = max(counts)

    pipeline = load_pipeline(args)
    crops = video_crops(Path(args.video), args.frames)
    frames = pipeline.to_tensor(crops)
    pipeline.scan_crops(crops)
    print(f"{len(crops)} crops of {args.video}; model {args.checkpoint or 'tiny random'}; device {pipeline.device}; "
          f"edit: {getattr(pipeline.edit, 'attribute', None)} scale {args.scale}; reference {reference} steps")
    results = {steps: run_steps(pipeline, frames, steps) for steps in counts}
    base = results[reference]
    header = (f"{'steps':>6} {'PSNR crop':>9} {'PSNR face':>9} {'vs ref (lv)':>11} "
              f"{'edit ID dist':>12} {'edit vs ref (lv)':>16} {'s/frame':>8} {'speed-up':>8}")
    print(header)
    for steps in counts:
        r = results[steps]
        edit_id = edit_lv = float("nan")
        if r["edit"] is not None:
            edit_id, edit_lv = identity_distance(pipeline, r["edit"], base["edit"]), levels(r["edit"], base["edit"])
        print(f"{steps:>6} {psnr(r['recon'], frames):>9.2f} {psnr(r['recon'], frames, r['mask']):>9.2f} "
              f"{levels(r['recon'], base['recon']):>11.2f} {edit_id:>12.4f} {edit_lv:>16.2f} "
              f"{r['seconds']:>8.3f} {base['seconds'] / r['seconds']:>7.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
