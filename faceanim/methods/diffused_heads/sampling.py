"""Diffused Heads' diffusion process and its autoregressive frame loop, on `faceanim.diffusion`.

- Schedule: cosine, T = 1000, the betas rounded to float32 and every derived array computed in float32
  (the official `Diffusion` does; a float64 schedule moves 10-step samples by ~5e-4). `space(n)` keeps
  n timesteps (Python round() of a float accumulator: 0, 111, ..., 999 for n = 10), beta' from the float32
  alpha_bar. The UNet sees the original timestep, the arrays are indexed by the respaced position.
- Few steps: for n <= 6 the official float32 respacing makes the last beta' exactly 1 (alpha_bar' = 0) and
  its sampler returns NaN. We replace only such a beta' by 0.999 (the cosine schedule's own cap); with
  n >= 7 nothing changes and the official numbers are kept.
- Sampler: DDPM ancestral with learned-range variance (nu = (v+1)/2 interpolates log beta and the clipped
  log posterior variance), x0 clamped to [-1, 1], no noise at the last step.
- Frames: frame i starts from its own x_T and sees the identity frame, the two previous outputs (a buffer
  that starts as copies of the identity frame) and audio embeddings i-2..i+2 clamped to the clip.
  `stabilize` puts the identity frame back into the oldest buffer slot every `segment_len` frames.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from ...diffusion import NoiseSchedule, ddpm_sample, space_timesteps
from ...diffusion.noise import NoiseSource

MAX_BETA = 0.999


def make_schedule(n_timesteps: int = 1000, steps: int | None = None) -> NoiseSchedule:
    """The cosine schedule in float32, respaced to `steps` (None: all `n_timesteps`)."""
    schedule = NoiseSchedule.from_recipe("cosine", n_timesteps, dtype=torch.float32)
    if steps is None or steps == n_timesteps:
        return schedule
    if not 2 <= steps <= n_timesteps:
        raise ValueError(f"steps must be between 2 and {n_timesteps}, got {steps}")
    return schedule.respace(space_timesteps(n_timesteps, steps), max_beta=MAX_BETA)


def audio_window(frame: int, n_frames: int, half_width: int) -> list[int]:
    """Rows of the clip's audio embeddings that frame `frame` sees: frame-m .. frame+m, clamped to the clip
    (the official running window, which also needs n_frames > m; clamping makes shorter clips work)."""
    return [min(max(j, 0), n_frames - 1) for j in range(frame - half_width, frame + half_width + 1)]


def to_grayscale(frames: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma of (B, 3, H, W) frames -> (B, 1, H, W) (torchvision's `Grayscale()`)."""
    r, g, b = frames.unbind(dim=1)
    return (0.2989 * r + 0.587 * g + 0.114 * b).unsqueeze(1).to(frames.dtype)


