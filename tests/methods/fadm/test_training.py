"""FADM renderer training on the shared trainer: configs (ours and an official FOMM YAML), weight files,
the frozen coarse animator and DECA, the ground-truth colour leak and its fix, a tiny run on real face
crops whose ε loss falls, exact resume, the exported folder, and `faceanim train fadm` on the command line.

The pretrained FOMM and DECA are stood in for by seeded random networks written as the official files."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from faceanim.cli.main import main
from faceanim.errors import InputError, MissingWeightsError
from faceanim.methods.fadm.config import vox256, tiny
from faceanim.methods.fadm.deca import DECAEncoder
from faceanim.methods.fadm.model import FADMModel
from faceanim.methods.fadm.config import (FADMTrainConfig, WeightFiles, load_train_config,
                                                packaged_configs)
from faceanim.methods.fadm.training import FADMTraining, fadm_dataset, resolve_weights, train_fadm
from faceanim.methods.fadm.weights import load_converted, save_converted
from faceanim.train import state
from faceanim.warping.fomm import FOMMConfig, FOMMModel
from tests.conftest import write_face_clip
from tests.config_checks import assert_bad_config_refused

TINY = load_train_config("tiny.yaml")
ENVIRONMENT = ("FACEANIM_FADM_COARSE", "FACEANIM_DECA")


def tiny_config(**trainer) -> FADMTrainConfig:
    return dataclasses.replace(TINY, trainer={**TINY.trainer, "log_every": 1, "sample_every": 0, **trainer})


@pytest.fixture(scope="module")
def face_dataset(tmp_path_factory, astronaut) -> Path:
    """One preprocessed clip of 24 face crops (64x64), the crop fixed so the face moves inside it."""
    from faceanim.tasks.preprocess import PreprocessOptions, preprocess

    folder = tmp_path_factory.mktemp("fadm_faces")
    clip = write_face_clip(folder / "astronaut.mp4", astronaut, frames=24, with_audio=False)
    assert preprocess([str(clip)], folder / "dataset", PreprocessOptions(size=64, crop_motion="fixed")) == 0
    return folder / "dataset"


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory) -> WeightFiles:
    """Seeded random FOMM.pth (tiny widths) and deca_model.tar, in the official layouts."""
    folder = tmp_path_factory.mktemp("fadm_weights")
    torch.manual_seed(7)
    fomm = FOMMModel(TINY.coarse)
    torch.save({"kp_detector": fomm.kp_detector.state_dict(), "generator": fomm.generator.state_dict()},
               folder / "FOMM.pth")
    torch.save({"E_flame": DECAEncoder().state_dict()}, folder / "deca_model.tar")
    return WeightFiles(coarse=str(folder / "FOMM.pth"), deca=str(folder / "deca_model.tar"))


@pytest.fixture(scope="module")
def pair_batch(face_dataset) -> dict:
    dataset = fadm_dataset(TINY, face_dataset)
    items = [dataset[(index, 200 + index)] for index in range(2)]
    return {key: torch.stack([item[key] for item in items]) for key in ("source", "driving")}


@pytest.fixture(scope="module")
def models(weight_files) -> dict:
    """The method's models as the trainer sets them up (frozen ones in eval mode, no gradients)."""
    torch.manual_seed(0)
    built = FADMTraining(TINY, resolve_weights(TINY, weight_files)).build_models()
    for name in ("coarse", "deca"):
        built[name].eval().requires_grad_(False)
    return built


# ------------------------------------------------------------------------------------ configs

def test_packaged_configs_are_the_released_setup_and_a_tiny_one():
    assert packaged_configs() == ["tiny.yaml", "vox256.yaml"]
    vox = load_train_config("vox256")
    assert vox.model == vox256() and vox.coarse == FOMMConfig()
    assert (vox.batch_size, vox.learning_rate, vox.adam_betas, vox.num_epochs, vox.num_repeats) == \
        (5, 2e-4, (0.0, 0.9), 100, 75)
    assert (vox.loss_weights.norm, vox.loss_weights.color, vox.colour_reference) == (1, 1, "driving")
    assert vox.id_sampling and vox.augmentation.time_flip and vox.augmentation.hue == 0.1
    assert TINY.model == tiny() and TINY.coarse.image_size == 64 and TINY.coarse.num_kp == 5
    assert TINY.batch_size == 2


