"""`FADMPipeline`: a coarse animator's face crops refined by FADM's attribute-guided diffusion renderer,
behind `faceanim reenact --method fadm`.

Per video: the coarse animator's source work, the source tensor and its DECA codes, and the noise
(x_T and one noise tensor per step, drawn once and shared by every frame: the official temporal-
consistency trick; `share_noise=False` draws fresh noise per frame instead). Per batch of driving crops:
the coarse frames, their DECA codes, the condition's frame work (`Condition.prepared`), then the sampler.

The coarse animator is any `faceanim.warping.CropAnimator` (face-vid2vid, FOMM, DaGAN, or the `warp`
engine through `warping.CoarseCrops`); `faceanim.tasks` builds it, so that methods stay independent.
Without one, the pipeline only refines (`refine_crops`, the official 'direct' mode: frames of an existing
animation are refined against its first frame).

Sampling: steps None is the official sampler (DDIM, η = 1, all T steps); fewer steps respace it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch

from ...diffusion import GeneratorNoise, NoiseSource, SeededNoise
from ...errors import InputError
from ...nn.pipeline import CropPipeline
from ...warping.animator import CropAnimator, MotionOptions
from .conditioning import coarse_condition
from .deca import DECAEncoder, attribute
from .model import FADMModel
from .weights import load_models, save_converted

X_T_SEED_OFFSET = 999    # x_T from seed·1000 + 999, step i's noise from seed·1000 + i (the parity fixtures' rule)


@dataclass
class FADMSource:
    """A prepared source: the coarse animator's prepared source (None when only refining), the source
    crop as a tensor (1, 3, S, S) in [0, 1], and its DECA codes."""

    coarse: Any
    image: torch.Tensor
    codes: dict[str, torch.Tensor]


class FADMPipeline(CropPipeline):
    """FADM refinement of `crop_size` face crops (256 for the released model).

    coarse: the animator producing coarse crops (None: refinement only); steps: sampler steps (None: all
    T, the official sampler); eta: DDIM η (1: official); seed / share_noise: the noise (see the module
    docstring); batch_size: frames refined together; step_callback: called after every sampler step
    (progress display)."""

    name = "fadm"
    model_name = "FADM"

    def __init__(self, model: FADMModel, deca: DECAEncoder, coarse: CropAnimator | None = None, *,
                 device: str | torch.device | None = None, steps: int | None = None, eta: float = 1.0,
                 seed: int = 0, share_noise: bool = True, batch_size: int = 1,
                 step_callback: Callable | None = None):
        if steps is not None and not 2 <= int(steps):
            raise InputError(None, f"--steps must be >= 2, got {steps}")
        if not 0.0 <= float(eta) <= 1.0:
            raise InputError(None, f"eta must be in [0, 1], got {eta}")
        super().__init__(model, device=device, batch_size=batch_size)
        self.deca = self.place(deca)
        self.coarse = None
        if coarse is not None:
            self.attach_coarse(coarse)
        self.steps = None if steps is None else int(steps)
        self.eta = float(eta)
        self.seed = int(seed)
        self.share_noise = bool(share_noise)
        self.step_callback = step_callback

    @property
    def crop_size(self) -> int:
        return self.model.image_size

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None = None, *, diffusion: str | os.PathLike | None = None,
                        deca: str | os.PathLike | None = None, coarse: CropAnimator | None = None,
                        image_size: int | None = None, **settings) -> "FADMPipeline":
        """The renderer from a converted folder or an official `diffusion.pth` (`path` or `diffusion`),
        DECA from `deca_model.tar` unless the folder holds it; `image_size`: the frame size of an official
        file (default 256); `settings` as the constructor's."""
        if path is not None and diffusion is not None and Path(path) != Path(diffusion):
            raise InputError(None, f"two renderer checkpoints given ({path} and {diffusion}); pass one")
        model, encoder = load_models(path if path is not None else diffusion, deca=deca, image_size=image_size)
        return cls(model, encoder, coarse, **settings)

    def attach_coarse(self, coarse: CropAnimator) -> None:
        """Use `coarse` as the coarse animator (its crops must be the renderer's size)."""
        if int(coarse.crop_size) != self.crop_size:
            raise InputError(None, f"the coarse animator makes {coarse.crop_size} px crops, FADM refines "
                                   f"{self.crop_size} px ones")
        self.coarse = coarse

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """The renderer and DECA's encoder as one converted folder."""
        return save_converted(self.model, folder, self.deca)

    # -- once per video ------------------------------------------------------------------------------
    @torch.inference_mode()
    def prepare_source(self, crop: np.ndarray) -> FADMSource:
        image = self.to_tensor([crop])
        coarse = self.coarse.prepare_source(crop) if self.coarse is not None else None
        return FADMSource(coarse, image, self.deca.encode(image))

    def noise(self) -> tuple[torch.Tensor, NoiseSource]:
        """x_T (1, 3, S, S) and the per-step noise of one video (shared by its frames)."""
        shape = (1, 3, self.crop_size, self.crop_size)
        generator = torch.Generator().manual_seed(self.seed * 1000 + X_T_SEED_OFFSET)
        x_T = torch.randn(shape, generator=generator).to(self.device)
        if self.share_noise:
            return x_T, SeededNoise(lambda index: self.seed * 1000 + index, shape=shape)
        return x_T, GeneratorNoise(torch.Generator().manual_seed(self.seed))

    # -- per frame -----------------------------------------------------------------------------------
    def animate_crops(self, source: FADMSource, driving_crops: Iterable[np.ndarray], initial: np.ndarray,
                      motion: MotionOptions | None = None) -> Iterator[np.ndarray]:
        """One refined crop per driving crop, in order: the coarse animator's crop, refined."""
        if self.coarse is None:
            raise InputError(None, "FADM needs a coarse animator to reenact (or use refine_crops)")
        coarse = self.coarse.animate_crops(source.coarse, driving_crops, initial, motion)
        yield from self.refine_crops(coarse, source)

    def refine_crops(self, coarse_crops: Iterable[np.ndarray], source: FADMSource | None = None
                     ) -> Iterator[np.ndarray]:
        """Refined crops of coarse crops; the attribute is measured against `source` (default: the first
        coarse crop, the official 'direct' mode)."""
        x_T, noise = self.noise()
        for batch in self.batches(coarse_crops):
            if source is None:
                source = FADMSource(None, *self._reference(batch[0]))
            yield from self._refine(source, batch, x_T, noise)

    @torch.inference_mode()
    def _reference(self, crop: np.ndarray) -> tuple[torch.Tensor, dict]:
        image = self.to_tensor([crop])
        return image, self.deca.encode(image)

    @torch.inference_mode()
    def refine(self, source: FADMSource, coarse: torch.Tensor, x_T: torch.Tensor, noise: NoiseSource
               ) -> torch.Tensor:
        """Refined frames (B, 3, S, S) in [0, 1] of coarse frames (B, 3, S, S) in [0, 1]."""
        condition = coarse_condition(coarse, attribute(source.codes, self.deca.encode(coarse)))
        if not self.share_noise:
            x_T = noise(0, coarse)
        out = self.model.sample(x_T, condition, noise, steps=self.steps, eta=self.eta, callback=self.step_callback)
        return out.sample.clamp(0, 1)

    def _refine(self, source: FADMSource, batch: list[np.ndarray], x_T, noise) -> list[np.ndarray]:
        return self.to_crops(self.refine(source, self.to_tensor(batch), x_T, noise))
