"""`DVAPipeline`: edit the face of a whole video through its shared identity, behind `faceanim edit --method dva`.

The official `editing_classifier.py` / `editing_CLIP.py` procedure, streamed:

- pass 1 (`scan_crops`): the ArcFace identity of every FFHQ-aligned 256 px crop in which a face was found,
  averaged into the video's identity; the edit (classifier direction, or a CLIP-directed optimisation) is
  applied to that one code, once;
- pass 2 (`edit_crops`), `batch_size` frames at a time: z_face from the average identity and each frame's
  landmarks; DDIM inversion of the crop to its noise map x_T (`steps` steps); the parser's video foreground
  mask; decoding from x_T with z_face of the *edited* identity (the same `steps`); the decoded face over the
  crop where the mask is 1. Each result carries its mask, so the route pastes only the face back into the
  full frame: every pixel outside the mask keeps its decoded value.

No frame is held beyond the current batch (the crops of pass 2 are cut again from a second decode).
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from ...errors import InputError
from ...face.paste import MaskedCrop
from ...nn.pipeline import CropPipeline
from .config import DVAConfig
from .editing import blend_face, classifier_edit
from .model import DVAModel
from .sampling import ddim_encode, ddim_reconstruct
from .weights import ATTRIBUTES, METHOD, AttributeClassifier, IdentityStats

log = logging.getLogger(__name__)
FRAME_SIZE = 256
DEFAULT_STEPS = 100          # see benchmarks/dva_steps.py and the README: 1000 as released
DEFAULT_SCALE = 0.3          # the official --scale default of editing_classifier.py


@dataclass(frozen=True)
class ClassifierEdit:
    """Move the identity along a classifier attribute (`scale` in units of sqrt(512) z-normalised steps)."""

    attribute: str
    scale: float = DEFAULT_SCALE
    normalize: bool = True


class DVAPipeline(CropPipeline):
    """Diffusion Video Autoencoders on FFHQ-aligned 256 px crops.

    edit: a `ClassifierEdit`, a `text_edit.TextEdit` (with `clip`, a loaded CLIP guide), or None (the
    unedited round trip: inversion and decoding only); steps: DDIM steps of the inversion and of the
    decoding (1000 as released)."""

    name = METHOD
    model_name = "the DVA model"
    value_range = (-1.0, 1.0)
    crop_style = "ffhq"

    def __init__(self, model: DVAModel, config: DVAConfig, *, edit=None, classifier: AttributeClassifier | None = None,
                 stats: IdentityStats | None = None, clip=None, steps: int = DEFAULT_STEPS,
                 device: str | torch.device | None = None, precision: str = "exact", batch_size: int = 4):
        if not 2 <= int(steps) <= config.T:
            raise InputError(None, f"--steps must be between 2 and {config.T}, got {steps}")
        super().__init__(model, device=device, precision=precision, batch_size=batch_size)
        self.config, self.steps = config, int(steps)
        self.edit, self.classifier, self.stats, self.clip = edit, classifier, stats, clip
        self._check_edit()
        self.identity: torch.Tensor | None = None         # the video's average identity (1, 512)
        self.edited_identity: torch.Tensor | None = None

    @property
    def crop_size(self) -> int:
        return FRAME_SIZE

    def _check_edit(self) -> None:
        if isinstance(self.edit, ClassifierEdit):
            if self.classifier is None:
                raise InputError(None, "an attribute edit needs the attribute classifier (--classifier)")
            self.classifier.direction(self.edit.attribute)       # an unknown name fails here, listing them
            if not math.isfinite(self.edit.scale):
                raise InputError(None, f"--scale must be a finite number, got {self.edit.scale}")
            if self.edit.normalize and self.stats is None:
                raise InputError(None, "the z-normalised edit needs identity statistics: pass --identity-stats "
                                       "latent.pkl (or --no-normalize)")
        elif self.edit is not None and self.clip is None:
            raise InputError(None, "a text edit needs a CLIP model folder (--clip)")

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None = None, *, checkpoint: str | os.PathLike | None = None,
                        weights: str = "ema", classifier: str | os.PathLike | None = None,
                        identity_stats: str | os.PathLike | None = None, clip: str | os.PathLike | None = None,
                        attribute: str | None = None, scale: float | None = None, normalize: bool | None = None,
                        text_from: str | None = None, text_to: str | None = None, **settings) -> "DVAPipeline":
        """The model from the released checkpoint (its EMA weights unless `weights="model"`), a training run
        or a converted folder; the classifier, identity statistics and CLIP from local paths. Text-edit
        settings (`clip_lr`, `clip_iterations`, `clip_loss_w`, `id_loss_w`, `l1_loss_w`, `n_train_step`) are
        passed on to `TextEdit`."""
        from ...registry import get_method
        from .weights import folder_extras, load_classifier, load_identity_stats, load_model

        spec = get_method(METHOD)
        if path is not None and checkpoint is not None and Path(path) != Path(checkpoint):
            raise InputError(None, f"two checkpoints given ({path} and {checkpoint}); pass one")
        edit_settings = {k: settings.pop(k) for k in _TEXT_SETTINGS if k in settings}
        edit = _edit_of(attribute, scale, normalize, text_from, text_to, edit_settings)
        source = spec.weight("checkpoint").resolve(path if path is not None else checkpoint)
        config, model = load_model(source, weights=weights)
        bundled_classifier, stats = folder_extras(source) if Path(source).is_dir() else (None, None)
        found_classifier = None
        if isinstance(edit, ClassifierEdit):
            if classifier is not None or bundled_classifier is None:
                found_classifier = load_classifier(spec.weight("classifier").resolve(classifier))
            else:
                found_classifier = bundled_classifier
            stats = stats or found_classifier.stats
        if identity_stats is not None:
            stats = load_identity_stats(identity_stats)
        guide = None
        if edit is not None and not isinstance(edit, ClassifierEdit):
            from .text_edit import load_clip

            device = settings.get("device")
            guide = load_clip(spec.weight("clip").resolve(clip),
                              device=_resolved_device(device))
        return cls(model, config, edit=edit, classifier=found_classifier, stats=stats, clip=guide, **settings)

    @staticmethod
    def list_attributes(classifier: str | os.PathLike | None = None, checkpoint: str | os.PathLike | None = None,
                        **_) -> list[str]:
        """The attribute names of the classifier given (or of a converted folder's), else the 40 CelebA-HQ
        attributes of the released classifier."""
        from .weights import folder_extras, load_classifier

        if classifier is not None:
            return list(load_classifier(classifier).attributes)
        if checkpoint is not None and Path(checkpoint).is_dir():
            bundled, _ = folder_extras(checkpoint)
            if bundled is not None:
                return list(bundled.attributes)
        return list(ATTRIBUTES)

    # -- pass 1: the video's identity and its edit --------------------------------------------------------
    def scan_crops(self, crops: Iterable[np.ndarray]) -> None:
        """Average the identity over the crops (the frames where a face was found), then edit it."""
        total, count, first = None, 0, None
        with torch.no_grad():     # not inference mode: a text edit differentiates through the first frames
            for batch in self.batches(crops):
                frames = self.to_tensor(batch)
                identities = self.model.encoder.id_forward(frames).float()
                total = identities.sum(dim=0, keepdim=True) + (0 if total is None else total)
                count += identities.shape[0]
                if first is None:
                    first = frames.clone()
        if count == 0:
            raise InputError(None, "no face crop to take the identity from")
        self.identity = total / count
        self.edited_identity = self._edited(self.identity, first)

    def _edited(self, identity: torch.Tensor, first_frames: torch.Tensor) -> torch.Tensor:
        if self.edit is None:
            return identity
        if isinstance(self.edit, ClassifierEdit):
            direction = self.classifier.direction(self.edit.attribute)
            return classifier_edit(identity, direction, self.edit.scale, self.stats if self.edit.normalize else None)
        from .text_edit import text_edit_identity

        return text_edit_identity(self.model, self.clip, first_frames, identity, self.edit)

    # -- pass 2: invert, decode with the edited identity, blend ---------------------------------------------
    def edit_crops(self, crops: Iterable[np.ndarray]) -> Iterator[MaskedCrop]:
        if self.identity is None:
            raise RuntimeError("scan_crops must see the video before edit_crops")
        for batch in self.batches(crops):
            frames = self.to_tensor(batch)
            edited, mask = self.edit_frames(frames)
            masks = mask[:, 0].float().cpu().numpy()
            for crop, face in zip(self.to_crops(edited * 2 - 1), masks):
                yield MaskedCrop(crop, face)

    def edit_frames(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the blended crops in [0, 1], the parser's video foreground masks) of 256 px frames in [-1, 1]."""
        decoded, mask = self.decode_frames(frames)
        return blend_face(decoded, frames, mask), mask

    @torch.inference_mode()
    def decode_frames(self, frames: torch.Tensor, *, edited: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(the decoded frames in [-1, 1] at the frames' size, the parser's video foreground masks): DDIM
        inversion with the video identity, decoding with the edited one (`edited=False`: the unedited round
        trip)."""
        encoder = self.model.encoder
        landmarks = encoder.lndnet(frames)
        z_source = encoder.z_face(self.identity, landmarks)
        change = edited and self.edit is not None
        z_target = encoder.z_face(self.edited_identity, landmarks) if change else z_source
        mask = encoder.face_mask(frames, for_video=True)
        with self.compute_context():
            x_T = ddim_encode(self.model, self.model.to_unet_size(frames), z_source, self.steps, config=self.config)
            decoded = ddim_reconstruct(self.model, x_T, z_target, self.steps, config=self.config)
        return self.model.to_frame_size(decoded.float().clamp(-1, 1), frames.shape[-1]), mask


_TEXT_SETTINGS = ("clip_iterations", "clip_lr", "clip_loss_w", "id_loss_w", "l1_loss_w", "n_train_step")


def _edit_of(attribute, scale, normalize, text_from, text_to, text_settings):
    """The edit the options ask for: a classifier edit, a text edit, or None."""
    texts = (text_from, text_to)
    if attribute is not None and any(t is not None for t in texts):
        raise InputError(None, "--attribute and --text-from/--text-to exclude each other")
    if attribute is not None:
        return ClassifierEdit(attribute, DEFAULT_SCALE if scale is None else float(scale),
                              True if normalize is None else bool(normalize))
    if any(t is not None for t in texts):
        if not all(t for t in texts):
            raise InputError(None, "a text edit needs both --text-from and --text-to")
        from .text_edit import TextEdit

        renamed = {"iterations": text_settings.pop("clip_iterations", None), "lr": text_settings.pop("clip_lr", None)}
        values = {k: v for k, v in {**renamed, **text_settings}.items() if v is not None}
        if scale is not None:
            values["scale"] = float(scale)
        return TextEdit(text_from, text_to, **values)
    if text_settings:
        raise InputError(None, f"{', '.join('--' + k.replace('_', '-') for k in text_settings)} "
                               "only apply to a text edit (--text-from/--text-to)")
    log.info("no edit asked: the video is inverted and decoded unedited")
    return None


def _resolved_device(device) -> torch.device:
    from ...nn.device import resolve_device

    return resolve_device(device)
