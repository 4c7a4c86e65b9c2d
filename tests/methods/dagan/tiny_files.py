"""A small DaGAN (the `tiny` preset) with seeded random weights, and that model written as the official
files (`*.pth.tar` with DDP prefixes, Monodepth2 `encoder.pth`/`depth.pth`, the official YAML) and as a
converted folder: what the pipeline, convert and CLI tests load."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
import yaml

from faceanim.methods.dagan import DaGANModel, DaGANConfig
from faceanim.methods.dagan.config import tiny
from faceanim.methods.dagan.weights import save_converted

from .test_weights import save_official_layout


def tiny_model(seed: int = 0, config: DaGANConfig | None = None) -> DaGANModel:
    """Random weights with batch-norm statistics and an attention gate away from their defaults, so that
    every part of the network changes the output."""
    torch.manual_seed(seed)
    model = DaGANModel(config or tiny(), discriminator=True)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.copy_(0.1 * torch.randn(module.running_mean.shape, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(module.running_var.shape, generator=generator))
        model.generator.AttnModule.gamma.fill_(0.7)
    return model.eval()


def official_yaml(config: DaGANConfig) -> dict:
    """`config` as the official YAML's `model_params` (with the frame size in `dataset_params`)."""
    generator = dataclasses.asdict(config.generator)
    generator.pop("kind")
    generator["dense_motion_params"] = generator.pop("dense_motion")
    return {"dataset_params": {"frame_shape": [config.image_size, config.image_size, 3]},
            "model_params": {
                "common_params": {"num_kp": 10, "num_channels": config.num_channels,
                                  "estimate_jacobian": config.estimate_jacobian},
                "kp_detector_params": dataclasses.asdict(config.kp_detector),
                "generator_params": generator,
                "discriminator_params": {**dataclasses.asdict(config.discriminator),
                                         "scales": list(config.discriminator.scales)}}}


def write_files(folder: Path, model: DaGANModel) -> dict[str, Path]:
    """The model as official files (checkpoint, depth_encoder, depth_decoder, config) and as a converted
    folder (converted); the YAML's num_kp is the official 10, so --kp-num or the checkpoint must say."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = save_official_layout(folder, model.state_dict())
    paths["config"] = folder / "tiny-adv-64.yaml"
    paths["config"].write_text(yaml.safe_dump(official_yaml(model.config)))
    paths["converted"] = save_converted(model, folder / "converted")
    return paths


def crops(count: int, size: int = 64, seed: int = 0) -> list[np.ndarray]:
    """A moving smooth pattern: `count` uint8 (size, size, 3) crops."""
    y, x = np.mgrid[0:size, 0:size] / size
    rng = np.random.default_rng(seed)
    phases = rng.uniform(0, 2 * np.pi, 3)
    frames = []
    for t in range(count):
        channels = [np.sin(2 * np.pi * (x * (1 + c) + y * (2 - c) * 0.7) + phases[c] + 0.3 * t) for c in range(3)]
        frames.append(((np.stack(channels, axis=2) + 1) * 127.5).astype(np.uint8))
    return frames
