"""`faceanim track`: crop -> paste-back of unchanged crops reproduces the input, video and photo."""
from __future__ import annotations

import numpy as np

from faceanim.cli.main import main
from faceanim.face import face_mask, largest_face
from faceanim.media import VideoReader, read_image, write_image


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    diff = (a.astype(np.float64) - b.astype(np.float64))[mask > 0.5]
    return float(10 * np.log10(255 ** 2 / max((diff ** 2).mean(), 1e-12)))


def test_video_round_trip(face_clip, tmp_path, capsys):
    out, crops = tmp_path / "pasted.mp4", tmp_path / "crops.mp4"
    assert main(["track", str(face_clip), "-o", str(out), "--crops", str(crops), "--size", "128"]) == 0
    assert "40 frames, face found in 35 (missing 15-19)" in capsys.readouterr().out
    with VideoReader(face_clip) as original, VideoReader(out) as pasted, VideoReader(crops) as crop_video:
        assert pasted.has_audio and abs(pasted.duration - original.duration) < 0.05
        assert (crop_video.width, crop_video.height, crop_video.frame_count) == (128, 128, 40)
        scores = []
        for index, (a, b) in enumerate(zip(original, pasted)):
            if index % 8 == 0 and index not in range(15, 20):
                _, landmarks = largest_face(a)
                scores.append(psnr(a, b, face_mask(landmarks, a.shape[:2])))
    # both sides went through H.264 (crf 18): the face region must survive crop + paste-back
    assert min(scores) > 36, scores


def test_photo_round_trip_and_landmark_overlay(astronaut, tmp_path, capsys):
    photo = write_image(tmp_path / "astronaut.png", astronaut)
    assert main(["track", str(photo), "-o", str(tmp_path / "pasted.png"), "--crop", "ffhq"]) == 0
    pasted = read_image(tmp_path / "pasted.png")
    _, landmarks = largest_face(astronaut)
    assert pasted.shape == astronaut.shape
    assert psnr(pasted, astronaut, face_mask(landmarks, astronaut.shape[:2])) >= 40
    assert main(["track", str(photo), "-o", str(tmp_path / "drawn.png"), "--crops", str(tmp_path / "crop.png"),
                 "--draw-landmarks"]) == 0
    crop = read_image(tmp_path / "crop.png")
    green = (crop[..., 1] > 200) & (crop[..., 0] < 80) & (crop[..., 2] < 80)
    assert crop.shape == (256, 256, 3) and green.sum() > 68


def test_choose_the_face_by_reference_photo_or_index(astronaut, shared_testdata, tmp_path, capsys):
    portrait = read_image(shared_testdata / "portrait_256.png")
    left = np.ascontiguousarray(astronaut[:256, 100:356])
    pair = write_image(tmp_path / "pair.png", np.hstack([left, portrait]))
    for extra, side in ((["--reference", str(shared_testdata / "portrait_256.png")], "right"),
                        (["--face-index", "0"], "left"), (["--face-index", "1"], "right")):
        assert main(["track", str(pair), "-o", str(tmp_path / "out.png"), *extra]) == 0
        x = float(capsys.readouterr().out.split("face at [")[1].split()[0].rstrip("."))
        assert (x > 256) == (side == "right"), (extra, x)


def test_photo_outputs_in_every_format_the_writer_knows(astronaut, tmp_path, capsys):
    """Regression: `track` accepted .webp/.bmp outputs that the image writer then refused (a traceback)."""
    from faceanim.media.outputs import IMAGE_WRITE_FORMATS

    photo = write_image(tmp_path / "astronaut.png", astronaut)
    for suffix in IMAGE_WRITE_FORMATS:
        out = tmp_path / f"pasted{suffix}"
        assert main(["track", str(photo), "-o", str(out), "--crops", str(tmp_path / f"crop{suffix}")]) == 0
        assert read_image(out).shape == astronaut.shape and read_image(tmp_path / f"crop{suffix}").shape == (256, 256, 3)
