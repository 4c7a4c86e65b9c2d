"""The depth stage: camera geometry, photometric and smoothness terms, the pose network's intrinsics,
frame triplets of a clip, a short run on real face crops that lowers the photometric loss, and the
exported Monodepth2 files that the DaGAN stage reads."""
from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np
import pytest
import torch

from faceanim.checkpoints import load_into
from faceanim.errors import InputError
from faceanim.media import write_image
from faceanim.methods.dagan import DaGANModel
from faceanim.methods.dagan.config import AugmentationParams, load_train_config, tiny
from faceanim.methods.dagan.depth_training import (DepthTraining, FrameTripletDataset, depth_dataset,
                                                   train_depth)
from faceanim.methods.dagan.monodepth import (PoseNetwork, camera_motion, disparity_to_depth, intrinsics_matrix,
                                              photometric_error, reprojection_grid, rotation_from_axis_angle,
                                              smoothness_loss, ssim_distance, warp_frame)
from faceanim.methods.dagan.weights import load_official
from faceanim.train import state
from faceanim.train.data import FrameFolder

DEPTH_TINY = load_train_config("depth_tiny.yaml")
NO_AUGMENTATION = AugmentationParams(horizontal_flip=False, time_flip=False, brightness=0, contrast=0,
                                     saturation=0, hue=0)


def _camera(batch: int, focal: float, centre: tuple[float, float]) -> torch.Tensor:
    return intrinsics_matrix(torch.full((batch, 2), focal), torch.tensor([centre] * batch))


# ------------------------------------------------------------------------------------ geometry

def test_a_still_camera_maps_every_pixel_onto_itself():
    depth = torch.rand(2, 1, 8, 12) + 0.5
    grid = reprojection_grid(depth, _camera(2, 10.0, (5.5, 3.5)), camera_motion(torch.zeros(2, 3), torch.zeros(2, 3)))
    frame = torch.rand(2, 3, 8, 12)
    assert torch.allclose(warp_frame(frame, grid), frame, atol=1e-5)


def test_a_sideways_camera_shifts_pixels_by_focal_times_baseline_over_depth():
    depth = torch.full((1, 1, 8, 12), 2.0)
    motion = camera_motion(torch.zeros(1, 3), torch.tensor([[0.2, 0.0, 0.0]]))
    grid = reprojection_grid(depth, _camera(1, 10.0, (5.5, 3.5)), motion)
    pixels_x = (grid[0, ..., 0] + 1) / 2 * 11                      # back to pixel units (align_corners)
    assert torch.allclose(pixels_x - torch.arange(12.0), torch.ones(8, 12), atol=1e-4)   # 10 * 0.2 / 2
    assert torch.allclose(grid[0, ..., 1], torch.linspace(-1, 1, 8).view(8, 1).expand(8, 12), atol=1e-5)


def test_rotations_and_inverted_motions():
    quarter = rotation_from_axis_angle(torch.tensor([[0.0, 0.0, math.pi / 2]]))[0]
    assert torch.allclose(quarter, torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]]), atol=1e-6)
    axis_angle, translation = torch.tensor([[0.1, -0.2, 0.3]]), torch.tensor([[0.5, 0.1, -0.2]])
    rotation = rotation_from_axis_angle(axis_angle)[0]
    assert torch.allclose(rotation @ rotation.T, torch.eye(3), atol=1e-6)
    assert torch.linalg.det(rotation) == pytest.approx(1.0, abs=1e-6)
    there, back = camera_motion(axis_angle, translation), camera_motion(axis_angle, translation, invert=True)
    assert torch.allclose(there @ back, torch.eye(4), atol=1e-6)
    assert disparity_to_depth(torch.tensor(0.0), 0.1, 100.0) == pytest.approx(100.0)
    assert disparity_to_depth(torch.tensor(1.0), 0.1, 100.0) == pytest.approx(0.1)


def test_photometric_error_and_edge_aware_smoothness():
    torch.manual_seed(0)
    image = torch.rand(2, 3, 16, 16)
    assert photometric_error(image, image).abs().max() < 1e-6
    other = torch.rand(2, 3, 16, 16)
    error = photometric_error(other, image)
    assert error.shape == (2, 1, 16, 16) and error.min() > 0
    assert torch.allclose(photometric_error(other, image, 0.0), (other - image).abs().mean(1, keepdim=True))
    distance = ssim_distance(other, image)
    assert distance.min() >= 0 and distance.max() <= 1
    assert smoothness_loss(torch.full((1, 1, 8, 8), 0.3), image[:1, :, :8, :8]) == 0
    step = torch.zeros(1, 1, 8, 8)
    step[..., 4:] = 1.0
    flat, edge = torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8)
    edge[..., 4:] = 1.0
    assert smoothness_loss(step, edge) < smoothness_loss(step, flat)   # a depth edge where the image has one


def test_pose_network_predicts_small_motions_and_learnable_intrinsics():
    torch.manual_seed(0)
    network = PoseNetwork(18, image_size=64)
    frames = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    axis_angle, translation, intrinsics = network(*frames)
    assert axis_angle.shape == translation.shape == (2, 3) and intrinsics.shape == (2, 3, 3)
    assert axis_angle.abs().max() < 0.1 and translation.abs().max() < 0.1     # outputs are scaled by 0.01
    assert torch.all(intrinsics[:, 0, 0] > 0) and torch.all(intrinsics[:, 0, 2] >= 32)
    assert torch.equal(intrinsics[:, 2], torch.tensor([[0.0, 0, 1]] * 2))
    assert intrinsics[:, 0, 1].abs().max() == 0 and intrinsics[:, 1, 0].abs().max() == 0
    intrinsics.sum().backward()
    assert network.focal.weight.grad.abs().sum() > 0 and network.offset.weight.grad.abs().sum() > 0


