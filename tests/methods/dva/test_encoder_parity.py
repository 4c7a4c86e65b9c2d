"""Parity of DVA's semantic encoder (`DiffusionVideoAutoencoder`: ArcFace IR-SE50 identity, MobileNet_GDConv
landmarks, BiSeNet face parser, Linear(614, 512)) with every DVA fixture ($FACEANIM_PARITY_DIR/dva, made by
the official code; the three frozen nets have procedural weights): identity and landmark features, z_face per
frame (`cond`) and with the batch-mean identity (`avg_id`, `cond_avg_id`), the parser's main logits (8x
average-pooled) and its foreground masks for the image and the video class sets; and the released
checkpoint's `encoder.*` key table.

The fixture's landmark net ran with the `pretrain_net.features.*` copies of the MobileNetV2 tensors (with the
`base_net.0.*` copies `lnd_feats` is off by a relative 1.1); `MobileNetGDConv` takes that copy on load."""
from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F

from faceanim.methods.dva.encoder import (BACKGROUND_CLASSES, VIDEO_BACKGROUND_CLASSES, DVAEncoder,
                                          ParserNet)
from tests.parity import component, fixture, flat_full_keys, key_table, relative_error, stem_params

SYSTEM = "dva"
STEMS = stem_params(SYSTEM)
ENCODER_TOLERANCE = 1e-4
MASK_MISMATCH_LIMIT = 8      # pixels over the whole batch; the fixtures agree exactly so far


@functools.lru_cache(maxsize=1)
def _run(stem: str):
    """The encoder with the fixture's `model.encoder.*` weights, and its outputs on the fixture's x0."""
    _, weights, io = fixture(SYSTEM, stem)
    encoder = DVAEncoder().eval()
    encoder.load_state_dict(component(weights, "model.encoder."), strict=True)
    x = io["x0"]
    with torch.no_grad():
        id_feats = encoder.id_forward(x)
        avg_id = id_feats.mean(dim=0, keepdim=True)
        logits, mask_image, mask_video = encoder.bgnet.parse(x)
        ours = {
            "id_feats": id_feats,
            "lnd_feats": encoder.lndnet(x),
            "cond": encoder(x),
            "avg_id": avg_id,
            "cond_avg_id": encoder.forward_with_id(avg_id, x),
            "bgnet_logits_pool8": F.avg_pool2d(logits, 8),
            "mask_image": mask_image,
            "mask_video": mask_video,
        }
    return encoder, ours, io


@pytest.mark.parametrize("stem", STEMS)
@pytest.mark.parametrize("name", ["id_feats", "lnd_feats", "cond", "avg_id", "cond_avg_id",
                                  "bgnet_logits_pool8"])
def test_features_match_the_official_encoder(stem, name):
    _, ours, io = _run(stem)
    assert ours[name].shape == io[name].shape
    assert torch.isfinite(ours[name]).all()
    error = relative_error(ours[name], io[name])
    assert error < ENCODER_TOLERANCE, error


@pytest.mark.parametrize("stem", STEMS)
@pytest.mark.parametrize("name", ["mask_image", "mask_video"])
def test_foreground_masks_match_the_official_parser(stem, name):
    _, ours, io = _run(stem)
    assert ours[name].shape == io[name].shape and ours[name].dtype == io[name].dtype
    mismatches = int((ours[name] != io[name]).sum())
    assert mismatches <= MASK_MISMATCH_LIMIT, mismatches


@pytest.mark.parametrize("stem", STEMS)
def test_entry_points_agree(stem):
    """forward(x) == forward_with_id(id_forward(x), x); return_id_feats; face_mask(for_video)."""
    encoder, ours, io = _run(stem)
    x = io["x0"][:1]
    with torch.no_grad():
        cond, id_feats = encoder(x, return_id_feats=True)
        torch.testing.assert_close(cond, ours["cond"][:1], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(id_feats, ours["id_feats"][:1], rtol=1e-5, atol=1e-6)
        assert torch.equal(encoder.face_mask(x, for_video=True), ours["mask_video"][:1])


@pytest.mark.parametrize("stem", STEMS)
def test_fixture_holds_every_encoder_tensor(stem):
    _, weights, _ = fixture(SYSTEM, stem)
    assert set(component(weights, "model.encoder.")) == set(DVAEncoder().state_dict())


def test_key_table_is_the_released_encoders():
    expected = {k[len("model.encoder."):]: v for k, v in flat_full_keys(SYSTEM).items()
                if k.startswith("model.encoder.")}
    assert expected
    assert key_table(DVAEncoder().state_dict()) == expected


def test_only_the_linear_layer_trains_and_the_nets_stay_in_eval():
    encoder = DVAEncoder().train()
    trainable = {name for name, p in encoder.named_parameters() if p.requires_grad}
    assert trainable == {"linear.weight", "linear.bias"}
    for net in (encoder.idnet, encoder.lndnet, encoder.bgnet):
        assert not any(m.training for m in net.backbone.modules())


def test_foreground_class_sets():
    """Image set: not background (0), cloth (16), hat (18); video set also not ears (7, 8), neck (14),
    hair (17). Each 512 px label becomes one 2x2 block, and the 256 px mask keeps its top-left pixel."""
    labels = torch.arange(19).repeat_interleave(2).reshape(1, 1, 1, 38)
    labels = F.pad(labels, (0, 512 - 38, 0, 511), value=1)          # the rest: skin (1)
    logits = F.one_hot(labels[:, 0], 19).permute(0, 3, 1, 2).float()
    image = ParserNet.foreground(logits, for_video=False)[0, 0, 0, :19]
    video = ParserNet.foreground(logits, for_video=True)[0, 0, 0, :19]
    assert image.tolist() == [float(c not in BACKGROUND_CLASSES) for c in range(19)]
    assert video.tolist() == [float(c not in VIDEO_BACKGROUND_CLASSES) for c in range(19)]
    assert set(BACKGROUND_CLASSES) == {0, 16, 18} and set(VIDEO_BACKGROUND_CLASSES) == {0, 7, 8, 14, 16, 17, 18}


def test_shared_mobilenet_tensors_take_the_pretrain_net_copy():
    encoder = DVAEncoder()
    state = encoder.state_dict()
    key = "lndnet.backbone.pretrain_net.features.4.conv.1.0.weight"
    state[key] = torch.randn_like(state[key])
    encoder.load_state_dict(state, strict=True)
    loaded = encoder.state_dict()
    assert torch.equal(loaded[key], state[key])
    assert torch.equal(loaded["lndnet.backbone.base_net.0.4.conv.1.0.weight"], state[key])
