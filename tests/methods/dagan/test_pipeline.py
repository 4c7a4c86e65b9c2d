"""`DaGANPipeline` on a tiny random model: loading (official files and converted folders), the split
generator, batching, motion transfer as the official demo does it, the fast mode, and failures."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from faceanim.errors import CheckpointError, InputError, MissingWeightsError
from faceanim.methods.dagan import DaGANModel, DaGANPipeline
from faceanim.methods.dagan.config import tiny
from faceanim.methods.dagan.convert import convert_official
from faceanim.warping import CoarseAnimator, CropAnimator, MotionOptions
from faceanim.warping.motion import normalize_keypoints

from ...parity import fixture, relative_error, stem_params
from .parity_data import SYSTEM, fixture_model
from .tiny_files import crops, tiny_model, write_files


def rel(ours: torch.Tensor, expected: torch.Tensor) -> float:
    return relative_error(ours.float(), expected.float())


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    return write_files(tmp_path_factory.mktemp("dagan_files"), tiny_model())


@pytest.fixture(scope="module")
def clip() -> list[np.ndarray]:
    return crops(7)


def official(files, **settings) -> DaGANPipeline:
    return DaGANPipeline.from_pretrained(files["checkpoint"], depth_encoder=files["depth_encoder"],
                                         depth_decoder=files["depth_decoder"], config=files["config"], **settings)


def recorded_logits(pipeline: DaGANPipeline, monkeypatch) -> list[torch.Tensor]:
    """Every batch of prediction logits the pipeline's model makes from now on."""
    calls, generate_from = [], pipeline.model.generate_from

    def recording(*args, **kwargs):
        out = generate_from(*args, **kwargs)
        calls.append(out["prediction_logits"].float().clone())
        return out
    monkeypatch.setattr(pipeline.model, "generate_from", recording)
    return calls


@pytest.mark.parametrize("kind", ["DepthAwareGenerator", "SPADEDepthAwareGenerator"])
def test_split_generator_equals_forward(kind):
    config = dataclasses.replace(tiny(), generator=dataclasses.replace(tiny().generator, kind=kind))
    model = tiny_model(config=config)
    source, driving = torch.rand(1, 3, 64, 64), torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        depth, _ = model.depth(torch.cat([source, driving]))
        kp_source = model.keypoints(source, depth[:1])
        kp_driving = model.keypoints(driving, depth[1:])
        whole = model.generate(source, kp_source, kp_driving, depth[:1])
        encoded = model.encode_source(source, depth[:1])
        split = model.generate_from(encoded, kp_source, kp_driving)
    assert encoded.features.shape[0] == 1  # encoded once, expanded over the batch of three
    assert set(whole) == set(split)
    for key in whole:
        assert rel(split[key], whole[key]) <= 1e-5, key


@pytest.mark.parametrize("stem", stem_params(SYSTEM))
def test_split_generator_equals_forward_on_the_parity_fixtures(stem):
    """The official fixture's inputs and weights: the split path gives the forward's outputs."""
    _, _, io = fixture(SYSTEM, stem)
    model = fixture_model(stem)
    with torch.no_grad():
        depth, _ = model.depth(io["source"])
        kp_source = model.keypoints(io["source"], depth)
        kp_driving = model.keypoints(io["driving"], model.depth(io["driving"])[0])
        whole = model.generate(io["source"], kp_source, kp_driving, depth)
        split = model.generate_from(model.encode_source(io["source"], depth), kp_source, kp_driving)
    for key in ("prediction_logits", "deformed", "occlusion_map"):
        assert rel(split[key], whole[key]) <= 1e-5, key


def test_official_files_and_converted_folder_give_the_same_pipeline(files, clip):
    from_official, from_folder = official(files), DaGANPipeline.from_pretrained(files["converted"])
    assert from_official.crop_size == from_folder.crop_size == 64
    ours, theirs = from_official.model.state_dict(), from_folder.model.state_dict()
    assert set(ours) == set(theirs) and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert not any(key.startswith("discriminator.") for key in ours)  # inference leaves it out
    outputs = [list(p.animate_crops(p.prepare_source(clip[0]), clip, clip[0])) for p in (from_official, from_folder)]
    assert all(np.array_equal(a, b) for a, b in zip(*outputs))
    for protocol in (CropAnimator, CoarseAnimator):   # both views are offered
        assert all(hasattr(from_folder, name) for name in protocol.__annotations__ | vars(protocol)
                   if not name.startswith("_"))


