"""face-vid2vid weight files: the official `Facevid.pth` layout written with torch.save, our converted
folders, and the errors that name the file at fault."""
from __future__ import annotations

import pytest
import torch

from faceanim.errors import CheckpointError, InputError
from faceanim.methods.facevid.config import read_official_config, tiny, vox256
from faceanim.methods.facevid.convert import convert_official
from faceanim.methods.facevid.weights import load_converted, load_model, official_model

from .tiny_files import tiny_model, write_official


def _outputs(model, seed: int = 5) -> dict:
    generator = torch.Generator().manual_seed(seed)
    source, driving = torch.rand(1, 3, 64, 64, generator=generator), torch.rand(2, 3, 64, 64, generator=generator)
    with torch.no_grad():
        out = model.animate(source, driving)
    return {"prediction": out["prediction"], "kp_source": out["kp_source"].value, "kp_driving": out["kp_driving"].value}


def test_official_file_round_trip_through_conversion(tmp_path):
    reference = tiny_model()
    checkpoint = write_official(tmp_path / "Facevid.pth", reference)
    official = official_model(checkpoint, config=tiny())
    conversion = convert_official(checkpoint, tmp_path / "converted", config=tiny())
    converted = load_converted(conversion.output)
    assert conversion.components == ("kp_detector", "he_estimator", "generator")
    assert converted.config == tiny()
    for model in (official, converted):
        assert all(torch.equal(model.state_dict()[k], v) for k, v in reference.state_dict().items())
    expected = _outputs(reference)
    for model in (official, converted, load_model(conversion.output)):
        assert all(torch.equal(_outputs(model)[k], v) for k, v in expected.items())


def test_bad_checkpoints_name_the_file(tmp_path):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt.pth"):
        official_model(corrupt, config=tiny())
    state = tiny_model().state_dict()
    partial = tmp_path / "no_generator.pth"
    torch.save({"kp_detector": {}, "he_estimator": {}}, partial)
    with pytest.raises(CheckpointError, match="no_generator.pth"):
        official_model(partial, config=tiny())
    prefixed = tmp_path / "prefixed.pth"
    torch.save({name: {f"module.{k[len(name) + 1:]}": v for k, v in state.items() if k.startswith(name + ".")}
                for name in ("kp_detector", "he_estimator", "generator")}, prefixed)
    with pytest.raises(CheckpointError, match="prefixed.pth.*unexpected"):   # loaded as FADM does: no stripping
        official_model(prefixed, config=tiny())


@pytest.mark.slow
def test_released_layout_is_assumed_without_a_config(tmp_path):
    """Builds the released model (~10^8 parameters) to find that the file does not fit it."""
    wrong_layout = write_official(tmp_path / "tiny_as_released.pth", tiny_model())
    with pytest.raises(CheckpointError, match="tiny_as_released.pth.*vox256"):
        official_model(wrong_layout)


def test_converted_folder_rules(tmp_path):
    folder = convert_official(write_official(tmp_path / "Facevid.pth", tiny_model()), tmp_path / "out",
                              config=tiny()).output
    with pytest.raises(InputError, match="converted folder"):
        load_model(folder, config=tiny())
    (folder / "config.json").write_text('{"method": "dagan", "model": {}}')
    with pytest.raises(CheckpointError, match="config.json.*dagan"):
        load_converted(folder)
    (tmp_path / "someone_else").mkdir()
    (tmp_path / "someone_else" / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="not a converted model folder"):
        convert_official(tmp_path / "Facevid.pth", tmp_path / "someone_else", config=tiny())


def test_official_yaml_is_the_released_layout(tmp_path):
    yaml_text = """
dataset_params: {frame_shape: [256, 256, 3]}
model_params:
  common_params: {num_kp: 15, image_channel: 3, feature_channel: 32, estimate_jacobian: False}
  kp_detector_params: {temperature: 0.1, block_expansion: 32, max_features: 1024, scale_factor: 0.25,
                       num_blocks: 5, reshape_channel: 16384, reshape_depth: 16}
  he_estimator_params: {block_expansion: 64, max_features: 2048, num_bins: 66}
  generator_params: {block_expansion: 64, max_features: 512, num_down_blocks: 2, reshape_channel: 32,
                     reshape_depth: 16, num_resblocks: 6, estimate_occlusion_map: True,
                     dense_motion_params: {block_expansion: 32, max_features: 1024, num_blocks: 5,
                                           reshape_depth: 16, compress: 4}}
  discriminator_params: {scales: [1], block_expansion: 32, max_features: 512, num_blocks: 4, sn: True}
"""
    path = tmp_path / "vox-256.yaml"
    path.write_text(yaml_text)
    assert read_official_config(path) == vox256()
    path.write_text(yaml_text.replace("reshape_channel: 16384", "reshape_channel: 1000"))
    with pytest.raises(InputError, match="vox-256.yaml.*reshape_channel"):
        read_official_config(path)
