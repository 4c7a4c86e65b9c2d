"""DaGAN training on the shared trainer: the sign and zero cases of each loss term, the phases, configs
(ours and the official YAML), weight files, a tiny run on real face crops that learns, exact resume
after a SIGKILL, and the exported folder."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from faceanim.errors import InputError, MissingWeightsError
from faceanim.losses import RandomWarp
from faceanim.methods.dagan import DaGANModel
from faceanim.methods.dagan.config import (DaGANTrainConfig, DepthTrainConfig, LossWeights, WeightFiles,
                                           load_train_config, packaged_configs, vox256)
from faceanim.methods.dagan.training import (DaGANTraining, dagan_dataset, equivariance_jacobian_loss,
                                             equivariance_value_loss, kp_distance_loss, resolve_weights,
                                             train_dagan)
from faceanim.methods.dagan.weights import load_converted, save_converted
from faceanim.train import state
from faceanim.warping.keypoints import Keypoints
from tests.conftest import REPO

from . import run_training
from .test_model import VOX_ADV_256
from .test_weights import save_official_layout
from tests.config_checks import assert_bad_config_refused

TINY = load_train_config("tiny.yaml")
FROZEN = ("depth_encoder", "depth_decoder", "perceptual", "discriminator_pyramid")


def tiny_config(**trainer) -> DaGANTrainConfig:
    return dataclasses.replace(TINY, trainer={**TINY.trainer, "log_every": 1, "sample_every": 0, **trainer})


def built(config: DaGANTrainConfig, weight_files: WeightFiles) -> tuple[DaGANTraining, dict]:
    """The method and its models as the trainer sets them up (frozen helpers in eval mode)."""
    method = DaGANTraining(config, resolve_weights(config, weight_files))
    torch.manual_seed(0)
    models = method.build_models()
    for name in FROZEN:
        if name in models:
            models[name].eval().requires_grad_(False)
    return method, models


@pytest.fixture(scope="module")
def pair_batch(face_dataset) -> dict:
    dataset = dagan_dataset(TINY, face_dataset)
    items = [dataset[(index, 100 + index)] for index in range(4)]
    return {key: torch.stack([item[key] for item in items]) for key in ("source", "driving")}


# ------------------------------------------------------------------------------------- losses

def test_kp_distance_hinge_pushes_crowded_keypoints_apart_and_the_official_form_has_no_gradient():
    crowded = torch.tensor([[[0.0, 0.0], [0.05, 0.0], [0.6, 0.6]]], requires_grad=True)
    official = kp_distance_loss(crowded, 0.2, "official")
    hinge = kp_distance_loss(crowded, 0.2, "hinge")
    assert official.item() == pytest.approx(2 * 2 / 9)               # 2 per close ordered pair, 9 pairs
    assert hinge.item() == pytest.approx(2 * (2 / 0.2) * 0.15 / 9, rel=1e-4)
    official_grad, = torch.autograd.grad(official, crowded)
    hinge_grad, = torch.autograd.grad(hinge, crowded)
    assert torch.count_nonzero(official_grad) == 0
    assert hinge_grad[0, 0, 0] > 0 and hinge_grad[0, 1, 0] < 0          # descent moves the pair apart
    assert torch.count_nonzero(hinge_grad[0, 2]) == 0                   # the far keypoint is left alone
    spread = torch.tensor([[[-0.5, -0.5], [0.5, 0.5], [0.5, -0.5]]])
    assert kp_distance_loss(spread, 0.2, "hinge") == 0 and kp_distance_loss(spread, 0.2, "official") == 0
    with pytest.raises(ValueError):
        kp_distance_loss(spread, 0.2, "sign")


def test_equivariance_losses_vanish_for_keypoints_that_follow_the_warp():
    torch.manual_seed(0)
    kp = Keypoints(torch.rand(2, 5, 2) * 2 - 1, torch.eye(2) + 0.1 * torch.randn(2, 5, 2, 2))
    identity = RandomWarp(2, 0.0, 0.0, 5)
    assert equivariance_value_loss(kp, kp, identity) < 1e-7
    assert equivariance_jacobian_loss(kp, kp, identity) < 1e-6
    affine = RandomWarp(2, 0.1, generator=torch.Generator().manual_seed(3))
    linear, shift = affine.theta[..., :2], affine.theta[..., 2]
    inverse = torch.linalg.inv(linear)
    # keypoints the warp maps back onto the driving ones: p_w = A^-1 (p - b), J_w = A^-1 J
    following = Keypoints((kp.value - shift[:, None]) @ inverse.transpose(1, 2), inverse[:, None] @ kp.jacobian)
    assert equivariance_value_loss(kp, following, affine) < 1e-6
    assert equivariance_jacobian_loss(kp, following, affine) < 1e-5
    assert equivariance_value_loss(kp, kp, affine) > 1e-3 and equivariance_jacobian_loss(kp, kp, affine) > 1e-3


def test_generator_phase_losses_and_what_it_leaves_for_the_discriminator(weight_files, pair_batch):
    method, models = built(TINY, weight_files)
    context = {}
    losses = method.generator_loss(models, pair_batch, context)
    assert set(losses) == {"perceptual", "generator_gan", "feature_matching", "equivariance_value",
                           "equivariance_jacobian", "kp_distance"}
    assert all(torch.isfinite(v) and v >= 0 for v in losses.values())
    assert losses["perceptual"] > 0 and losses["equivariance_value"] > 0
    assert not context["prediction"].requires_grad and not context["kp_driving"].value.requires_grad
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in models["kp_detector"].parameters())
    assert models["generator"].first.conv.weight.grad.abs().sum() > 0
    assert all(p.grad is None for name in FROZEN for p in models[name].parameters())
    d_loss = method.discriminator_loss(models, pair_batch, context)["discriminator_gan"]
    assert torch.isfinite(d_loss) and d_loss > 0
    generator_grads = [p.grad.clone() for p in models["generator"].parameters()]
    d_loss.backward()  # the prediction is detached: the discriminator loss leaves the generator alone
    assert all(torch.equal(g, p.grad) for g, p in zip(generator_grads, models["generator"].parameters()))


def test_depth_constraint_is_off_by_default_and_trains_the_generator_when_on(weight_files, pair_batch):
    weights = dataclasses.replace(TINY.loss_weights, depth_constraint=1.0, generator_gan=0.0, perceptual=(0.0,) * 5)
    config = dataclasses.replace(TINY, loss_weights=weights)
    method, models = built(config, weight_files)
    assert [p.name for p in method.phases()] == ["generator"]          # no discriminator without a GAN loss
    assert "discriminator" not in models and "perceptual" not in models
    assert set(method.build_optimizers(models)) == {"generator", "kp_detector"}
    losses = method.generator_loss(models, pair_batch, {})
    assert "depth_constraint" in losses and "generator_gan" not in losses and "perceptual" not in losses
    depth_term = losses["depth_constraint"]
    assert depth_term > 0
    grads = torch.autograd.grad(depth_term, list(models["generator"].parameters()), allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)     # through the frozen depth network
    method, models = built(TINY, weight_files)
    assert "depth_constraint" not in method.generator_loss(models, pair_batch, {})


def test_multistep_milestones_are_epochs_turned_into_steps(weight_files):
    config = dataclasses.replace(TINY, epoch_milestones=(2, 5))
    method = DaGANTraining(config, resolve_weights(config, weight_files), steps_per_epoch=3)
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = method.build_schedulers({"generator": optimizer})["generator"]
    rates = []
    for _ in range(16):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[5] == 1.0 and rates[6] == pytest.approx(0.1) and rates[15] == pytest.approx(0.01)


# ------------------------------------------------------------------------------------ configs

def test_packaged_configs_and_the_released_setup():
    assert packaged_configs() == ["depth.yaml", "depth_tiny.yaml", "tiny.yaml", "vox256.yaml"]
    released = load_train_config("vox256")
    assert released.model == vox256() and released.loss_weights == LossWeights()
    schedule = (released.num_epochs, released.num_repeats, released.batch_size, released.lr_generator)
    assert schedule == (150, 75, 12, 2e-4)
    assert released.kp_distance_mode == "hinge" and released.id_sampling
    assert TINY.model.image_size == 64 and TINY.loss_weights.feature_matching == (10.0, 10.0, 10.0)
    depth = load_train_config("depth.yaml")
    assert isinstance(depth, DepthTrainConfig) and depth == DepthTrainConfig(trainer=depth.trainer)
    assert (depth.learning_rate, depth.image_size, depth.batch_size) == (1e-5, 224, 64)


def test_the_official_yaml_loads_as_run_py_trains_it(tmp_path):
    official = {"dataset_params": {"root_dir": "/data/vox", "frame_shape": [256, 256, 3], "id_sampling": True,
                                   "augmentation_params": {"flip_param": {"horizontal_flip": True, "time_flip": True},
                                                           "jitter_param": {"brightness": 0.1, "contrast": 0.1,
                                                                            "saturation": 0.1, "hue": 0.1}}},
                "model_params": VOX_ADV_256,
                "train_params": {"num_epochs": 150, "num_repeats": 75, "epoch_milestones": [], "lr_generator": 2e-4,
                                 "lr_discriminator": 2e-4, "lr_kp_detector": 2e-4, "batch_size": 4,
                                 "scales": [1, 0.5, 0.25, 0.125], "checkpoint_freq": 10,
                                 "transform_params": {"sigma_affine": 0.05, "sigma_tps": 0.005, "points_tps": 5},
                                 "loss_weights": {"generator_gan": 1, "discriminator_gan": 1,
                                                  "feature_matching": [10, 10, 10, 10],
                                                  "perceptual": [10, 10, 10, 10, 10], "equivariance_value": 10,
                                                  "equivariance_jacobian": 10, "kp_distance": 10, "kp_prior": 0,
                                                  "kp_scale": 0, "depth_constraint": 0}},
                "visualizer_params": {"kp_size": 5}}
    path = tmp_path / "vox-adv-256.yaml"
    path.write_text(yaml.safe_dump(official))
    config = load_train_config(path)
    released = load_train_config("vox256.yaml")
    assert config.model == dataclasses.replace(vox256(), num_kp=10)     # the file's num_kp (the README uses 15)
    assert config.batch_size == 4
    assert dataclasses.replace(config, model=released.model, batch_size=12, trainer=released.trainer) == released
    official["train_params"]["loss_weights"]["kp_prior"] = 10
    path.write_text(yaml.safe_dump(official))
    with pytest.raises(InputError, match="vox-adv-256.yaml: .*kp_prior"):
        load_train_config(path)


@pytest.mark.parametrize("text, problem", [
    ("train: {batch_sise: 4}", "unknown train settings: batch_sise"),
    ("model: {preset: huge}", "unknown model preset"),
    ("model: {preset: tiny}\ntrain: {scales: [1, 0.5], loss_weights: {feature_matching: [10, 10]}}",
     "one value per discriminator block"),
    ("model: {preset: tiny}\ntrain: {scales: [1, 0.125], loss_weights: {feature_matching: [1, 1, 1]}}",
     "at least 16 pixels"),
    ("stage: video", "stage must be dagan or depth"),
    ("train: {kp_distance_mode: sign}", "kp_distance_mode"),
    ("- a list", "expected a mapping"),
    ("train: [unclosed", "not valid YAML"),
])
def test_bad_configs_name_the_file_and_the_problem(tmp_path, text, problem):
    assert_bad_config_refused(load_train_config, tmp_path, text, problem)


# ------------------------------------------------------------------------------- weight files

def test_missing_weights_name_their_flag_and_the_environment_fills_in(weight_files, monkeypatch, tmp_path):
    monkeypatch.delenv("FACEANIM_VGG19", raising=False)
    for variable in ("FACEANIM_DAGAN_DEPTH_ENCODER", "FACEANIM_DAGAN_DEPTH_DECODER"):
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(MissingWeightsError, match="--depth-encoder"):
        resolve_weights(TINY)
    depth_only = WeightFiles(depth_encoder=weight_files.depth_encoder, depth_decoder=weight_files.depth_decoder)
    with pytest.raises(MissingWeightsError, match="--vgg19"):
        resolve_weights(TINY, depth_only)
    monkeypatch.setenv("FACEANIM_VGG19", weight_files.vgg19)
    assert resolve_weights(TINY, depth_only).vgg19 == weight_files.vgg19
    no_perceptual = dataclasses.replace(TINY, loss_weights=dataclasses.replace(TINY.loss_weights, perceptual=(0,) * 5))
    monkeypatch.delenv("FACEANIM_VGG19")
    assert resolve_weights(no_perceptual, depth_only).vgg19 is None
    with pytest.raises(InputError, match="nowhere.pth: the depth decoder"):
        resolve_weights(TINY, dataclasses.replace(weight_files, depth_decoder=str(tmp_path / "nowhere.pth")))


def test_a_converted_folder_starts_a_run_with_its_depth_network(weight_files, tmp_path):
    source = DaGANModel(TINY.model, discriminator=True)
    with torch.no_grad():
        for p in source.parameters():
            p.uniform_(-0.1, 0.1)
    folder = save_converted(source, tmp_path / "converted")
    files = resolve_weights(TINY, WeightFiles(init=str(folder), vgg19=weight_files.vgg19))
    assert files.depth_encoder is None and files.init == str(folder)   # the folder holds the depth network
    started = DaGANTraining(TINY, files).build_models()
    for name in ("generator", "kp_detector", "discriminator", "depth_encoder", "depth_decoder"):
        expected = getattr(source, name).state_dict()
        assert all(torch.equal(v, expected[k]) for k, v in started[name].state_dict().items()), name
    official = save_official_layout(tmp_path, source.state_dict())   # an official *.pth.tar starts a run too
    files = resolve_weights(TINY, dataclasses.replace(weight_files, init=str(official["checkpoint"])))
    assert files.depth_encoder == weight_files.depth_encoder            # its depth network comes from the flags
    started = DaGANTraining(TINY, files).build_models()
    assert torch.equal(started["generator"].final.weight, source.generator.final.weight)
    assert torch.equal(started["discriminator"].state_dict()["discs.1.conv.weight"],
                       source.discriminator.state_dict()["discs.1.conv.weight"])


# ------------------------------------------------------------------------------- training runs

def test_tiny_training_on_face_crops_lowers_the_perceptual_loss_and_exports(tmp_path, face_dataset, weight_files):
    result, exported = train_dagan(tiny_config(), face_dataset, tmp_path, weights=weight_files, max_steps=24)
    perceptual = [values["generator/perceptual"] for _, values in result.history]
    first, last = np.mean(perceptual[:4]), np.mean(perceptual[-4:])
    print(f"tiny DaGAN, 24 steps: perceptual {first:.3f} (steps 1-4) -> {last:.3f} (steps 21-24)")
    assert len(perceptual) == 24 and last < 0.85 * first
    assert all(np.isfinite(v) for _, values in result.history for v in values.values())
    model = load_converted(exported)
    trained = state.load_tensors(result.checkpoint / "models" / "generator.safetensors")
    assert all(torch.equal(model.generator.state_dict()[k], v) for k, v in trained.items())
    depth = torch.load(weight_files.depth_encoder, weights_only=True)
    assert torch.equal(model.depth_encoder.encoder.conv1.weight, depth["encoder.conv1.weight"])


def test_a_run_killed_mid_way_resumes_to_the_same_state(tmp_path, face_dataset, weight_files):
    """SIGKILL after step 5 (checkpoint of step 4 on disk), resume: the last checkpoint is byte-identical to an
    uninterrupted run's (weights, EMA, optimizers, schedulers, RNG states and the trainer state)."""
    whole = run_training.fit(face_dataset, tmp_path / "whole", weight_files)
    settings = {"data": str(face_dataset), "output": str(tmp_path / "killed"),
                "weights": dataclasses.asdict(weight_files)}
    killed = subprocess.run([sys.executable, "-m", "tests.methods.dagan.run_training", json.dumps(settings),
                             "--kill-after-step", "5"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert (tmp_path / "killed" / "checkpoints" / "latest").read_text().strip() == "step-00000004"
    resumed = run_training.fit(face_dataset, tmp_path / "killed", weight_files, resume="latest")
    assert resumed.step == whole.step == run_training.MAX_STEPS
    assert state.verify(whole.checkpoint)["files"] == state.verify(resumed.checkpoint)["files"]
    assert resumed.history[-1] == whole.history[-1]
