"""`make demo`: the main job on bundled inputs, on a fresh machine, in well under 3 minutes on 2 CPU cores.

Until the landmark engine lands, the demo shows the face pipeline every method stands on: a short
video of a real face (scikit-image's astronaut photo, filmed by a simulated hand-held camera) is
tracked, cut into FOMM-style crops with the 68 landmarks drawn on them, and pasted back into the full
frames with a feathered mask.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np


def handheld_clip(photo: np.ndarray, frames: int, size: tuple[int, int] = (640, 480)):
    """Yield frames of `photo` seen by a slowly drifting, zooming and rolling camera."""
    h, w = photo.shape[:2]
    for t in range(frames):
        phase = 2 * math.pi * t / frames
        angle = 4 * math.sin(phase)
        scale = 1.1 + 0.15 * math.sin(0.5 * phase)
        centre = (w / 2 + 25 * math.sin(phase), h / 2 + 15 * math.cos(phase))
        matrix = cv2.getRotationMatrix2D(centre, angle, scale)
        matrix[:, 2] += (size[0] / 2 - centre[0], size[1] / 2 - centre[1])
        yield cv2.warpAffine(photo, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out", help="output folder")
    parser.add_argument("--frames", type=int, default=75)
    args = parser.parse_args()
    from skimage.data import astronaut

    from faceanim.cli.main import main as faceanim_main
    from faceanim.media import VideoWriter

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    source = out / "demo_input.mp4"
    with VideoWriter(source, fps=25) as writer:
        for frame in handheld_clip(astronaut(), args.frames):
            writer.write(frame)
    result, crops = out / "demo_track_pasteback.mp4", out / "demo_track_crops.mp4"
    code = faceanim_main(["track", str(source), "-o", str(result), "--crops", str(crops), "--draw-landmarks"])
    if code:
        return code
    print(f"demo finished in {time.time() - started:.1f} s:")
    for path in (source, crops, result):
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
