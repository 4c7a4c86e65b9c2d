"""Text-directed edits of DVA's video identity: the CLIP optimisation of the official `editing_CLIP.py`.

Official behaviour (`editing_CLIP.py`, `losses/clip_loss.py`, `utils/text_templates.py`):

- Only the **first frame** of the video takes part. Its own ArcFace identity `start_cond` (not the video
  average) is the starting point: a free 512-d parameter initialised to it is optimised; its l2-normalised
  value, with frame 0's landmarks (`forward_with_id`), gives the semantic code z_face the UNet sees.
- A short DDIM process of `--n_train_step` steps (default 5: timesteps 800, 600, 400, 200, 0 of the 1000-step
  linear schedule) is fixed before the optimisation, without gradients: frame 0 is DDIM-inverted with its
  own (unedited) code to x_T (the n - 1 reverse steps of `ddim_reverse_sample_loop`), then decoded again
  with the same code, which gives the n + 1 states x_800, x_600, x_400, x_200, x_0, x_-1 (the decoded image).
- Each iteration takes **one** DDIM step (eta 0, x0 clamped to [-1, 1]) from each of the first n states, all
  in one batch, with the edited code; the results are compared with the next states of the fixed path:
  - CLIP: the directional loss L between the images of the fixed path (source) and of the edited steps
    (target), used as -log((2 - L) / 2), weight `--clip_loss_w` (3);
  - identity: 1 - cos(normalised edited identity, frame 0's identity), weight `--id_loss_w` (5; the README
    example uses 1);
  - L1: mean |path·m - edited·m| with m the parser's foreground mask of frame 0 (the *image* class set,
    `face_mask(x)` with its default `for_video=False`: everything but background, hat and cloth),
    weight `--l1_loss_w` (5).
- Adam (lr `--lr` 0.002, no weight decay) for **2000** iterations (hard-coded; there is no flag), the step
  taken after each backward pass. The edit is Δ = parameter - frame 0's identity (Δ of the raw parameter,
  not of its normalised value), applied to the video average identity (the mean of the per-frame unit
  ArcFace features, itself not normalised): `l2_norm(avg_cond + scale·Δ)`, `--scale` default 1.0 (the
  README example uses 0.5). The same edited identity is then decoded for every frame (not done here).
- The directional loss (`CLIPLoss` with lambda_direction 1; the global, patch, manifold (angle) and texture
  terms all have weight 0 and are never evaluated): text direction = mean over the 79 ImageNet prompt
  templates of (unit target-text feature - unit source-text feature), normalised, computed once; image
  direction = unit target-image feature - unit source-image feature, divided by (its norm + 1e-7);
  L = mean over the batch of 1 - cos(image direction, text direction) (cos with eps 1e-8). If every image
  direction is exactly zero, L = mean of 1 - cos(target-image feature, text direction) instead.
- CLIP image preprocessing, applied to tensors: [-1, 1] -> [0, 1], bicubic resize of the shorter side to
  the model's input size (torchvision 0.13: no antialiasing on tensors), centre crop, CLIP mean/std.
- CLIP models: `ViT-B/16` is the one the loss uses (run in fp16, as `clip.load` leaves it on CUDA). `RN50`
  is also loaded, but only the texture loss (`cnn_feature_loss`, lambda_texture 0) would use it, so it has no
  effect on the result.

transformers stand-ins: `CLIPModel` covers OpenAI's ViT CLIPs; ViT-B/16 is the `openai/clip-vit-base-patch16`
layout (`get_image_features` / `get_text_features` are OpenAI's `encode_image` / `encode_text`:
projected class token / projected end-of-text token). transformers has no CLIPModel for the ResNet CLIPs
(RN50 etc.), so we load none: as RN50 never contributes to the official loss, nothing changes. The folder
given must hold a transformers CLIP (config.json with model_type "clip", weights, tokenizer); for the
official behaviour use a ViT-B/16 one. Differences we accept: the text goes through transformers'
CLIPTokenizer (same BPE, same lower-casing; pads after the end-of-text token, which the causal text model
never attends to) and the CLIP runs in the dtype asked for (the loss itself is computed in float32).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import InputError
from ...nn.device import ModelHolder
from ...progress import progress as progress_bar
from .model import DVAModel
from .sampling import ddim_encode, ddim_schedule

# OpenAI CLIP's normalisation (also transformers' CLIPImageProcessor default)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
DIRECTION_EPS = 1e-7      # added to the image direction's norm
COSINE_EPS = 1e-8         # torch.nn.CosineSimilarity's default

# the ImageNet prompt templates (CLIP's zero-shot list, as the official `imagenet_templates`)
PROMPT_TEMPLATES: tuple[str, ...] = (
    'a bad photo of a {}.', 'a sculpture of a {}.', 'a photo of the hard to see {}.',
    'a low resolution photo of the {}.', 'a rendering of a {}.', 'graffiti of a {}.',
    'a bad photo of the {}.', 'a cropped photo of the {}.', 'a tattoo of a {}.', 'the embroidered {}.',
    'a photo of a hard to see {}.', 'a bright photo of a {}.', 'a photo of a clean {}.',
    'a photo of a dirty {}.', 'a dark photo of the {}.', 'a drawing of a {}.', 'a photo of my {}.',
    'the plastic {}.', 'a photo of the cool {}.', 'a close-up photo of a {}.',
    'a black and white photo of the {}.', 'a painting of the {}.', 'a painting of a {}.',
    'a pixelated photo of the {}.', 'a sculpture of the {}.', 'a bright photo of the {}.',
    'a cropped photo of a {}.', 'a plastic {}.', 'a photo of the dirty {}.',
    'a jpeg corrupted photo of a {}.', 'a blurry photo of the {}.', 'a photo of the {}.',
    'a good photo of the {}.', 'a rendering of the {}.', 'a {} in a video game.', 'a photo of one {}.',
    'a doodle of a {}.', 'a close-up photo of the {}.', 'a photo of a {}.', 'the origami {}.',
    'the {} in a video game.', 'a sketch of a {}.', 'a doodle of the {}.', 'a origami {}.',
    'a low resolution photo of a {}.', 'the toy {}.', 'a rendition of the {}.', 'a photo of the clean {}.',
    'a photo of a large {}.', 'a rendition of a {}.', 'a photo of a nice {}.', 'a photo of a weird {}.',
    'a blurry photo of a {}.', 'a cartoon {}.', 'art of a {}.', 'a sketch of the {}.', 'a embroidered {}.',
    'a pixelated photo of a {}.', 'itap of the {}.', 'a jpeg corrupted photo of the {}.',
    'a good photo of a {}.', 'a plushie {}.', 'a photo of the nice {}.', 'a photo of the small {}.',
    'a photo of the weird {}.', 'the cartoon {}.', 'art of the {}.', 'a drawing of the {}.',
    'a photo of the large {}.', 'a black and white photo of a {}.', 'the plushie {}.',
    'a dark photo of a {}.', 'itap of a {}.', 'graffiti of the {}.', 'a toy {}.', 'itap of my {}.',
    'a photo of a cool {}.', 'a photo of a small {}.', 'a tattoo of the {}.',
)


@dataclass(frozen=True)
class TextEdit:
    """One text edit: move the identity from `text_from` towards `text_to` (official flag names in brackets:
    `--src_txt`, `--trg_txt`, `--lr`, `--scale`, `--clip_loss_w`, `--id_loss_w`, `--l1_loss_w`,
    `--n_train_step`; `iterations` is the hard-coded 2000, `lambda_direction` CLIPLoss's weight of the
    directional term)."""

    text_from: str
    text_to: str
    iterations: int = 2000
    lr: float = 0.002
    scale: float = 1.0
    clip_loss_w: float = 3.0
    id_loss_w: float = 5.0
    l1_loss_w: float = 5.0
    n_train_step: int = 5
    lambda_direction: float = 1.0

    def __post_init__(self):
        if self.iterations < 0:
            raise InputError(None, f"text edit: iterations must be >= 0, got {self.iterations}")
        if self.n_train_step < 1:
            raise InputError(None, f"text edit: n_train_step must be >= 1, got {self.n_train_step}")
        if not self.lr > 0:
            raise InputError(None, f"text edit: lr must be > 0, got {self.lr}")


def l2_norm(x: torch.Tensor) -> torch.Tensor:
    """x divided by its Euclidean norm along dim 1 (no epsilon, as the official helper)."""
    return x / torch.norm(x, 2, 1, True)


def directional_loss(source: torch.Tensor, target: torch.Tensor, text_direction: torch.Tensor) -> torch.Tensor:
    """CLIPLoss's directional term: mean of 1 - cos(image direction, text direction) over the batch, where the
    image direction is (target - source) / (|target - source| + 1e-7) of unit image features (N, D) and
    `text_direction` is (1, D). An all-zero image direction falls back to cos(target, text direction)."""
    direction = target - source
    direction = direction / (direction.norm(dim=-1, keepdim=True) + DIRECTION_EPS)
    if bool(torch.all(direction == 0)):
        direction = target
    return (1 - F.cosine_similarity(direction, text_direction, dim=1, eps=COSINE_EPS)).mean()


def clip_loss_term(directional: torch.Tensor) -> torch.Tensor:
    """The CLIP term of the objective: -log((2 - L) / 2) of the directional loss L in [0, 2]."""
    return -torch.log((2 - directional) / 2)


class ClipGuide(ModelHolder):
    """A frozen transformers CLIP and its tokenizer, with differentiable tensor preprocessing.

    Images are (N, 3, H, W) in [-1, 1] on any device; they are moved to the CLIP's device and dtype, and
    the unit features come back in float32 on the images' device."""

    def __init__(self, model: nn.Module, tokenizer, *, image_size: int | None = None,
                 mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD):
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.image_size = int(image_size or model.config.vision_config.image_size)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.max_length = int(model.config.text_config.max_position_embeddings)
        self._text_cache: dict[tuple[str, str, tuple[str, ...]], torch.Tensor] = {}

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "ClipGuide":
        self.model.to(device=device, dtype=dtype)
        self._text_cache.clear()
        return self

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """[-1, 1] images -> CLIP pixel values (bicubic resize of the shorter side without antialiasing,
        centre crop, mean/std), on the CLIP's device and dtype; differentiable."""
        x = (images.to(self.device, torch.float32) + 1) / 2
        size = self.image_size
        height, width = x.shape[-2:]
        if (height, width) != (size, size):
            short, long = min(height, width), max(height, width)
            other = int(size * long / short)
            new = (size, other) if height <= width else (other, size)
            if new != (height, width):
                x = F.interpolate(x, new, mode="bicubic", align_corners=False)
            top, left = int(round((x.shape[-2] - size) / 2.0)), int(round((x.shape[-1] - size) / 2.0))
            x = x[..., top:top + size, left:left + size]
        mean = torch.tensor(self.mean, device=x.device).reshape(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).reshape(1, 3, 1, 1)
        return ((x - mean) / std).to(self.dtype)

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """Unit CLIP image features (N, D), float32, on the images' device."""
        features = _as_tensor(self.model.get_image_features(pixel_values=self.preprocess(images))).float()
        return (features / features.norm(dim=-1, keepdim=True)).to(images.device)

    @torch.no_grad()
    def text_features(self, texts: Sequence[str]) -> torch.Tensor:
        """Unit CLIP text features (N, D), float32, on the CLIP's device."""
        tokens = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                                return_tensors="pt").to(self.device)
        features = _as_tensor(self.model.get_text_features(input_ids=tokens["input_ids"],
                                                           attention_mask=tokens["attention_mask"])).float()
        return features / features.norm(dim=-1, keepdim=True)

    def text_direction(self, text_from: str, text_to: str,
                       templates: Sequence[str] = PROMPT_TEMPLATES) -> torch.Tensor:
        """(1, D) unit mean over the templates of unit(target text) - unit(source text)."""
        key = (text_from, text_to, tuple(templates))
        if key not in self._text_cache:
            source = self.text_features([t.format(text_from) for t in templates])
            target = self.text_features([t.format(text_to) for t in templates])
            direction = (target - source).mean(dim=0, keepdim=True)
            self._text_cache[key] = direction / direction.norm(dim=-1, keepdim=True)
        return self._text_cache[key]


