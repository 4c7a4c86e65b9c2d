"""Long-video drift of EMO: per window of `--window` seconds (30), the identity distance of the generated face to the
photo's and the mean colour shift of the face region, without and with the reference anchors.

Each clip continues from the previous clip's last frames, so errors can accumulate over a long video (the peers'
most reported problem: colour and identity drift after 20-60 s). For every variant the same photo, audio (looped
to `--seconds`) and seed are generated with `EMOPipeline.talk_crops` (the 512 crops, before paste-back) and
measured frame by frame as they stream:
  - colour shift: the CIE76 distance between the mean Lab colour of the face region (the reference's face box) in
    the frame and in the photo's crop (0 = the photo's colour; about 2.3 is a just-noticeable difference);
  - identity distance: dlib's 128-d face descriptor of the frame's face against the photo crop's (every
    `--every`-th frame; dlib's same-person threshold is 0.6), and the share of measured frames with a face found.
Variants: none (Hallo's loop), colour (`color_match`), reanchor (`reanchor_every`), both.

Without `--checkpoint` a tiny random-weight model in Hallo's layout is written to a temporary folder (for a run of
the machinery: random weights make no face, so only the colour columns mean something there).

    python benchmarks/emo_drift.py PHOTO AUDIO [--checkpoint pretrained_models] [--seconds 120] [--window 30]
        [--variants none,colour,reanchor,both] [--reanchor-every 4] [--steps 40] [--every 5] [--device cuda]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from faceanim.media import Audio, read_audio, read_image
from faceanim.tasks.crops import CropOptions, _prepare_photo

VARIANTS = {"none": {}, "colour": {"color_match": True}, "reanchor": {"reanchor_every": None},
            "both": {"color_match": True, "reanchor_every": None}}


def mean_lab(image: np.ndarray, box) -> np.ndarray:
    x0, x1, y0, y1 = (max(0, int(v)) for v in box)
    region = np.ascontiguousarray(image[y0:y1, x0:x1])
    return cv2.cvtColor(region, cv2.COLOR_RGB2LAB).astype(np.float64).reshape(-1, 3).mean(axis=0) * \
        np.array([100 / 255, 1, 1]) - np.array([0, 128, 128])


def looped(audio: Audio, seconds: float) -> Audio:
    samples = audio.samples if audio.samples.ndim == 1 else audio.samples.mean(axis=1)
    total = int(seconds * audio.sample_rate)
    return Audio(np.resize(samples, total).astype(np.float32), audio.sample_rate)


def identity_of(image: np.ndarray, embedder):
    from faceanim.errors import InputError
    from faceanim.face import largest_face

    try:
        _, landmarks = largest_face(image, "hog")
    except InputError:
        return None
    return embedder(image, landmarks)


def measure(pipeline, crop: np.ndarray, speech: Audio, window: int, every: int) -> list[dict]:
    from faceanim.face.landmarks import FaceEmbedder

    embedder = FaceEmbedder()
    reference = pipeline.prepare_source(crop)
    box = reference.masks.face_box
    photo_colour = mean_lab(crop, box)
    photo_identity = identity_of(crop, embedder)
    rows: list[dict] = []
    for index, frame in enumerate(pipeline.talk_crops(reference, speech)):
        w = index // int(window * pipeline.fps)
        while len(rows) <= w:
            rows.append({"colour": [], "identity": [], "measured": 0})
        rows[w]["colour"].append(float(np.linalg.norm(mean_lab(frame, box) - photo_colour)))
        if index % every == 0 and photo_identity is not None:
            rows[w]["measured"] += 1
            found = identity_of(frame, embedder)
            if found is not None:
                rows[w]["identity"].append(float(np.linalg.norm(found - photo_identity)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photo")
    parser.add_argument("audio")
    parser.add_argument("--checkpoint", help="net.pth / Hallo pretrained_models / converted folder (default: tiny random)")
    parser.add_argument("--vae")
    parser.add_argument("--wav2vec2")
    parser.add_argument("--face-analysis")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--variants", default="none,colour,reanchor,both")
    parser.add_argument("--reanchor-every", type=int, default=4, help="clips between re-anchorings (default 4)")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--every", type=int, default=5, help="measure identity on every N-th frame (default 5)")
    parser.add_argument("--device")
    parser.add_argument("--precision", choices=("exact", "fast"), default="exact")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    from faceanim.methods.emo.pipeline import EMOPipeline

    variants = [v.strip() for v in args.variants.split(",")]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown} (known: {', '.join(VARIANTS)})")
    workdir = None
    checkpoint, weights = args.checkpoint, dict(vae=args.vae, wav2vec2=args.wav2vec2, face_analysis=args.face_analysis)
    if checkpoint is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.methods.emo.native_files import write_hallo_layout

        workdir = tempfile.TemporaryDirectory()
        checkpoint = write_hallo_layout(Path(workdir.name) / "pretrained_models")["root"]
        print("no --checkpoint: tiny random weights (128 px); identity columns are meaningless there")
    speech = looped(read_audio(args.audio, sample_rate=None), args.seconds)
    settings = dict(steps=args.steps, seed=args.seed, device=args.device, precision=args.precision,
                    **{k: v for k, v in weights.items() if v})
    base = EMOPipeline.from_pretrained(checkpoint, **settings)
    photo = _prepare_photo(args.photo, base, CropOptions())
    image = read_image(args.photo)
    print(f"photo {args.photo} ({image.shape[1]}x{image.shape[0]}), audio {args.audio} looped to {args.seconds:.0f} s, "
          f"{args.steps} steps, seed {args.seed}, clips of {base.clip_length} frames")
    print(f"{'variant':10s}{'window':>10s}{'colour shift (dE76)':>22s}{'identity distance':>20s}{'faces found':>14s}")
    for name in variants:
        extra = {k: (args.reanchor_every if v is None else v) for k, v in VARIANTS[name].items()}
        pipeline = EMOPipeline.from_pretrained(checkpoint, **settings, **extra)
        for w, row in enumerate(measure(pipeline, photo.crop, speech, args.window, args.every)):
            ident = f"{np.mean(row['identity']):.3f}" if row["identity"] else "-"
            found = f"{len(row['identity'])}/{row['measured']}" if row["measured"] else "-"
            span = f"{w * args.window:.0f}-{(w + 1) * args.window:.0f}s"
            print(f"{name:10s}{span:>10s}{np.mean(row['colour']):22.2f}{ident:>20s}{found:>14s}")
    if workdir is not None:
        workdir.cleanup()


if __name__ == "__main__":
    main()