def test_the_coarse_animator_comes_from_an_official_fomm_yaml(tmp_path):
    official = {"model_params": {"common_params": {"num_kp": 10, "num_channels": 3, "estimate_jacobian": True},
                                 "kp_detector_params": dict(FOMMConfig().kp_detector),
                                 "generator_params": dict(FOMMConfig().generator),
                                 "discriminator_params": {"scales": [1]}}}
    (tmp_path / "vox-256_fomm.yaml").write_text(yaml.safe_dump(official))
    (tmp_path / "run.yaml").write_text("coarse: {official_config: vox-256_fomm.yaml}\n")
    assert load_train_config(tmp_path / "run.yaml").coarse == FOMMConfig()
    (tmp_path / "small.yaml").write_text("model: {preset: tiny}\ncoarse: {official_config: vox-256_fomm.yaml}\n")
    assert load_train_config(tmp_path / "small.yaml").coarse == FOMMConfig(image_size=64)   # at the renderer's size
    with pytest.raises(InputError, match="coarse animator's image_size .256. must be the renderer's .64."):
        FADMTrainConfig(model=tiny())


@pytest.mark.parametrize("text, problem", [
    ("train: {batch_sise: 4}", "unknown train settings: batch_sise"),
    ("train: {colour_reference: real}", "colour_reference must be one of driving, coarse"),
    ("model: {preset: huge}", "unknown model preset"),
    ("coarse: {num_keypoints: 5}", "unknown coarse settings: num_keypoints"),
    ("train: {loss_weights: {norm: 0}}", "norm .* must be > 0"),
    ("video: {}", "unknown sections video"),
    ("- a list", "expected a mapping"),
])
def test_bad_configs_name_the_file_and_the_problem(tmp_path, text, problem):
    assert_bad_config_refused(load_train_config, tmp_path, text, problem)


# ------------------------------------------------------------------------------- weight files

def test_missing_weights_name_their_flag_and_the_environment_fills_in(weight_files, monkeypatch, tmp_path):
    for variable in ENVIRONMENT:
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(MissingWeightsError, match="--coarse-checkpoint"):
        resolve_weights(TINY)
    with pytest.raises(MissingWeightsError, match="--deca"):
        resolve_weights(TINY, WeightFiles(coarse=weight_files.coarse))
    monkeypatch.setenv("FACEANIM_DECA", weight_files.deca)
    assert resolve_weights(TINY, WeightFiles(coarse=weight_files.coarse)).deca == weight_files.deca
    with pytest.raises(InputError, match="nowhere.pth: the coarse animator .FOMM.pth. not found .--coarse-checkpoint"):
        resolve_weights(TINY, WeightFiles(coarse=str(tmp_path / "nowhere.pth")))
    with pytest.raises(InputError, match="initial weights not found .--init"):
        resolve_weights(TINY, dataclasses.replace(weight_files, init=str(tmp_path / "nowhere")))


def test_init_from_a_converted_folder_or_an_official_file_and_its_deca(weight_files, monkeypatch, tmp_path):
    monkeypatch.delenv("FACEANIM_DECA", raising=False)
    torch.manual_seed(3)
    source, deca = FADMModel(TINY.model), DECAEncoder()
    folder = save_converted(source, tmp_path / "converted", deca=deca)
    files = resolve_weights(TINY, WeightFiles(coarse=weight_files.coarse, init=str(folder)))
    assert files.deca is None                                   # the folder's DECA is used
    started = FADMTraining(TINY, files).build_models()
    assert all(torch.equal(v, source.state_dict()[k]) for k, v in started["renderer"].state_dict().items())
    assert torch.equal(started["deca"].layers[2].weight, deca.layers[2].weight)
    torch.save(source.state_dict(), tmp_path / "diffusion.pth")  # the official layout: a plain state dict
    files = resolve_weights(TINY, dataclasses.replace(weight_files, init=str(tmp_path / "diffusion.pth")))
    started = FADMTraining(TINY, files).build_models()
    assert torch.equal(started["renderer"].diffusion.denoise_fn.final_conv.block[-1].weight,
                       source.diffusion.denoise_fn.final_conv.block[-1].weight)


