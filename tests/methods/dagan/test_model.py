"""DaGAN configuration and networks at tiny widths: validation, shapes, batching and gradient flow."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from faceanim.errors import InputError
from faceanim.methods.dagan import DaGANModel, DaGANConfig
from faceanim.methods.dagan.config import GeneratorConfig, KeypointDetectorConfig, tiny, vox256
from faceanim.warping.motion import normalize_keypoints

# config/vox-adv-256.yaml model_params, as the official file has them
VOX_ADV_256 = {
    "common_params": {"num_kp": 10, "num_channels": 3, "estimate_jacobian": True},
    "kp_detector_params": {"temperature": 0.1, "block_expansion": 32, "max_features": 1024,
                           "scale_factor": 0.25, "num_blocks": 5},
    "generator_params": {"block_expansion": 64, "max_features": 512, "num_down_blocks": 2,
                         "num_bottleneck_blocks": 6, "estimate_occlusion_map": True,
                         "dense_motion_params": {"block_expansion": 64, "max_features": 1024, "num_blocks": 5,
                                                 "scale_factor": 0.25}},
    "discriminator_params": {"scales": [1], "block_expansion": 32, "max_features": 512, "num_blocks": 4,
                             "use_kp": True},
}


def test_vox256_is_the_official_config_with_the_release_flags():
    assert DaGANConfig.from_official(VOX_ADV_256, num_kp=15, kp_input="rgbd") == vox256()
    assert vox256().kp_channels == 4 and vox256().depth_layers == 18
    assert DaGANConfig.from_official(VOX_ADV_256).num_kp == 10


def test_config_round_trip():
    config = dataclasses.replace(tiny(), kp_input="rgb", depth_layers=50)
    assert DaGANConfig.from_dict(config.to_dict()) == config
    assert DaGANConfig.from_dict({}) == vox256()


@pytest.mark.parametrize("change", [
    dict(kp_input="infrared"), dict(depth_layers=34), dict(image_size=100), dict(num_kp=0),
    dict(kp_detector=KeypointDetectorConfig(num_blocks=7)),            # 256 / 4 = 64 is not divisible by 2**7
])
def test_invalid_configs_are_refused(change):
    with pytest.raises(InputError, match="dagan config"):
        dataclasses.replace(vox256(), **change)


def test_invalid_sub_configs_and_unknown_keys_are_refused():
    with pytest.raises(InputError, match="temperature"):
        KeypointDetectorConfig(temperature=0)
    with pytest.raises(InputError, match="num_down_blocks 2"):
        GeneratorConfig(kind="SPADEDepthAwareGenerator", num_down_blocks=3)
    with pytest.raises(InputError, match="unknown generator settings: num_upblocks"):
        DaGANConfig.from_dict({"generator": {"num_upblocks": 2}})


@pytest.fixture(scope="module")
def tiny_model() -> DaGANModel:
    torch.manual_seed(0)
    return DaGANModel(tiny(), discriminator=True)


@pytest.fixture(scope="module")
def frames() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.rand(1, 3, 64, 64, generator=generator), torch.rand(3, 3, 64, 64, generator=generator)


def test_component_names_and_frozen_depth(tiny_model):
    prefixes = {key.split(".")[0] for key in tiny_model.state_dict()}
    assert prefixes == {"generator", "kp_detector", "depth_encoder", "depth_decoder", "discriminator"}
    assert "generator.AttnModule.gamma" in tiny_model.state_dict()
    assert "depth_decoder.decoder.13.conv.weight" in tiny_model.state_dict()
    tiny_model.train()
    assert not tiny_model.depth_encoder.training and not tiny_model.depth_decoder.training
    assert not any(p.requires_grad for p in tiny_model.depth_encoder.parameters())
    assert DaGANModel(tiny()).discriminator is None


def test_shapes_and_ranges(tiny_model, frames):
    source, driving = frames
    tiny_model.eval()
    with torch.no_grad():
        disparity, logits = tiny_model.depth(driving)
        assert disparity.shape == (3, 1, 64, 64) and torch.equal(disparity, torch.sigmoid(logits))
        kp = tiny_model.keypoints(driving, disparity)
        assert kp.value.shape == (3, 5, 2) and kp.jacobian.shape == (3, 5, 2, 2)
        source_disparity, _ = tiny_model.depth(source)
        kp_source = tiny_model.keypoints(source, source_disparity)
        kp_norm = normalize_keypoints(kp_source, kp, kp[0], relative=True, adapt_scale=True)
        out = tiny_model.generate(source, kp_source, kp_norm, source_disparity)
    assert out["prediction"].shape == (3, 3, 64, 64) and out["deformed"].shape == (3, 3, 64, 64)
    assert out["occlusion_map"].shape == (3, 1, 16, 16) and out["mask"].shape == (3, 6, 16, 16)
    for tensor in out.values():
        assert torch.isfinite(tensor).all()
    assert 0 <= out["prediction"].min() and out["prediction"].max() <= 1


def test_a_batch_equals_frame_by_frame(tiny_model, frames):
    source, driving = frames
    tiny_model.eval()
    with torch.no_grad():
        source_disparity, _ = tiny_model.depth(source)
        kp_source = tiny_model.keypoints(source, source_disparity)
        kp_driving = tiny_model.keypoints(driving, tiny_model.depth(driving)[0])
        batched = tiny_model.generate(source, kp_source, kp_driving, source_disparity)["prediction"]
        single = [tiny_model.generate(source, kp_source, kp_driving[i], source_disparity)["prediction"]
                  for i in range(3)]
    assert torch.allclose(batched, torch.cat(single), atol=1e-5)


def test_keypoint_input_modes(frames):
    source, _ = frames
    rgb_model = DaGANModel(dataclasses.replace(tiny(), kp_input="rgb")).eval()
    assert rgb_model.kp_detector.predictor.encoder.down_blocks[0].conv.in_channels == 3
    assert rgb_model.keypoints(source).value.shape == (1, 5, 2)
    with pytest.raises(ValueError, match="disparity"):
        DaGANModel(tiny()).keypoints(source)


def _train_step_loss(model: DaGANModel, source: torch.Tensor, driving: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        source_disparity, _ = model.depth(source)
        driving_disparity, _ = model.depth(driving)
    kp_source = model.keypoints(source, source_disparity)
    kp_driving = model.keypoints(driving, driving_disparity)
    out = model.generate(source, kp_source, kp_driving, source_disparity)
    return (out["prediction"] - driving).abs().mean()


@pytest.mark.parametrize("kind", ["DepthAwareGenerator", "SPADEDepthAwareGenerator"])
def test_gradient_reaches_every_trainable_parameter(kind, frames):
    torch.manual_seed(0)
    config = dataclasses.replace(tiny(), generator=dataclasses.replace(tiny().generator, kind=kind))
    model = DaGANModel(config).train()
    # gamma starts at 0 (the official init), which blocks the attention convs' gradient on the first
    # step; gamma itself still gets one. Move it off zero so the test sees the whole graph.
    loss = _train_step_loss(model, frames[0].expand(2, 3, 64, 64), frames[1][:2])
    loss.backward()
    assert model.generator.AttnModule.gamma.grad.abs().item() > 0
    model.zero_grad()
    with torch.no_grad():
        model.generator.AttnModule.gamma.fill_(0.5)
    _train_step_loss(model, frames[0].expand(2, 3, 64, 64), frames[1][:2]).backward()
    for name, parameter in [*model.generator.named_parameters(), *model.kp_detector.named_parameters()]:
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    assert all(p.grad is None for p in model.depth_encoder.parameters())


def test_spade_generator_keys():
    config = dataclasses.replace(tiny(), generator=dataclasses.replace(tiny().generator,
                                                                       kind="SPADEDepthAwareGenerator"))
    keys = set(DaGANModel(config).generator.state_dict())
    assert {"decoder.G_middle_2.conv_0.weight_orig", "decoder.up_1.conv_s.weight_orig",
            "decoder.compress.weight", "decoder.conv_img.weight", "src_first.conv.weight"} <= keys
    assert not any(key.startswith(("bottleneck.", "up_blocks.", "final.")) for key in keys)