def test_both_encoders_can_start_from_an_imagenet_resnet(tmp_path):
    from faceanim.nn.backbones.resnet import resnet18

    imagenet = resnet18().state_dict()     # torchvision's names, classifier included
    torch.save(imagenet, tmp_path / "resnet18.pth")
    models = DepthTraining(DEPTH_TINY, resnet=str(tmp_path / "resnet18.pth")).build_models()
    depth_encoder = models["depth"].depth_encoder.encoder.state_dict()
    assert all(torch.equal(depth_encoder[k], v) for k, v in imagenet.items())
    pose_conv = models["pose"].encoder.conv1.weight
    assert pose_conv.shape[1] == 6 and torch.equal(pose_conv, torch.cat([imagenet["conv1.weight"]] * 2, 1) / 2)
    assert torch.equal(models["pose"].encoder.layer4[1].conv2.weight, imagenet["layer4.1.conv2.weight"])


# ------------------------------------------------------------------------------------ triplets

def test_triplets_are_neighbouring_frames_flipped_and_jittered_together(tmp_path, astronaut):
    face = cv2.resize(astronaut[20:220, 140:340], (32, 32), interpolation=cv2.INTER_AREA)
    frames = [np.roll(face, 2 * k, axis=1) for k in range(9)]
    for k, frame in enumerate(frames):
        write_image(tmp_path / "clip" / f"{k:06d}.png", frame)
    video = FrameFolder(tmp_path / "clip")
    plain = FrameTripletDataset([video], 32, stride=2, augmentation=NO_AUGMENTATION, jitter_probability=0)
    assert len(plain) == 5
    item = plain[(3, 0)]
    expected = np.stack([frames[3], frames[5], frames[7]]).transpose(0, 3, 1, 2) / 255.0
    assert item["frames"].shape == (3, 3, 32, 32) and np.allclose(item["frames"].numpy(), expected, atol=1e-6)
    assert torch.equal(item["frames"], item["frames_aug"])
    flips = FrameTripletDataset([video], 32, stride=2, augmentation=AugmentationParams(time_flip=False),
                                jitter_probability=1.0)
    flipped = [flips[(3, seed)] for seed in range(8)]
    mirrored = [f for f in flipped if not np.allclose(f["frames"].numpy(), expected, atol=1e-6)]
    assert 0 < len(mirrored) < 8
    assert all(np.allclose(f["frames"].numpy(), expected[..., ::-1], atol=1e-6) for f in mirrored)
    assert all(not torch.equal(f["frames"], f["frames_aug"]) for f in flipped)   # jitter on the network input only
    assert len(FrameTripletDataset([video], 32, stride=4)) == 1
    with pytest.raises(InputError, match="11 frames"):
        FrameTripletDataset([video], 32, stride=5)


# ---------------------------------------------------------------------------------- training

def _evaluation_batch(face_dataset) -> dict:
    config = dataclasses.replace(DEPTH_TINY, augmentation=NO_AUGMENTATION, jitter_probability=0.0)
    dataset = depth_dataset(config, face_dataset)
    items = [dataset[(index, 0)] for index in (0, 5, 10, 15, 20, 21)]
    return {key: torch.stack([item[key] for item in items]) for key in ("frames", "frames_aug")}


def _photometric(method: DepthTraining, models: dict, batch: dict) -> float:
    torch.manual_seed(0)   # the auto-mask's tie-breaking noise
    with torch.no_grad():
        return method.loss(models, batch, {})["photometric"].item()


def test_depth_stage_lowers_the_photometric_loss_on_face_triplets(tmp_path, face_dataset):
    config = dataclasses.replace(DEPTH_TINY, trainer={**DEPTH_TINY.trainer, "log_every": 4, "sample_every": 8})
    method, batch = DepthTraining(config), _evaluation_batch(face_dataset)
    torch.manual_seed(0)   # the trainer's seed: the networks it starts from
    before = _photometric(method, method.build_models(), batch)
    result, exported = train_depth(config, face_dataset, tmp_path, max_steps=16)
    trained = method.build_models()
    for name, model in trained.items():
        load_into(model, state.load_tensors(result.checkpoint / "models" / f"{name}.safetensors"))
    after = _photometric(method, trained, batch)
    print(f"depth stage, 16 steps: photometric {before:.4f} -> {after:.4f} on a fixed batch of face triplets")
    assert all(np.isfinite(v["depth/photometric"]) for _, v in result.history)
    assert after < 0.9 * before
    assert (tmp_path / "samples" / "step-00000016.png").is_file()
    model = DaGANModel(tiny())   # the DaGAN stage reads the exported files as they are
    reports = load_official(model, depth_encoder=exported / "encoder.pth", depth_decoder=exported / "depth.pth")
    assert all(report.ok for report in reports.values())
    assert torch.equal(model.depth_decoder.state_dict()["decoder.10.conv.weight"],
                       trained["depth"].depth_decoder.state_dict()["decoder.10.conv.weight"])
