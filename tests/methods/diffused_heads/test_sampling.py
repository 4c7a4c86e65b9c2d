"""The autoregressive frame loop's bookkeeping (motion buffer, stabilisation, audio windows, grayscale
motion), the noise stream, and the talk queue (independent videos side by side)."""
from __future__ import annotations

import numpy as np
import torch

from faceanim.media import Audio
from faceanim.methods.diffused_heads.audio_encoder import AudioEncoderConfig, SDAAudioEncoder
from faceanim.methods.diffused_heads.config import DiffusedHeadsConfig, tiny
from faceanim.methods.diffused_heads.model import build_unet
from faceanim.methods.diffused_heads.pipeline import DiffusedHeadsPipeline
from faceanim.methods.diffused_heads.sampling import FrameLoop, SeededFrameNoise, audio_window, to_grayscale


def test_audio_windows_are_clamped_to_the_clip():
    assert audio_window(0, 10, 2) == [0, 0, 0, 1, 2]
    assert audio_window(5, 10, 2) == [3, 4, 5, 6, 7]
    assert audio_window(9, 10, 2) == [7, 8, 9, 9, 9]
    assert audio_window(0, 1, 2) == [0] * 5            # shorter than the official minimum of 3 frames


def test_motion_buffer_and_stabilisation():
    x_cond = torch.full((1, 3, 4, 4), -1.0)
    loop = FrameLoop(x_cond, torch.zeros(1, 6, 8), stabilize=True, segment_len=3)
    seen = []
    for frame in range(6):
        motion, _ = loop.conditions(frame)
        seen.append([float(motion[0, c * 3, 0, 0]) for c in range(2)])
        loop.push(torch.full((1, 3, 4, 4), float(frame)))
    # frames 1, 2 see their predecessors; frame 3 gets the identity back in the oldest slot
    assert seen == [[-1, -1], [-1, 0], [0, 1], [-1, 2], [2, 3], [3, 4]]


def test_grayscale_motion_frames():
    frame = torch.rand(1, 3, 4, 4) * 2 - 1
    loop = FrameLoop(frame, torch.zeros(1, 3, 8), grayscale_motion=True)
    motion, _ = loop.conditions(0)
    assert motion.shape == (1, 2, 4, 4)
    assert torch.allclose(motion[:, :1], 0.2989 * frame[:, :1] + 0.587 * frame[:, 1:2] + 0.114 * frame[:, 2:])
    assert torch.equal(to_grayscale(frame), motion[:, 1:])


def test_seeded_noise_is_the_official_cpu_stream():
    """x_T of all frames in one draw, then the step noise: as `Diffusion.sample` after manual_seed."""
    shape, n_frames = (1, 3, 8, 8), 3
    generator = torch.Generator().manual_seed(5)
    x_T = torch.randn((1, n_frames, 3, 8, 8), generator=generator)
    steps = [torch.randn(shape, generator=generator) for _ in range(4)]
    noise = SeededFrameNoise(5, n_frames, shape)
    like = torch.zeros(shape)
    assert torch.equal(noise.start(0, like), x_T[:, 0])
    source = noise.steps(0)
    assert torch.equal(source(1, like), steps[0]) and torch.equal(source(0, like), steps[1])
    assert torch.equal(noise.start(1, like), x_T[:, 1])


def _pipeline(**settings) -> DiffusedHeadsPipeline:
    torch.manual_seed(0)
    config = DiffusedHeadsConfig(unet=tiny().unet)
    unet = build_unet(config)
    with torch.no_grad():
        for p in unet.parameters():
            p.normal_(std=0.05)
    encoder = SDAAudioEncoder(AudioEncoderConfig(conv_channels=(2, 2, 4, 4, 8), code_size=8, gru_hidden=32))
    return DiffusedHeadsPipeline(unet, encoder, config, steps=2, device="cpu", **settings)


def test_talk_queue_equals_separate_runs():
    pipe = _pipeline()
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(2)]
    speeches = [Audio((0.3 * np.sin(np.linspace(0, f, n))).astype(np.float32), 16000)
                for f, n in ((300, 6400), (500, 4000))]
    identities = [pipe.prepare_source(c) for c in crops]
    queued = list(pipe.talk_queue(identities, speeches, seeds=[1, 2]))
    for index, (identity, speech, seed) in enumerate(zip(identities, speeches, (1, 2))):
        pipe.seed = seed
        alone = list(pipe.talk_crops(identity, speech))
        mine = [frames[index] for frames in queued if frames[index] is not None]
        assert len(mine) == len(alone)
        assert max(np.abs(a.astype(int) - b.astype(int)).max() for a, b in zip(mine, alone)) <= 2


def test_green_background_option(astronaut):
    import cv2

    pipe = _pipeline(background="green")
    crop = cv2.resize(astronaut[30:330, 100:400], (64, 64), interpolation=cv2.INTER_AREA)
    identity = pipe.prepare_source(np.ascontiguousarray(crop))
    corner = identity.image[0, :, 0, 0]            # in [-1, 1]: pure green is (-1, 1, -1)
    assert torch.allclose(corner, torch.tensor([-1.0, 1.0, -1.0]), atol=0.05)


def test_green_background_is_taken_out_of_the_output(astronaut):
    """The model sees green around the head; the crops it returns carry the photo's background again,
    so no green box is pasted into the photo."""
    import cv2

    pipe = _pipeline(background="green")
    crop = np.ascontiguousarray(cv2.resize(astronaut[30:330, 100:400], (64, 64), interpolation=cv2.INTER_AREA))
    identity = pipe.prepare_source(crop)
    speech = Audio((0.3 * np.sin(np.linspace(0, 300, 4000))).astype(np.float32), 16000)
    for out in pipe.talk_crops(identity, speech):
        assert np.abs(out[:4, :4].astype(int) - crop[:4, :4].astype(int)).max() <= 1   # corners: the photo
        background = identity.head[..., 0] < 1e-3
        assert background.mean() > 0.2
        assert np.abs(out[background].astype(int) - crop[background].astype(int)).max() <= 1