def _as_tensor(output) -> torch.Tensor:
    # transformers 5 may return a model output whose pooled projection is the feature tensor
    if isinstance(output, torch.Tensor):
        return output
    for name in ("pooler_output", "image_embeds", "text_embeds"):
        value = getattr(output, name, None)
        if isinstance(value, torch.Tensor):
            return value
    raise TypeError(f"unexpected CLIP feature output {type(output).__name__}")


def load_clip(folder: str | os.PathLike, *, device: torch.device | str = "cpu",
              dtype: torch.dtype = torch.float32) -> ClipGuide:
    """A transformers CLIP (model + tokenizer) from a local folder, frozen, on `device` in `dtype`.

    Mean/std come from the folder's preprocessor_config.json when it has them (else OpenAI's), the input
    size from the vision config. Nothing is ever downloaded."""
    path = Path(folder)
    if not path.is_dir():
        raise InputError(path, "no such CLIP model folder (give a local transformers CLIP, e.g. a saved "
                               "openai/clip-vit-base-patch16)")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise InputError(path, "not a transformers CLIP folder: it has no config.json")
    try:
        model_type = json.loads(config_file.read_text()).get("model_type")
    except (OSError, ValueError, AttributeError) as exc:
        raise InputError(config_file, f"unreadable CLIP config: {_first_line(exc)}") from exc
    if model_type != "clip":
        raise InputError(path, f"not a transformers CLIP folder: config.json has model_type {model_type!r}, "
                               "expected 'clip'")
    if not ((path / "tokenizer.json").is_file()
            or ((path / "vocab.json").is_file() and (path / "merges.txt").is_file())):
        raise InputError(path, "not a complete CLIP folder: no tokenizer (tokenizer.json, or vocab.json + "
                               "merges.txt)")
    from transformers import CLIPModel, CLIPTokenizer

    try:
        model = CLIPModel.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise InputError(path, f"cannot load the CLIP model: {_first_line(exc)}") from exc
    try:
        tokenizer = CLIPTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise InputError(path, f"cannot load the CLIP tokenizer (vocab.json + merges.txt or tokenizer.json): "
                               f"{_first_line(exc)}") from exc
    mean, std = CLIP_MEAN, CLIP_STD
    processor_file = path / "preprocessor_config.json"
    if processor_file.is_file():
        try:
            processor = json.loads(processor_file.read_text())
            mean = tuple(processor.get("image_mean", mean))
            std = tuple(processor.get("image_std", std))
        except (OSError, ValueError, AttributeError, TypeError) as exc:
            raise InputError(processor_file, f"unreadable preprocessor config: {_first_line(exc)}") from exc
        if len(mean) != 3 or len(std) != 3:
            raise InputError(processor_file, "image_mean and image_std must have 3 values each")
    model.to(device=device, dtype=dtype)
    return ClipGuide(model, tokenizer, mean=mean, std=std)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def ddim_step(unet: nn.Module, schedule, x: torch.Tensor, indices: Sequence[int],
              cond: torch.Tensor | None) -> torch.Tensor:
    """One deterministic DDIM step (eta 0) of each sample of `x` from its own schedule index to the one below
    (abar = 1 below index 0), x0 clamped to [-1, 1] and eps re-derived from it; differentiable (the
    official `ddim_sample` with a batch of different t)."""
    index = torch.as_tensor(list(indices), dtype=torch.long)
    if index.numel() != x.shape[0]:
        raise ValueError(f"one schedule index per sample: {index.numel()} for a batch of {x.shape[0]}")

    def coef(array: torch.Tensor) -> torch.Tensor:
        return array[index].to(device=x.device, dtype=x.dtype).reshape(-1, 1, 1, 1)

    timesteps = schedule.timestep_map[index].to(x.device)
    eps = unet(x, timesteps, cond)
    x0 = (coef(schedule.sqrt_recip_alphas_cumprod) * x - coef(schedule.sqrt_recipm1_alphas_cumprod) * eps)
    x0 = x0.clamp(-1.0, 1.0)
    eps = (coef(schedule.sqrt_recip_alphas_cumprod) * x - x0) / coef(schedule.sqrt_recipm1_alphas_cumprod)
    abar_prev = schedule.alphas_cumprod_prev
    return coef(abar_prev.sqrt()) * x0 + coef((1 - abar_prev).sqrt()) * eps