# ------------------------------------------------------------------------------- the step

def test_only_the_renderer_trains_and_the_frozen_networks_get_no_gradient(models, pair_batch):
    method = FADMTraining(TINY, None)
    optimizer = method.build_optimizers(models)["renderer"]
    trained = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert trained == {id(p) for p in models["renderer"].parameters()}
    assert optimizer.defaults["lr"] == 2e-4 and optimizer.defaults["betas"] == (0.0, 0.9)
    assert [phase.name for phase in method.phases()] == ["renderer"]
    losses = method.renderer_loss(models, pair_batch, {})
    assert set(losses) == {"norm", "color"} and all(torch.isfinite(v) and v > 0 for v in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is None for name in ("coarse", "deca") for p in models[name].parameters())
    assert models["renderer"].diffusion.denoise_fn.final_conv.block[-1].weight.grad.abs().sum() > 0
    models["renderer"].zero_grad(set_to_none=True)


def test_the_colour_leak_fix_gives_the_inference_condition_and_no_colour_loss(models, pair_batch):
    source, driving = pair_batch["source"], pair_batch["driving"]
    official = FADMTraining(TINY, None)
    fixed = FADMTraining(dataclasses.replace(TINY, colour_reference="coarse"), None)
    coarse, leaking = official.condition(models, source, driving, colour_from_driving=True)
    assert coarse.shape == driving.shape and 0 <= coarse.min() and coarse.max() <= 1
    assert not torch.equal(leaking.driving, leaking.generated)         # the real frame's colours
    torch.manual_seed(1)
    clean = fixed.renderer_loss(models, pair_batch, {})
    torch.manual_seed(1)                                               # the same timesteps and noise
    leaked = models["renderer"](driving, leaking)
    assert leaked["color"] > 0 and clean["color"] == 0
    assert clean["norm"] != leaked["norm"]                             # only the condition differs


# ------------------------------------------------------------------------------- training runs

def _evaluation_loss(renderer: FADMModel, models: dict, batch: dict) -> float:
    """ε L1 per element on fixed pairs, timesteps spread over the schedule and fixed noise."""
    count = batch["driving"].shape[0]
    t = torch.linspace(0, renderer.config.timesteps - 1, count).round().long()
    noise = torch.randn(batch["driving"].shape, generator=torch.Generator().manual_seed(5))
    _, condition = FADMTraining(TINY, None).condition(models, batch["source"], batch["driving"],
                                                      colour_from_driving=True)
    with torch.no_grad():
        norm = renderer.diffusion.losses(batch["driving"], condition, t=t, noise=noise)["norm"]
    return norm.item() / batch["driving"].numel()


