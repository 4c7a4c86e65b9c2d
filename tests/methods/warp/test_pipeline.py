"""WarpPipeline: the coarse-animator interface, reenact and talk on tensors-free frames, settings folders."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from faceanim.errors import InputError, NoFaceError
from faceanim.face import inner_mouth_opening, largest_face
from faceanim.media import Audio, VideoReader
from faceanim.methods.warp import WarpConfig, WarpPipeline, preset
from faceanim.warping import MotionOptions


@pytest.fixture(scope="module")
def pipeline():
    return WarpPipeline()


@pytest.fixture(scope="module")
def prepared(pipeline, astronaut):
    return pipeline.prepare_source(astronaut)


def test_animate_with_the_initial_frame_returns_the_source(pipeline, prepared, astronaut):
    out = pipeline.animate(prepared, prepared.landmarks, prepared.landmarks, MotionOptions())
    assert out.shape == astronaut.shape and np.abs(out.astype(int) - astronaut).max() <= 2


def test_reenact_streams_one_frame_per_driving_frame(pipeline, prepared, face_clip, astronaut):
    with VideoReader(face_clip) as reader:
        frames = list(itertools.islice(pipeline.reenact(prepared, reader), 40))
    assert len(frames) == 40 and all(f.shape == astronaut.shape for f in frames)
    # the driving camera zooms and rolls: the output face moves, the far background does not
    moved = [largest_face(f)[1].mean(axis=0) for f in frames[::10]]
    assert np.ptp(np.array(moved), axis=0).max() > 3
    assert all(np.array_equal(f[-20:], astronaut[-20:]) for f in frames)


def test_reenact_without_a_driving_face(pipeline, prepared, faceless_clip):
    with VideoReader(faceless_clip) as reader, pytest.raises(NoFaceError, match="no face found in any frame"):
        list(pipeline.reenact(prepared, reader, driving_name=faceless_clip))


def speech_like(seconds: float = 3.0, rate: int = 16000) -> Audio:
    """Voiced bursts (a 140 Hz buzz through two formants) separated by silences."""
    t = np.arange(int(seconds * rate)) / rate
    buzz = np.sign(np.sin(2 * np.pi * 140 * t)) * (np.sin(2 * np.pi * 700 * t) + 0.5 * np.sin(2 * np.pi * 1200 * t))
    gate = (np.sin(2 * np.pi * 1.5 * t) > 0).astype(np.float32)
    return Audio((0.3 * buzz * gate).astype(np.float32), rate)


def test_talk_opens_the_mouth_on_sound_and_closes_it_on_silence(pipeline, prepared):
    audio = speech_like()
    frames = list(pipeline.talk(prepared, audio))
    assert len(frames) == 75
    openings = np.array([inner_mouth_opening(largest_face(f)[1]) for f in frames])
    t = np.arange(75) / 25
    loud = np.sin(2 * np.pi * 1.5 * t) > 0.3
    quiet = np.sin(2 * np.pi * 1.5 * t) < -0.3
    assert openings[loud].mean() > openings[quiet].mean() + 0.03


def test_still_mode_keeps_the_head_in_place(astronaut):
    pipeline = WarpPipeline(WarpConfig(still=True, blink_rate=0))
    prepared = pipeline.prepare_source(astronaut)
    silence = Audio(np.zeros(16000 * 2, np.float32), 16000)
    frames = list(pipeline.talk(prepared, silence))
    assert len(frames) == 50 and all(np.array_equal(f, frames[0]) for f in frames)   # nothing moves
    # silence closes the smiling mouth (lips, jaw and cheeks move); eyes and forehead stay as in the photo
    eyes = int(prepared.landmarks[36:48, 1].max())
    assert np.abs(frames[0][:eyes].astype(int) - astronaut[:eyes]).max() <= 2
    assert inner_mouth_opening(largest_face(frames[0])[1]) < inner_mouth_opening(prepared.landmarks)


def test_settings_round_trip_and_validation(tmp_path):
    folder = WarpPipeline(preset("expressive").replace(seed=7)).save_pretrained(tmp_path / "warp")
    loaded = WarpPipeline.from_pretrained(folder, blink_rate=3)
    assert loaded.config == preset("expressive").replace(seed=7, blink_rate=3)
    with pytest.raises(InputError, match="fps"):
        WarpConfig(fps=0)
    with pytest.raises(InputError, match="unknown warp preset"):
        WarpPipeline.from_pretrained(preset_name="wild")