def test_batches_equal_frame_by_frame_and_the_official_loop(files, clip, monkeypatch):
    batched, single = official(files, batch_size=3), official(files, batch_size=1)
    outputs, logits = {}, {}
    for name, pipeline in (("batched", batched), ("single", single)):
        logits[name] = recorded_logits(pipeline, monkeypatch)
        outputs[name] = list(pipeline.animate_crops(pipeline.prepare_source(clip[0]), iter(clip), clip[2]))
    assert [len(batch) for batch in logits["batched"]] == [3, 3, 1] and len(logits["single"]) == 7
    assert rel(torch.cat(logits["batched"]), torch.cat(logits["single"])) <= 1e-4
    # the official demo's make_animation, one frame at a time, with relative motion and adapt_scale
    model = batched.model

    def to_tensor(frames):
        return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        source = to_tensor(clip[:1])
        source_depth, _ = model.depth(source)
        kp_source = model.keypoints(source, source_depth)
        kp_initial = model.keypoints(to_tensor(clip[2:3]), model.depth(to_tensor(clip[2:3]))[0])
        expected = []
        for crop in clip:
            frame = to_tensor([crop])
            kp_norm = normalize_keypoints(kp_source, model.keypoints(frame, model.depth(frame)[0]), kp_initial,
                                          relative=True, adapt_scale=True)
            expected.append(model.generate(source, kp_source, kp_norm, source_depth)["prediction_logits"])
    assert rel(torch.cat(logits["batched"]), torch.cat(expected)) <= 1e-4
    assert len(outputs["batched"]) == 7 and outputs["batched"][0].dtype == np.uint8
    assert max(np.abs(a.astype(int) - b).max() for a, b in zip(outputs["batched"], outputs["single"])) <= 1


def test_motion_options_follow_the_official_normalize_kp(files, clip, monkeypatch):
    pipeline = official(files, batch_size=4)
    source = pipeline.prepare_source(clip[0])
    kp_initial, kp_driving = pipeline.keypoints(clip[2:3]), pipeline.keypoints(clip[3:7])
    logits = recorded_logits(pipeline, monkeypatch)
    results = {}
    for relative, adapt_scale in ((True, True), (True, False), (False, False)):
        motion = MotionOptions(relative=relative, adapt_scale=adapt_scale)
        list(pipeline.animate_crops(source, clip[3:7], clip[2], motion))
        target = normalize_keypoints(source.keypoints, kp_driving, kp_initial, relative=relative,
                                     adapt_scale=adapt_scale)
        with torch.no_grad():
            expected = pipeline.model.generate(source.image, source.keypoints, target, source.depth)
        results[relative, adapt_scale] = logits[-1]
        assert rel(logits[-1], expected["prediction_logits"]) <= 1e-4
    assert rel(results[True, True], results[True, False]) > 1e-3    # each option changes the output
    assert rel(results[True, False], results[False, False]) > 1e-3
    # the pipeline's own default is the README's --relative --adapt_scale
    list(pipeline.animate_crops(source, clip[3:7], clip[2]))
    assert torch.equal(logits[-1], results[True, True])


def test_source_work_is_done_once_per_video(files, clip, monkeypatch):
    pipeline = official(files, batch_size=4)
    source = pipeline.prepare_source(clip[0])
    counts = {"encode_source": 0, "depth": 0}
    for name in counts:
        method = getattr(pipeline.model, name)

        def counting(*args, _method=method, _name=name, **kwargs):
            counts[_name] += 1
            return _method(*args, **kwargs)
        monkeypatch.setattr(pipeline.model, name, counting)
    frames = pipeline.animate_crops(source, iter(clip), clip[0])
    next(frames)
    assert counts == {"encode_source": 0, "depth": 2}     # the initial crop, then the first batch of four
    assert len(list(frames)) == 6 and counts == {"encode_source": 0, "depth": 3}


def test_coarse_animator_view_matches_animate_crops(files, clip):
    pipeline = official(files, batch_size=3)
    source = pipeline.prepare_source(clip[0])
    motion = list(pipeline.driving_motion(clip))
    assert len(motion) == 7 and motion[0].value.shape == (1, 5, 2)
    frame = pipeline.animate(source, motion[4], motion[0])
    assert np.abs(frame.astype(int) - list(pipeline.animate_crops(source, clip, clip[0]))[4]).max() <= 1


def test_fast_mode_stays_close_to_exact(files, clip):
    exact, fast = official(files, batch_size=4), official(files, batch_size=4, precision="fast")
    outputs = []
    for pipeline in (exact, fast):
        source = pipeline.prepare_source(clip[0])
        kp_driving, kp_initial = pipeline.keypoints(clip[1:5]), pipeline.keypoints(clip[:1])
        assert kp_driving.value.dtype == torch.float32
        outputs.append(pipeline.generate(source, kp_driving, kp_initial)["prediction_logits"])
    assert torch.equal(exact.keypoints(clip[1:5]).value, fast.keypoints(clip[1:5]).value)  # float32 in both
    assert outputs[1].dtype == torch.bfloat16           # the generator did run in half precision
    error = rel(outputs[1], outputs[0])
    assert 0 < error <= 1e-2