@pytest.mark.slow
def test_tiny_training_on_face_crops_lowers_the_noise_loss_and_exports(tmp_path, face_dataset, weight_files,
                                                                        models):
    """24 steps from a saved random renderer: the ε loss on 8 held pairs (fixed timesteps and noise) falls."""
    torch.manual_seed(2)
    initial = save_converted(FADMModel(TINY.model), tmp_path / "initial")
    dataset = fadm_dataset(TINY, face_dataset)
    items = [dataset[(index, 900 + index)] for index in range(8)]
    held = {key: torch.stack([item[key] for item in items]) for key in ("source", "driving")}
    config = tiny_config(sample_every=12)
    result, exported = train_fadm(config, face_dataset, tmp_path / "run", max_steps=24,
                                  weights=dataclasses.replace(weight_files, init=str(initial)))
    before = _evaluation_loss(load_converted(initial)[0], models, held)
    trained, deca = load_converted(exported)
    after = _evaluation_loss(trained, models, held)
    norms = [values["renderer/norm"] for _, values in result.history]
    print(f"tiny FADM, 24 steps: held-out eps L1 {before:.4f} -> {after:.4f}; "
          f"logged norm {np.mean(norms[:4]):.0f} (steps 1-4) -> {np.mean(norms[-4:]):.0f} (steps 21-24)")
    assert after < 0.85 * before and np.mean(norms[-4:]) < np.mean(norms[:4])
    checkpoint = state.load_tensors(result.checkpoint / "models" / "renderer.safetensors")
    assert all(torch.equal(trained.state_dict()[k], v) for k, v in checkpoint.items())
    assert sorted(p.name for p in (result.checkpoint / "models").iterdir()) == ["renderer.safetensors"]
    assert torch.equal(deca.layers[0].weight, torch.load(weight_files.deca, weights_only=True)["E_flame"]
                       ["layers.0.weight"])
    assert (tmp_path / "run" / "samples" / "step-00000012.png").is_file()


@pytest.mark.slow
def test_a_resumed_run_reaches_the_state_of_an_uninterrupted_one(tmp_path, face_dataset, weight_files):
    """Stop at step 3, resume to step 6: every file of the last checkpoint (weights, EMA, optimizer, RNG
    states, trainer state) is byte-identical to a run of 6 steps."""
    config = tiny_config(checkpoint_every=3, ema_decay=0.9)
    whole, _ = train_fadm(config, face_dataset, tmp_path / "whole", weights=weight_files, max_steps=6)
    train_fadm(config, face_dataset, tmp_path / "split", weights=weight_files, max_steps=3)
    resumed, _ = train_fadm(config, face_dataset, tmp_path / "split", weights=weight_files, max_steps=6,
                            resume="latest")
    assert resumed.step == whole.step == 6
    assert state.verify(whole.checkpoint)["files"] == state.verify(resumed.checkpoint)["files"]
    assert resumed.history[-1] == whole.history[-1]


# --------------------------------------------------------------------------------------- CLI

def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_train_fadm_on_the_command_line_exports_a_loadable_model(tmp_path, face_dataset, weight_files, capsys):
    out = tmp_path / "run"
    code, stdout, stderr = _run(capsys, "train", "fadm", "--config", "tiny", "--data", face_dataset, "-o", out,
                                "--coarse-checkpoint", weight_files.coarse, "--deca", weight_files.deca,
                                "--max-steps", 2)
    assert code == 0, stderr
    assert "trained fadm to step 2" in stdout
    assert (out / "checkpoints" / "latest").read_text().strip() == "step-00000002"
    model, deca = load_converted(out / "model")
    assert model.config == TINY.model and deca is not None


@pytest.mark.parametrize("argv, problem", [
    (["--config", "tiny", "--data", "{data}"], "--coarse-checkpoint"),
    (["--config", "tiny", "--data", "{data}", "--coarse-checkpoint", "{coarse}"], "--deca"),
    (["--config", "tiny", "--data", "{data}", "--vgg19", "x.pth"], "--vgg19 does not apply to training fadm"),
    (["--config", "tiny", "--data", "{data}", "--fomm-config", "nowhere.yaml", "--coarse-checkpoint", "{coarse}",
      "--deca", "{deca}"], "nowhere.yaml: cannot read the config"),
])
def test_bad_train_fadm_invocations_exit_2_with_one_line(argv, problem, tmp_path, face_dataset, weight_files,
                                                         monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for variable in ENVIRONMENT:
        monkeypatch.delenv(variable, raising=False)
    values = {"data": face_dataset, "coarse": weight_files.coarse, "deca": weight_files.deca}
    code, _, err = _run(capsys, "train", "fadm", *[a.format(**values) for a in argv])
    assert code == 2 and err.startswith("faceanim: error:") and err.count("\n") == 1
    assert problem in err
    assert not (tmp_path / "runs").exists()