class _Frozen:
    """Puts a module in eval mode without gradients for its parameters, and restores both afterwards."""

    def __init__(self, module: nn.Module):
        self.module = module

    def __enter__(self):
        self.training = self.module.training
        self.flags = [(p, p.requires_grad) for p in self.module.parameters()]
        self.module.eval()
        for p, _ in self.flags:
            p.requires_grad_(False)
        return self.module

    def __exit__(self, *exc):
        for p, flag in self.flags:
            p.requires_grad_(flag)
        self.module.train(self.training)
        return False


def text_edit_identity(model: DVAModel, guide: ClipGuide, frames: torch.Tensor, identity: torch.Tensor,
                       edit: TextEdit, *, progress: bool | None = None,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """frames: the crops the official optimisation uses (B,3,256,256) in [-1,1]; identity: the video's
    average identity (1,512). Returns the edited identity (1,512) the decoder uses (already l2-normalised,
    the official final formula).

    As the official script, only the first frame (`frames[0]`) is used: its own ArcFace identity is the
    optimisation's start and the identity loss' reference; the Δ found is added (times `edit.scale`) to
    `identity`. The optimisation is deterministic: `generator` is accepted for a uniform interface and not
    used. The model's weights are left untouched (frozen during the run, their flags and mode restored)."""
    del generator
    param = next(model.parameters())
    device, dtype = param.device, param.dtype
    identity = identity.to(device=device, dtype=dtype).reshape(1, -1)
    if edit.iterations == 0:
        return l2_norm(identity)
    if frames.ndim != 4 or frames.shape[0] < 1 or frames.shape[1] != 3:
        raise ValueError(f"frames must be (B, 3, H, W) with B >= 1, got {tuple(frames.shape)}")
    frame = frames[:1].to(device=device, dtype=dtype)
    steps = edit.n_train_step

    with _Frozen(model):
        schedule = ddim_schedule(steps, model.config)
        descending = list(range(schedule.num_steps))[::-1]
        with torch.no_grad():
            start_cond = model.encoder.id_forward(frame)
            start_latent = model.encoder.forward_with_id(start_cond, frame)
            x0 = model.to_unet_size(frame)
            state = ddim_encode(model, x0, start_latent, steps, config=model.config)
            path = [state]
            for index in descending:
                state = ddim_step(model, schedule, state, [index], start_latent)
                path.append(state)
            path = torch.cat(path)                      # n + 1 states, noisiest first
            mask = model.to_unet_size(model.encoder.face_mask(frame))
            text_direction = guide.text_direction(edit.text_from, edit.text_to).to(device)
            # the fixed path's CLIP features do not change from one iteration to the next
            source_features = guide.image_features(path[1:])
        starts, targets = path[:-1], path[1:]

        edit_cond = nn.Parameter(start_cond.clone())
        optimizer = torch.optim.Adam([edit_cond], lr=edit.lr, weight_decay=0)
        with torch.enable_grad():
            for _ in progress_bar(range(edit.iterations), total=edit.iterations, desc="DVA text edit",
                                  unit="it", enabled=progress):
                cond = l2_norm(edit_cond)
                latent = model.encoder.forward_with_id(cond, frame)
                optimizer.zero_grad()
                stepped = ddim_step(model, schedule, starts, descending, latent.expand(len(descending), -1))
                loss_clip = clip_loss_term(edit.lambda_direction * directional_loss(
                    source_features, guide.image_features(stepped), text_direction))
                loss_id = 1 - (cond[0] * start_cond[0]).sum()
                loss_l1 = (targets * mask - stepped * mask).abs().mean()
                loss = edit.clip_loss_w * loss_clip + edit.id_loss_w * loss_id + edit.l1_loss_w * loss_l1
                loss.backward()
                optimizer.step()
        delta = edit_cond.detach() - start_cond
    return l2_norm(identity + edit.scale * delta)