def test_missing_weights_name_their_flags(files, monkeypatch):
    for env in ("FACEANIM_DAGAN_CHECKPOINT", "FACEANIM_DAGAN_DEPTH_ENCODER", "FACEANIM_DAGAN_DEPTH_DECODER"):
        monkeypatch.delenv(env, raising=False)
    with pytest.raises(MissingWeightsError, match="--checkpoint"):
        DaGANPipeline.from_pretrained()
    with pytest.raises(MissingWeightsError, match="--depth-encoder"):
        DaGANPipeline.from_pretrained(files["checkpoint"], depth_decoder=files["depth_decoder"])
    with pytest.raises(MissingWeightsError, match="--depth-decoder.*FACEANIM_DAGAN_DEPTH_DECODER"):
        DaGANPipeline.from_pretrained(files["checkpoint"], depth_encoder=files["depth_encoder"])
    monkeypatch.setenv("FACEANIM_DAGAN_CHECKPOINT", str(files["checkpoint"]))
    monkeypatch.setenv("FACEANIM_DAGAN_DEPTH_ENCODER", str(files["depth_encoder"]))
    monkeypatch.setenv("FACEANIM_DAGAN_DEPTH_DECODER", str(files["depth_decoder"]))
    assert DaGANPipeline.from_pretrained(config=files["config"]).crop_size == 64
    assert DaGANPipeline.from_pretrained(files["converted"]).crop_size == 64  # depth variables not consulted


def test_files_that_do_not_fit_are_named(files, tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(CheckpointError, match=r"depth\.pth: does not fit DepthEncoder: .*(missing|unexpected)"):
        DaGANPipeline.from_pretrained(files["checkpoint"], depth_encoder=files["depth_decoder"],
                                      depth_decoder=files["depth_encoder"], config=files["config"])  # swapped
    with pytest.raises(CheckpointError, match=r"checkpoint\.pth\.tar.*shape mismatch.*--config"):
        DaGANPipeline.from_pretrained(files["checkpoint"], depth_encoder=files["depth_encoder"],
                                      depth_decoder=files["depth_decoder"])       # the vox256 layout
    with pytest.raises(CheckpointError, match="nowhere.pth.tar: checkpoint file not found"):
        DaGANPipeline.from_pretrained(tmp_path / "nowhere.pth.tar", depth_encoder=files["depth_encoder"],
                                      depth_decoder=files["depth_decoder"])
    with pytest.raises(InputError, match="converted folder.*--depth-encoder"):
        DaGANPipeline.from_pretrained(files["converted"], depth_encoder=files["depth_encoder"])
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"method": "warp"}')
    save_file({"w": torch.zeros(1)}, str(tmp_path / "other" / "model.safetensors"))
    with pytest.raises(CheckpointError, match="other/config.json: is not a converted DaGAN model"):
        DaGANPipeline.from_pretrained(tmp_path / "other")


def test_bad_settings_and_crops(files, clip):
    with pytest.raises(InputError, match="precision"):
        official(files, precision="half")
    with pytest.raises(InputError, match="batch size"):
        official(files, batch_size=0)
    pipeline = official(files)
    with pytest.raises(InputError, match=r"\(64, 64, 3\)"):
        pipeline.prepare_source(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(InputError, match="uint8"):
        list(pipeline.animate_crops(pipeline.prepare_source(clip[0]), [clip[1].astype(np.float32)], clip[0]))


def test_convert_round_trip(files, tmp_path, clip):
    from safetensors import safe_open

    from faceanim.checkpoints import sha256

    result = convert_official(files["checkpoint"], tmp_path / "model", depth_encoder=files["depth_encoder"],
                              depth_decoder=files["depth_decoder"], config=files["config"], kp_num=5)
    assert result.components == ("generator", "kp_detector", "depth_encoder", "depth_decoder")
    assert result.inputs["checkpoint"] == (files["checkpoint"], sha256(files["checkpoint"]))
    with safe_open(str(tmp_path / "model" / "model.safetensors"), "pt") as weights:
        assert weights.metadata()["depth_encoder_sha256"] == sha256(files["depth_encoder"])
    converted = DaGANPipeline.from_pretrained(tmp_path / "model")
    original = DaGANPipeline.from_pretrained(files["converted"])
    assert all(torch.equal(v, original.model.state_dict()[k]) for k, v in converted.model.state_dict().items())
    # the discriminator on request, and saving a pipeline gives a folder that loads the same
    with_discriminator = convert_official(files["checkpoint"], tmp_path / "full", depth_encoder=files["depth_encoder"],
                                          depth_decoder=files["depth_decoder"], config=files["config"],
                                          discriminator=True)
    assert "discriminator" in with_discriminator.components
    converted.save_pretrained(tmp_path / "saved")
    again = DaGANPipeline.from_pretrained(tmp_path / "saved")
    source = again.prepare_source(clip[0])
    assert np.array_equal(next(again.animate_crops(source, clip[1:2], clip[0])),
                          next(converted.animate_crops(converted.prepare_source(clip[0]), clip[1:2], clip[0])))
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="not a converted model folder"):
        convert_official(files["checkpoint"], tmp_path / "precious", depth_encoder=files["depth_encoder"],
                         depth_decoder=files["depth_decoder"], config=files["config"])
    assert (tmp_path / "precious" / "notes.txt").read_text() == "keep me"
