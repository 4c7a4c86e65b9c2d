"""`make demo`: the main jobs on bundled inputs, on a fresh machine, in well under 3 minutes on 2 CPU cores.

1. Talking head: scikit-image's astronaut photo (a real face) speaks `faceanim/assets/hello.ogg`
   (a sentence synthesised with espeak-ng, see scripts/make_demo_speech.sh) -> out/demo_talk.mp4.
2. Reenactment: a FOMM-style 256x256 crop of the photo is driven by that talking-head video
   (any face video works as the driving video) -> out/demo_reenact.mp4, with the driving video's sound.
3. The face pipeline underneath: the talking-head video tracked, cut into crops with the 68 landmarks
   drawn, and pasted back -> out/demo_track_crops.mp4, out/demo_track_pasteback.mp4.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ASSETS = Path(__file__).resolve().parents[1] / "faceanim" / "assets"


def handheld_clip(photo: np.ndarray, frames: int, size: tuple[int, int] = (640, 480)):
    """Yield frames of `photo` seen by a slowly drifting, zooming and rolling camera (used by tests)."""
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
    parser.add_argument("--speech", default=str(ASSETS / "hello.ogg"), help="speech for the talking head")
    args = parser.parse_args()
    from skimage.data import astronaut

    import faceanim
    from faceanim.face import fomm_box, fomm_crop, largest_face
    from faceanim.media import write_image

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    photo = astronaut()
    photo_path = write_image(out / "demo_photo.png", photo)
    talk = faceanim.talk(photo_path, args.speech, out / "demo_talk.mp4")
    crop, _ = fomm_crop(photo, fomm_box(largest_face(photo)[1], photo.shape[:2]), size=256)
    crop_path = write_image(out / "demo_photo_crop.png", crop)
    reenact = faceanim.reenact(crop_path, talk, out / "demo_reenact.mp4")
    from faceanim.cli.main import main as faceanim_main

    code = faceanim_main(["track", str(talk), "-o", str(out / "demo_track_pasteback.mp4"),
                          "--crops", str(out / "demo_track_crops.mp4"), "--draw-landmarks"])
    if code:
        return code
    print(f"demo finished in {time.time() - started:.1f} s:")
    print(f"  talking head:  {talk}\n  reenactment:   {reenact}")
    print(f"  face pipeline: {out / 'demo_track_crops.mp4'}, {out / 'demo_track_pasteback.mp4'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
