"""FOMM weight files: the official `vox-cpk.pth.tar` (FOMM's Logger layout), FADM's `FOMM.pth` and a
DataParallel-prefixed file, written with torch.save and reloaded exactly through `FOMMPipeline` and
`load_fomm`; the vox-256 YAML gives exactly FADM's FOMM keys and shapes; files that do not fit, and pickled
code, are refused in one line naming the file."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from faceanim.errors import CheckpointError, InputError
from faceanim.methods.fomm import FOMMPipeline
from faceanim.warping import MotionOptions
from faceanim.warping.fomm import FOMMConfig, FOMMModel, load_fomm

from ...parity import full_keys, key_table
from .tiny_files import SIZE, Exploit, crops, official_checkpoint, tiny_config, tiny_model, write_files, write_yaml

# FOMM's config/vox-256.yaml (first-order-model), the sections a model is built from
VOX_256_YAML = """
dataset_params:
  root_dir: data/vox-png
  frame_shape: [256, 256, 3]
  id_sampling: True
  pairs_list: data/vox256.csv
model_params:
  common_params:
    num_kp: 10
    num_channels: 3
    estimate_jacobian: True
  kp_detector_params:
     temperature: 0.1
     block_expansion: 32
     max_features: 1024
     scale_factor: 0.25
     num_blocks: 5
  generator_params:
    block_expansion: 64
    max_features: 512
    num_down_blocks: 2
    num_bottleneck_blocks: 6
    estimate_occlusion_map: True
    dense_motion_params:
      block_expansion: 64
      max_features: 1024
      num_blocks: 5
      scale_factor: 0.25
  discriminator_params:
    scales: [1]
    block_expansion: 32
    max_features: 512
    num_blocks: 4
    sn: True
"""
NETWORKS = ("kp_detector", "generator")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    return write_files(tmp_path_factory.mktemp("fomm_weights"))


def _assert_same_weights(model: FOMMModel, reference: FOMMModel) -> None:
    ours, theirs = model.state_dict(), reference.state_dict()
    assert set(ours) == set(theirs)
    assert [k for k in ours if not (ours[k].dtype == theirs[k].dtype and torch.equal(ours[k], theirs[k]))] == []


def _one_line(error: pytest.ExceptionInfo) -> str:
    text = str(error.value)
    assert "\n" not in text and isinstance(error.value, InputError)
    return text


@pytest.mark.parametrize("layout", ["vox-cpk", "fomm.pth", "data-parallel"])
def test_official_layouts_round_trip_exactly(layout, files, tmp_path):
    reference = tiny_model()
    path = tmp_path / {"vox-cpk": "vox-cpk.pth.tar", "fomm.pth": "FOMM.pth",
                       "data-parallel": "dp-checkpoint.pth.tar"}[layout]
    torch.save(official_checkpoint(reference, layout), path)
    pipeline = FOMMPipeline.from_pretrained(path, config=files["config"], device="cpu")
    assert pipeline.crop_size == SIZE and not pipeline.model.training
    _assert_same_weights(pipeline.model, reference)
    # the discriminator and the optimisers are left out; the loaded model computes what the reference does
    assert {key.split(".")[0] for key in pipeline.model.state_dict()} == set(NETWORKS)
    clip = crops(3, SIZE, seed=11)
    images = torch.stack([torch.from_numpy(c).permute(2, 0, 1).float() / 255 for c in clip])
    with torch.no_grad():
        kp_source = reference.keypoints(images[:1])
        expected = reference.generator(images[:1], kp_driving=reference.keypoints(images), kp_source=kp_source)
    frames = np.stack(list(pipeline.animate_crops(pipeline.prepare_source(clip[0]), clip, clip[0],
                                                  motion=MotionOptions(relative=False))))
    expected = (expected["prediction"].permute(0, 2, 3, 1).numpy() * 255).round().clip(0, 255).astype(np.uint8)
    assert np.abs(frames.astype(int) - expected).max() <= 1


def test_load_fomm_reads_both_files_the_same(files):
    official, fadm = (load_fomm(files[name], tiny_config()) for name in ("checkpoint", "fomm_pth"))
    _assert_same_weights(official, tiny_model())
    _assert_same_weights(fadm, official)


def test_the_official_file_holds_the_logger_layout(files):
    """What the writer above produces is FOMM's save_cpk dict, read back with the weights-only unpickler."""
    checkpoint = torch.load(files["checkpoint"], map_location="cpu", weights_only=True)
    assert list(checkpoint) == ["generator", "discriminator", "kp_detector", "optimizer_generator",
                                "optimizer_discriminator", "optimizer_kp_detector", "epoch"]
    assert checkpoint["epoch"] == 99 and checkpoint["optimizer_generator"]["param_groups"][0]["betas"] == (0.5, 0.999)
    assert "discs.1.down_blocks.0.conv.weight_orig" in checkpoint["discriminator"]   # spectral norm, scale 1


