"""The self-supervised depth stage of DaGAN: training the face-depth network as Face-Depth-Network does
(Monodepth2 with learned camera intrinsics), as a `TrainingMethod` on the shared trainer.

Items are frame triplets (previous, target, next) of a clip. The depth network predicts the target's
disparity at 4 scales; the pose network predicts the camera motion (and intrinsics) from the target to
each neighbour, the pair given in temporal order and the motion inverted for the previous frame. Each
scale's disparity, upsampled to full resolution, warps both neighbours onto the target; the loss per
pixel is the smaller of the two photometric errors 0.85 (1 - SSIM) / 2 + 0.15 L1 (per-pixel minimum
reprojection), compared with the error of the unwarped neighbours (auto-masking: pixels that a static
camera explains as well are left out), plus edge-aware smoothness of the mean-normalised disparity
(weight 1e-3 / 2^scale); scales are averaged. Networks see colour-jittered frames, the losses use the
unjittered ones. Each pair's own intrinsics warp its neighbour (FDN keeps the last pair's for both).

The trained network is exported in Monodepth2's layout (`OUTPUT/depth/encoder.pth`, `depth.pth`), the
files `faceanim train dagan --depth-encoder/--depth-decoder` read.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from ...checkpoints import load_into, load_state_dict
from ...errors import InputError
from ...fileio import atomic_path
from ...train import (FitResult, PairOptions, Phase, TrainingMethod, fit_in_epochs, frame_augmentation, image_grid,
                      open_frame_pairs)
from ...media.image import resize_square
from ...train.data import SampleKey
from .config import AugmentationParams, DepthTrainConfig, WeightFiles
from .depth import DepthDecoder, DepthEncoder
from .monodepth import (PoseNetwork, camera_motion, disparity_to_depth, photometric_error, reprojection_grid,
                        smoothness_loss, warp_frame)
from .training import stretched

EXPORT_FOLDER = "depth"


class DepthNetwork(nn.Module):
    """DaGAN's depth network (`depth_encoder`, `depth_decoder`) returning sigmoid disparities at
    `num_scales` scales (full resolution first)."""

    def __init__(self, num_layers: int = 18, num_scales: int = 4):
        super().__init__()
        self.depth_encoder = DepthEncoder(num_layers)
        self.depth_decoder = DepthDecoder(self.depth_encoder.num_ch_enc)
        self.num_scales = num_scales

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        logits = self.depth_decoder.forward_scales(self.depth_encoder(image), self.num_scales)
        return [torch.sigmoid(x) for x in logits]


class FrameTripletDataset(Dataset):
    """Items: every frame with a neighbour `stride` frames before and after it, in every video.

    An item is a dict: `frames` (3, 3, S, S) float in [0, 1] (previous, target, next), `frames_aug`
    (the same frames colour-jittered, with probability `jitter_probability`) and `name`. Flips apply
    to both; all randomness comes from the `(index, seed)` key."""

    def __init__(self, videos: Sequence[Any], size: int, *, stride: int = 1,
                 augmentation: AugmentationParams = AugmentationParams(time_flip=False),
                 jitter_probability: float = 0.5):
        self.videos = [v for v in videos if v.num_frames() > 2 * stride]
        if not self.videos:
            raise InputError(None, f"no video has the {2 * stride + 1} frames a training triplet needs")
        counts = [v.num_frames() - 2 * stride for v in self.videos]
        self.starts = np.cumsum([0] + counts)
        self.size, self.stride, self.jitter_probability = size, stride, jitter_probability
        self.flips = frame_augmentation(AugmentationParams(horizontal_flip=augmentation.horizontal_flip,
                                                      time_flip=augmentation.time_flip, brightness=0,
                                                      contrast=0, saturation=0, hue=0))
        self.jitter = frame_augmentation(AugmentationParams(horizontal_flip=False, time_flip=False,
                                                       brightness=augmentation.brightness,
                                                       contrast=augmentation.contrast,
                                                       saturation=augmentation.saturation, hue=augmentation.hue))

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, key: int | SampleKey) -> dict:
        index, seed = key if isinstance(key, tuple) else (key, int(torch.randint(0, 2 ** 62, ()).item()))
        rng = np.random.default_rng(seed)
        video_index = int(np.searchsorted(self.starts, index, side="right") - 1)
        video = self.videos[video_index]
        target = index - int(self.starts[video_index]) + self.stride
        frames = video.read([target - self.stride, target, target + self.stride])
        frames = self.flips([resize_square(f, self.size).astype(np.float32) / 255.0 for f in frames], rng)
        jittered = self.jitter(frames, rng) if rng.random() < self.jitter_probability else frames
        return {"frames": _stacked(frames), "frames_aug": _stacked(jittered), "name": video.name}


def _stacked(frames: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.stack(frames).transpose(0, 3, 1, 2)))


def depth_dataset(config: DepthTrainConfig, data: str | os.PathLike) -> FrameTripletDataset:
    """Triplets from the clips of `data` (preprocessed clips, or the official ROOT/train layout)."""
    videos = open_frame_pairs(data, "train", PairOptions(frame_size=None)).videos   # finds the clips of either layout
    return FrameTripletDataset(videos, config.image_size, stride=config.frame_stride,
                               augmentation=config.augmentation, jitter_probability=config.jitter_probability)


class DepthTraining(TrainingMethod):
    """Trains "depth" (DepthNetwork) and "pose" (PoseNetwork) with one Adam optimizer (see the module
    docstring); `steps_per_epoch` turns the scheduler's step size in epochs into optimizer steps."""

    def __init__(self, config: DepthTrainConfig, steps_per_epoch: int = 1, resnet: str | None = None):
        self.config = config
        self.steps_per_epoch = max(1, int(steps_per_epoch))
        self.resnet = resnet

    def build_models(self) -> dict[str, nn.Module]:
        config = self.config
        models = {"depth": DepthNetwork(config.num_layers, config.num_scales),
                  "pose": PoseNetwork(config.num_layers, config.image_size)}
        if self.resnet is not None:
            load_imagenet_resnet(models, self.resnet)
        return models

    def build_optimizers(self, models: Mapping[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
        params = [*models["depth"].parameters(), *models["pose"].parameters()]
        return {"depth": torch.optim.Adam(params, lr=self.config.learning_rate)}

    def build_schedulers(self, optimizers: Mapping[str, torch.optim.Optimizer]) -> dict[str, Any]:
        step_size = self.config.scheduler_step_size * self.steps_per_epoch
        return {"depth": torch.optim.lr_scheduler.StepLR(optimizers["depth"], step_size, gamma=0.1)}

    def phases(self) -> list[Phase]:
        return [Phase("depth", ("depth",), self.loss)]

    def _predict(self, models: Mapping[str, nn.Module], batch: dict) -> tuple[list[torch.Tensor], list]:
        """Disparities of the target at every scale; (motion, intrinsics) to the previous and next frame."""
        previous, target, following = batch["frames_aug"].unbind(1)
        disparities = models["depth"](target)
        cameras = []
        for earlier, later, invert in ((previous, target, True), (target, following, False)):
            axis_angle, translation, intrinsics = models["pose"](earlier, later)
            cameras.append((camera_motion(axis_angle, translation, invert=invert), intrinsics))
        return disparities, cameras

    def loss(self, models: Mapping[str, nn.Module], batch: dict, context: dict) -> dict[str, torch.Tensor]:
        config = self.config
        previous, target, following = batch["frames"].unbind(1)
        disparities, cameras = self._predict(models, batch)
        photometric, smoothness = [], []
        identity = [photometric_error(n, target, config.ssim_weight) for n in (previous, following)]
        for scale, disparity in enumerate(disparities):
            errors = [photometric_error(warped, target, config.ssim_weight)
                      for warped in self._warped(disparity, cameras, (previous, following))]
            if config.automask:  # tiny noise breaks ties between static and warped pixels
                errors += [e + 1e-5 * torch.randn_like(e) for e in identity]
            photometric.append(torch.cat(errors, dim=1).min(dim=1).values.mean())
            colour = F.interpolate(target, size=disparity.shape[2:], mode="area") if scale else target
            normalised = disparity / (disparity.mean(dim=(2, 3), keepdim=True) + 1e-7)
            smoothness.append(config.disparity_smoothness * smoothness_loss(normalised, colour) / 2 ** scale)
        return {"photometric": sum(photometric) / len(photometric), "smoothness": sum(smoothness) / len(smoothness)}

    def _warped(self, disparity: torch.Tensor, cameras: list, neighbours: tuple) -> list[torch.Tensor]:
        """The neighbours warped onto the target with this scale's disparity (upsampled to full size)."""
        size = neighbours[0].shape[2:]
        if disparity.shape[2:] != size:
            disparity = F.interpolate(disparity, size=size, mode="bilinear", align_corners=False)
        depth = disparity_to_depth(disparity, self.config.min_depth, self.config.max_depth)
        return [warp_frame(frame, reprojection_grid(depth, intrinsics, motion))
                for frame, (motion, intrinsics) in zip(neighbours, cameras)]

    def samples(self, models: Mapping[str, nn.Module], batch: dict) -> torch.Tensor:
        """Columns: previous | target | next | previous and next warped onto the target | disparity."""
        batch = {key: value[:4] for key, value in batch.items() if torch.is_tensor(value)}
        previous, target, following = batch["frames"].unbind(1)
        disparities, cameras = self._predict(models, batch)
        warped = self._warped(disparities[0], cameras, (previous, following))
        return image_grid([previous, target, following, *warped, stretched(disparities[0])])


def load_imagenet_resnet(models: Mapping[str, nn.Module], path: str | os.PathLike) -> None:
    """Start both encoders from a torchvision-format ImageNet ResNet; the pose encoder's first conv
    sees two frames, so its weights are the RGB ones repeated and halved (as Monodepth2 does)."""
    state = load_state_dict(path)
    depth_encoder = models["depth"].depth_encoder.encoder
    load_into(depth_encoder, state, strict=True, source=path)
    pose_state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    pose_state["conv1.weight"] = torch.cat([state["conv1.weight"]] * 2, dim=1) / 2
    load_into(models["pose"].encoder, pose_state, strict=True, source=path)


def export_depth(models: Mapping[str, nn.Module], folder: str | os.PathLike, image_size: int) -> Path:
    """The depth network as Monodepth2 files: `encoder.pth` (with height/width/use_stereo) and `depth.pth`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    network = models["depth"]
    encoder = {k: v.detach().cpu() for k, v in network.depth_encoder.state_dict().items()}
    files = {"encoder.pth": {**encoder, "height": image_size, "width": image_size, "use_stereo": False},
             "depth.pth": {k: v.detach().cpu() for k, v in network.depth_decoder.state_dict().items()}}
    for name, contents in files.items():
        with atomic_path(folder / name) as tmp:
            torch.save(contents, tmp)
    return folder


def train_depth(config: DepthTrainConfig, data: str | os.PathLike, output: str | os.PathLike, *,
                weights: WeightFiles = WeightFiles(), resume: str | None = None,
                max_steps: int | None = None) -> tuple[FitResult, Path | None]:
    """Train (or resume) the depth stage on `data` into `output`; returns the fit result and the folder
    of the exported Monodepth2 files (`output/depth`, main process; None on the others)."""
    resnet = weights.resnet or config.weights.resnet
    if resnet is not None and not Path(resnet).is_file():
        raise InputError(resnet, "ImageNet ResNet weights not found (--resnet)")
    dataset = depth_dataset(config, data)
    trainer, result = fit_in_epochs(lambda per_epoch: DepthTraining(config, per_epoch, resnet), dataset,
                                    config.samples_per_epoch, config, record={"stage": "depth"}, output=output,
                                    max_steps=max_steps, resume=resume)
    exported = None
    if trainer.accelerator.is_main_process:
        exported = export_depth(trainer.models, Path(output) / EXPORT_FOLDER, config.image_size)
    return result, exported
