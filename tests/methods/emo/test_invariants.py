"""What holds where the EMO design departs from Hallo's (no fixture can pin it: EMO has no code):

- ReferenceNet is `diffusers.UNet2DConditionModel` itself: its bank is the `norm1` output of every transformer
  block of the plain diffusers forward on the same weights (stopping after the last one changes nothing);
- built from SD-1.5 (+ AnimateDiff), the new layers start silent: with zero-initialised audio, speed, face
  locator and temporal output layers and no reference tokens, the video backbone is SD's UNet run frame by
  frame; with AnimateDiff's (non-zero) temporal layers the audio and the speed still change nothing;
- EMO's first clip (zero motion maps) and n = 4 motion frames run; the training parts partition the model.
"""
from __future__ import annotations

import json

import pytest
import torch

from faceanim.methods.emo.config import tiny
from faceanim.methods.emo.model import PARTS, EMOModel
from faceanim.methods.emo.reference import reference_unet_config, transformer_block_paths
from faceanim.methods.emo.sampling import ClipInputs, clip_conditions
from faceanim.methods.emo.unet import Conditions, ReferenceBank
from faceanim.methods.emo.weights import build_model
from tests.methods.emo.native_files import randomised


def _sd_unet(config, seed: int = 0):
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel(**reference_unet_config(config))
    return randomised(unet, seed)


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory):
    """An SD-1.5 `unet/` folder (random weights) and an AnimateDiff motion-module file for tiny EMO."""
    config = tiny("emo").replace(motion_heads=8)
    folder = tmp_path_factory.mktemp("sd")
    unet = _sd_unet(config)
    unet.save_pretrained(folder / "unet", safe_serialization=True)
    motion = randomised(EMOModel(config), 3).denoising_unet.state_dict()
    # AnimateDiff's file: the temporal layers (no speed layers), under a wrapper prefix
    motion = {f"module.{k}": v for k, v in motion.items() if ".motion_modules." in k and ".speed_" not in k}
    torch.save(motion, folder / "mm_sd_v15_v2.ckpt")
    return folder, config, unet


def test_reference_net_bank_is_the_plain_diffusers_forward(sd_folder):
    folder, config, unet = sd_folder
    _, model = build_model(config, base_model=folder)
    assert type(model.reference_unet).__name__ == "UNet2DConditionModel"
    latents = torch.randn(3, 4, 16, 16)
    context = torch.randn(2, 4, config.cross_attention_dim)
    captured, handles = {}, []
    modules = dict(unet.named_modules())
    for path in transformer_block_paths(unet):
        handles.append(modules[path].norm1.register_forward_hook(
            lambda m, i, o, path=path: captured.__setitem__(path, o.detach())))
    with torch.no_grad():
        unet(latents.repeat(2, 1, 1, 1), torch.zeros(()), encoder_hidden_states=context.repeat(3, 1, 1))
    for handle in handles:
        handle.remove()
    bank = model.bank(latents, context, bank_dtype=None)
    assert set(bank.features) == set(captured)
    for path, tokens in captured.items():
        assert torch.equal(bank.features[path].flatten(0, 1), tokens), path


def _conditions(model, config, batch, frames, audio=None, speed=None, bank=None):
    audio = torch.randn(batch, frames, config.audio_context_tokens, config.audio_attention_dim) if audio is None else audio
    return Conditions(context=model.identity_context(None, guidance=False).expand(batch, -1, -1), audio=audio,
                      bank=bank or ReferenceBank({}), face=model.face_locator(torch.rand(batch, 3, 128, 128)),
                      speed=speed)


@torch.no_grad()
def test_new_layers_start_silent_the_backbone_is_sd_per_frame(sd_folder):
    folder, config, unet = sd_folder
    _, model = build_model(config, base_model=folder)
    model.eval()
    frames = 4
    latents = torch.randn(1, 4, frames, 16, 16)
    speed = model.speed_tokens(torch.rand(frames) * 5, 1)
    ours = model(latents, 321, _conditions(model, config, 1, frames, speed=speed))
    context = model.null_context.expand(frames, -1, -1)
    theirs = unet(latents[0].transpose(0, 1), 321, encoder_hidden_states=context).sample
    assert torch.allclose(ours[0].transpose(0, 1), theirs, atol=1e-5 * float(theirs.abs().max()))