def test_vox_256_yaml_gives_exactly_fadms_fomm_keys():
    params = yaml.safe_load(VOX_256_YAML)
    config = FOMMConfig.from_official(params["model_params"], image_size=params["dataset_params"]["frame_shape"][0])
    assert config == FOMMConfig()            # the released layout is the default
    with torch.device("meta"):
        model = FOMMModel(config)
    expected = full_keys("fadm_colour", {"fomm_kp_detector", "fomm_generator"})
    for name in NETWORKS:
        ours = key_table(getattr(model, name).state_dict())
        assert ours == expected[f"fomm_{name}"], name
    assert sum(len(table) for table in expected.values()) == 75 + 196


@pytest.mark.slow
def test_released_layout_round_trips_with_and_without_its_yaml(tmp_path):
    """A random vox-256 model (6e7 parameters) saved as vox-cpk.pth.tar: the YAML is optional (the released
    layout is assumed) and both loads give the saved tensors back."""
    torch.manual_seed(0)
    reference = FOMMModel().eval()
    path = tmp_path / "vox-cpk.pth.tar"
    torch.save({"generator": reference.generator.state_dict(), "kp_detector": reference.kp_detector.state_dict(),
                "discriminator": {}, "epoch": 99}, path)
    (tmp_path / "vox-256.yaml").write_text(VOX_256_YAML)
    for config in (None, tmp_path / "vox-256.yaml"):
        pipeline = FOMMPipeline.from_pretrained(path, config=config, device="cpu")
        assert pipeline.crop_size == 256
        _assert_same_weights(pipeline.model, reference)


def test_tiny_file_without_its_yaml_names_the_file(files):
    """No --config: the released vox-256 layout is assumed, and the tiny file does not fit it."""
    with pytest.raises(CheckpointError, match=r"vox-cpk\.pth\.tar: does not fit .*shape mismatch") as error:
        FOMMPipeline.from_pretrained(files["checkpoint"], device="cpu")
    _one_line(error)


@pytest.mark.parametrize("change, problem", [
    ("missing", r"1 missing: final\.bias"),
    ("unexpected", r"1 unexpected: kp\.extra"),
    ("shape", r"shape mismatch: kp\.weight: checkpoint \(9, "),
    ("no_generator", r"has no entry 'generator'"),
])
def test_checkpoints_that_do_not_fit_are_one_line_errors(change, problem, files, tmp_path):
    checkpoint = official_checkpoint(tiny_model())
    if change == "missing":
        del checkpoint["generator"]["final.bias"]
    elif change == "unexpected":
        checkpoint["kp_detector"]["kp.extra"] = torch.zeros(3)
    elif change == "shape":
        checkpoint["kp_detector"]["kp.weight"] = checkpoint["kp_detector"]["kp.weight"][:9]
    else:
        del checkpoint["generator"]
    path = tmp_path / f"{change}.pth.tar"
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError, match=problem) as error:
        FOMMPipeline.from_pretrained(path, config=files["config"], device="cpu")
    assert _one_line(error).startswith(str(path) + ": ")


def test_another_config_than_the_files_is_refused(files, tmp_path):
    params = yaml.safe_load(files["config"].read_text())["model_params"]
    params["common_params"]["num_kp"] = 5
    with pytest.raises(CheckpointError, match=r"vox-cpk\.pth\.tar: .*shape mismatch") as error:
        FOMMPipeline.from_pretrained(files["checkpoint"], config=write_yaml(tmp_path / "five.yaml", params))
    _one_line(error)


def test_loading_is_weights_only(files, tmp_path):
    marker = tmp_path / "code_ran"
    checkpoint = official_checkpoint(tiny_model())
    checkpoint["config"] = Exploit(marker)
    torch.save(checkpoint, tmp_path / "evil.pth.tar")
    with pytest.raises(CheckpointError, match=r"evil\.pth\.tar: refused by the weights-only loader") as error:
        FOMMPipeline.from_pretrained(tmp_path / "evil.pth.tar", config=files["config"])
    _one_line(error)
    assert not marker.exists()
    (tmp_path / "corrupt.pth.tar").write_bytes(files["checkpoint"].read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=r"corrupt\.pth\.tar: ") as error:
        load_fomm(tmp_path / "corrupt.pth.tar", tiny_config())
    _one_line(error)