class FrameNoise:
    """Where a frame's starting noise and its per-step noise come from.

    `start(frame, like)` -> x_T of that frame; `steps(frame)` -> a `NoiseSource` for its DDPM loop."""

    def start(self, frame: int, like: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def steps(self, frame: int) -> NoiseSource:
        raise NotImplementedError


class SeededFrameNoise(FrameNoise):
    """The official random stream of `Diffusion.sample` on a CPU run seeded with `torch.manual_seed(seed)`:
    x_T of every frame first (one (B, n_frames, 3, S, S) draw), then the step noise of frame 0, 1, ...
    Streamed: x_T of frame f is read from a generator of its own, and the step-noise generator starts
    after all n_frames x_T draws, so nothing of the size of the video is ever held."""

    def __init__(self, seed: int, n_frames: int, frame_shape: tuple[int, ...]):
        self.frame_shape = tuple(frame_shape)      # (B, C, S, S)
        self.n_frames = n_frames
        self._start = torch.Generator().manual_seed(int(seed))
        self._steps = torch.Generator().manual_seed(int(seed))
        batch, per_frame = self.frame_shape[0], _numel(self.frame_shape[1:])
        if batch == 1:
            _skip_normals(self._steps, n_frames * per_frame)
            self._next_frame = 0
        else:   # (B, n, ...) layout interleaves the batch: draw x_T at once (small batches of short clips)
            self._all = torch.randn((batch, n_frames, *self.frame_shape[1:]), generator=self._steps)

    def start(self, frame: int, like: torch.Tensor) -> torch.Tensor:
        if self.frame_shape[0] != 1:
            return self._all[:, frame].to(like.device, like.dtype)
        if frame != self._next_frame:
            raise ValueError("frames must be generated in order")
        self._next_frame += 1
        return torch.randn(self.frame_shape, generator=self._start).to(like.device, like.dtype)

    def steps(self, frame: int) -> NoiseSource:
        def draw(index: int, like: torch.Tensor) -> torch.Tensor:
            return torch.randn(tuple(like.shape), generator=self._steps).to(like.device, like.dtype)
        return draw


def _numel(shape: tuple[int, ...]) -> int:
    out = 1
    for n in shape:
        out *= n
    return out


def _skip_normals(generator: torch.Generator, count: int, chunk: int = 1 << 22) -> None:
    # drawing in chunks that are multiples of 16 consumes the stream exactly as one big draw does
    while count > 0:
        size = min(count, chunk)
        torch.randn(size, generator=generator)
        count -= size


@dataclass
class FrameLoop:
    """The per-video state of autoregressive generation (identity, motion buffer, audio, progress)."""

    x_cond: torch.Tensor              # (B, 3, S, S) in [-1, 1]
    audio_emb: torch.Tensor           # (B, n_frames, C)
    n_motion_frames: int = 2
    half_window: int = 2
    grayscale_motion: bool = False
    stabilize: bool = False
    segment_len: int = 15

    def __post_init__(self):
        if self.stabilize and self.segment_len < 1:
            raise ValueError("segment_len must be >= 1")
        self.motion = torch.cat([self._motion(self.x_cond)] * self.n_motion_frames, dim=1) \
            if self.n_motion_frames else None

    @property
    def n_frames(self) -> int:
        return self.audio_emb.shape[1]

    def _motion(self, frame: torch.Tensor) -> torch.Tensor:
        return to_grayscale(frame) if self.grayscale_motion else frame

    def conditions(self, frame: int) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(motion frames, audio window) of frame `frame` (call in order; stabilisation applies here)."""
        if self.stabilize and self.motion is not None and frame > 0 and frame % self.segment_len == 0:
            width = self.motion.shape[1] // self.n_motion_frames
            self.motion = torch.cat([self._motion(self.x_cond), self.motion[:, width:]], dim=1)
        ids = audio_window(frame, self.n_frames, self.half_window)
        return self.motion, self.audio_emb[:, ids]

    def push(self, generated: torch.Tensor) -> None:
        if self.motion is not None:
            width = self.motion.shape[1] // self.n_motion_frames
            self.motion = torch.cat([self.motion[:, width:], self._motion(generated)], dim=1)


Denoise = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor], torch.Tensor]


def sample_frame(unet: Denoise, schedule: NoiseSchedule, x_T: torch.Tensor, x_cond: torch.Tensor,
                 motion_frames: torch.Tensor | None, audio_window_emb: torch.Tensor, noise: NoiseSource,
                 callback=None) -> torch.Tensor:
    """One frame: the DDPM loop over every index of `schedule` (respace it for fewer steps)."""
    def denoiser(x: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        return unet(x, timesteps, x_cond, motion_frames, audio_window_emb)
    return ddpm_sample(denoiser, x_T, schedule, noise, variance="learned_range", clip_x0=(-1.0, 1.0),
                       callback=callback).sample


def sample_frames(unet: Denoise, schedule: NoiseSchedule, loop: FrameLoop, noise: FrameNoise, *,
                  callback=None) -> Iterator[torch.Tensor]:
    """Frames (B, 3, S, S) in [-1, 1], one per audio embedding, each yielded as soon as it is made."""
    shape = loop.x_cond.shape
    for frame in range(loop.n_frames):
        motion, audio = loop.conditions(frame)
        x_T = noise.start(frame, loop.x_cond)
        if x_T.shape != shape:
            raise ValueError(f"frame noise of shape {tuple(x_T.shape)} does not fit {tuple(shape)}")
        generated = sample_frame(unet, schedule, x_T, loop.x_cond, motion, audio, noise.steps(frame), callback)
        loop.push(generated)
        yield generated