@torch.no_grad()
def test_with_animatediff_layers_the_new_audio_and_speed_layers_still_change_nothing(sd_folder):
    folder, config, _ = sd_folder
    _, model = build_model(config, base_model=folder, motion_module=folder / "mm_sd_v15_v2.ckpt")
    model.eval()
    proj = model.denoising_unet.down_blocks[0].motion_modules[0].temporal_transformer.proj_out.weight
    assert proj.abs().max() > 0                         # AnimateDiff's layers are in
    frames = 4
    latents = torch.randn(1, 4, frames, 16, 16)
    base = _conditions(model, config, 1, frames, speed=model.speed_tokens(torch.zeros(frames), 1))
    out = model(latents, 500, base)
    other_audio = _conditions(model, config, 1, frames, speed=model.speed_tokens(torch.full((frames,), 7.0), 1))
    assert torch.equal(model(latents, 500, other_audio), out)
    # ... until they are trained: then both reach the output
    for name, parameter in model.named_parameters():
        if name.endswith(("speed_attention.to_out.0.weight", "audio_modules.0.proj_out.weight")):
            parameter.normal_(0, 0.05)
    changed = model(latents, 500, other_audio)
    assert not torch.allclose(changed, model(latents, 500, base))


@torch.no_grad()
def test_zero_motion_maps_and_four_motion_frames():
    config = tiny("emo")
    assert config.motion_frames == 4
    model = randomised(EMOModel(config), 1)
    clip = ClipInputs(ref_latents=torch.randn(1 + 4, 4, 16, 16),
                      audio=torch.randn(1, config.clip_length, config.audio_context_tokens, config.audio_attention_dim),
                      face=torch.randn(1, 32, 16, 16), speed=torch.rand(4 + config.clip_length), zero_motion=True)
    cond = clip_conditions(model, clip, None, guidance=2.0)
    assert all(t.shape[1] == 5 and t[:, 1:].abs().max() == 0 for t in cond.bank.features.values())
    out = model(torch.randn(2, 4, config.clip_length, 16, 16), 500, cond)
    assert out.shape == (2, 4, config.clip_length, 16, 16) and torch.isfinite(out).all()


@pytest.mark.parametrize("design", ["hallo", "emo"])
def test_training_parts_partition_the_model(design):
    model = EMOModel(tiny(design))
    parts = model.named_parts()
    assert sum(len(p) for p in parts.values()) == len(list(model.parameters()))
    ids = [id(p) for group in parts.values() for p in group]
    assert len(ids) == len(set(ids))
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(".motion_modules." in names[id(p)] and ".speed_" not in names[id(p)] for p in parts["temporal"])
    assert all(".audio_modules." in names[id(p)] or names[id(p)].startswith("audioproj.") for p in parts["audio"])
    assert bool(parts["speed"]) == (design == "emo") and bool(parts["identity"])
    with pytest.raises(ValueError):
        list(model.parameters_of("everything"))
    assert set(PARTS) == set(parts)


def test_build_model_refuses_foreign_motion_files(sd_folder, tmp_path):
    from faceanim.errors import CheckpointError

    folder, config, _ = sd_folder
    torch.save({"down_blocks.0.motion_modules.0.temporal_transformer.proj_in.weight": torch.zeros(3, 3)},
               tmp_path / "bad.ckpt")
    with pytest.raises(CheckpointError, match="bad.ckpt"):
        build_model(config, base_model=folder, motion_module=tmp_path / "bad.ckpt")
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "config.json").write_text(json.dumps({"block_out_channels": [32, 64, 64, 64]}))
    with pytest.raises(CheckpointError, match="weights"):
        build_model(config, base_model=tmp_path)
