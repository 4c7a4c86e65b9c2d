"""The crop -> animate -> paste-back route of `faceanim.reenact` for models of face crops, with a stand-in
model whose output is known: it returns each driving crop tinted, and records what it was given."""
from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from faceanim.errors import InputError, NoFaceError
from faceanim.face import largest_face
from faceanim.media import VideoReader, VideoWriter, read_image, write_image
from faceanim.tasks.crops import CropOptions, reenact_crops
from tests.conftest import write_face_clip


class FlipAnimator:
    """Outputs each driving crop upside down (recognisable after paste-back and its colour matching)."""

    crop_size = 128

    def __init__(self):
        self.source = self.initial = None
        self.seen = 0

    def prepare_source(self, crop):
        self.source = crop
        return "prepared"

    def animate_crops(self, prepared, crops, initial, motion=None):
        assert prepared == "prepared"
        self.initial = initial
        for crop in crops:
            assert crop.shape == (128, 128, 3)
            self.seen += 1
            yield np.ascontiguousarray(crop[::-1])


@pytest.fixture(scope="module")
def photo_path(tmp_path_factory, astronaut):
    canvas = np.full((400, 700, 3), 60, dtype=np.uint8)
    canvas[40:296, 400:656] = astronaut[::2, ::2]  # a ~50 px face, right of centre
    return write_image(tmp_path_factory.mktemp("photo") / "photo.png", canvas)


def test_streams_crops_and_pastes_back_into_the_full_photo(photo_path, face_clip, tmp_path):
    model = FlipAnimator()
    out = reenact_crops(model, photo_path, face_clip, tmp_path / "out.mp4", show_progress=False)
    with VideoReader(face_clip) as driving, VideoReader(out) as video:
        assert (video.width, video.height) == (700, 400) and video.has_audio
        assert video.frame_count == driving.frame_count == model.seen
        frame = next(iter(video))
    assert model.source.shape == (128, 128, 3) and model.source.std() > 30  # the face, not the flat background
    photo = read_image(photo_path)
    difference = np.abs(frame.astype(int) - photo).mean(axis=2)
    assert difference[:, :300].max() < 12          # the background far from the face is as it was (codec noise)
    box, _ = largest_face(photo)
    face = difference[int(box.top):int(box.bottom), int(box.left):int(box.right)]
    assert face.mean() > 30  # the face region holds the model's output


def test_frames_without_output_and_uncropped_inputs(photo_path, face_clip):
    model = FlipAnimator()
    frames = reenact_crops(model, photo_path, face_clip, None, options=CropOptions(crop=False))
    first = next(frames)
    photo = read_image(photo_path)
    assert first.shape == (400, 700, 3) and np.abs(first.astype(int) - photo).mean() > 20  # all of it is the model's
    assert model.source.shape == (128, 128, 3)


def test_find_best_frame_starts_from_the_frame_most_like_the_photo(astronaut, tmp_path):
    def rotated(degrees):
        matrix = cv2.getRotationMatrix2D((256, 256), degrees, 1.0)
        return cv2.warpAffine(astronaut, matrix, (512, 512), borderMode=cv2.BORDER_REFLECT)

    frames = [rotated(20), astronaut[:, ::-1].copy(), astronaut, rotated(-15)]  # frame 2 is the photo
    clip = tmp_path / "clip.mp4"
    with VideoWriter(clip, 25) as writer:
        for frame in frames:
            writer.write(frame)
    photo = write_image(tmp_path / "photo.png", astronaut)
    options = CropOptions(crop=False, find_best_frame=True)
    model = FlipAnimator()
    list(reenact_crops(model, photo, clip, None, options=options))
    assert model.seen == 4
    expected = FlipAnimator()
    list(reenact_crops(expected, photo, clip, None, options=CropOptions(crop=False, best_frame=2)))
    np.testing.assert_array_equal(model.initial, expected.initial)
    first = FlipAnimator()
    list(reenact_crops(first, photo, clip, None, options=CropOptions(crop=False)))
    assert np.abs(first.initial.astype(int) - model.initial).mean() > 5  # frame 0 is a different one


def test_bad_inputs(photo_path, face_clip, faceless_clip, tmp_path):
    with pytest.raises(NoFaceError):
        reenact_crops(FlipAnimator(), photo_path, faceless_clip, tmp_path / "x.mp4", show_progress=False)
    assert not (tmp_path / "x.mp4").exists()
    with pytest.raises(InputError, match="past the video"):
        reenact_crops(FlipAnimator(), photo_path, face_clip, None, options=CropOptions(best_frame=10_000))
    with pytest.raises(InputError, match="driving crop"):
        CropOptions(driving_crop="wobbly")
