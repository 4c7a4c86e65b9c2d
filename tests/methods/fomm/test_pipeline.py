"""`FOMMPipeline` on a tiny random FOMM (64 px): loading with the official YAML, frames and batching,
motion transfer as FOMM's demo (`normalize_kp`, relative / absolute / adapt-scale), the initial-frame rule,
device, batch-size and precision settings, and bad crops, settings and missing weights."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial import ConvexHull

from faceanim.errors import InputError, MissingWeightsError
from faceanim.methods.fomm import FOMMPipeline
from faceanim.warping import MotionOptions
from faceanim.warping.keypoints import Keypoints

from ...conv_dtypes import conv_output_dtypes, dtypes_under
from .tiny_files import SIZE, crops, write_files


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    return write_files(tmp_path_factory.mktemp("fomm_pipeline"))


@pytest.fixture(scope="module")
def clip() -> list[np.ndarray]:
    return crops(7, SIZE, seed=3)


@pytest.fixture(scope="module")
def pipeline(files) -> FOMMPipeline:
    return FOMMPipeline.from_pretrained(files["checkpoint"], config=files["config"], device="cpu", batch_size=3)


def _tensor(frames: list[np.ndarray]) -> torch.Tensor:
    return torch.stack([torch.from_numpy(f).permute(2, 0, 1).float() / 255 for f in frames])


def _uint8(prediction: torch.Tensor) -> np.ndarray:
    return (prediction.permute(0, 2, 3, 1).numpy() * 255).round().clip(0, 255).astype(np.uint8)


def _max_difference(a, b) -> int:
    return int(np.abs(np.asarray(a).astype(int) - np.asarray(b)).max())


def _generator_batches(pipeline: FOMMPipeline) -> tuple[list[int], object]:
    """The batch size of every generator call from now on (and the hook's handle, to remove it)."""
    sizes: list[int] = []
    handle = pipeline.model.generator.register_forward_hook(
        lambda module, args, kwargs, output: sizes.append(output["prediction"].shape[0]), with_kwargs=True)
    return sizes, handle


def _official_kp_norm(kp_source: Keypoints, kp_driving: Keypoints, kp_initial: Keypoints, *, relative: bool,
                      adapt_scale: bool) -> Keypoints:
    """FOMM's `normalize_kp` as its demo calls it (use_relative_jacobian = relative), written out here:
    relative: p = p_S + s (p_D - p_D0), J = J_D J_D0^-1 J_S with s = sqrt(hull area S / hull area D0)
    (scipy's ConvexHull, as the official) under adapt_scale, else 1; absolute: the driving keypoints."""
    if not relative:
        return kp_driving
    scale = 1.0
    if adapt_scale:
        scale = np.sqrt(ConvexHull(kp_source.value[0].numpy()).volume) / np.sqrt(
            ConvexHull(kp_initial.value[0].numpy()).volume)
    value = (kp_driving.value - kp_initial.value) * scale + kp_source.value
    jacobian = torch.matmul(torch.matmul(kp_driving.jacobian, torch.inverse(kp_initial.jacobian)), kp_source.jacobian)
    return Keypoints(value, jacobian)


def _official_loop(pipeline: FOMMPipeline, clip: list[np.ndarray], initial: np.ndarray, motion: MotionOptions
                   ) -> np.ndarray:
    """The official demo's make_animation: one driving frame at a time through kp_detector and generator."""
    kp_detector, generator = pipeline.model.kp_detector, pipeline.model.generator
    source = _tensor(clip[:1])
    frames = []
    with torch.no_grad():
        kp_source, kp_initial = kp_detector(source), kp_detector(_tensor([initial]))
        for crop in clip:
            kp_norm = _official_kp_norm(kp_source, kp_detector(_tensor([crop])), kp_initial,
                                        relative=motion.relative, adapt_scale=motion.adapt_scale)
            frames.append(_uint8(generator(source, kp_driving=kp_norm, kp_source=kp_source)["prediction"])[0])
    return np.stack(frames)


def test_from_pretrained_takes_the_official_yaml_and_the_settings(files, pipeline):
    assert pipeline.crop_size == SIZE and pipeline.batch_size == 3
    assert pipeline.device == torch.device("cpu")
    assert all(t.device.type == "cpu" for t in pipeline.model.state_dict().values())
    assert pipeline.motion == MotionOptions(relative=True, adapt_scale=True)     # the demo's --relative --adapt_scale
    assert pipeline.model.config.num_kp == 10 and pipeline.model.config.image_size == SIZE
    absolute = FOMMPipeline.from_pretrained(files["fomm_pth"], config=files["config"], relative=False,
                                            adapt_scale=False, batch_size=5, device="cpu")
    assert absolute.motion == MotionOptions(relative=False, adapt_scale=False) and absolute.batch_size == 5


def test_frames_are_uint8_crops_and_batching_changes_nothing(files, clip):
    outputs, batches = {}, {}
    for batch_size in (1, 3):
        pipeline = FOMMPipeline.from_pretrained(files["checkpoint"], config=files["config"], device="cpu",
                                                batch_size=batch_size)
        batches[batch_size], handle = _generator_batches(pipeline)
        frames = pipeline.animate_crops(pipeline.prepare_source(clip[0]), iter(clip), clip[2])
        outputs[batch_size] = np.stack(list(frames))
        handle.remove()
    assert batches == {1: [1] * 7, 3: [3, 3, 1]}          # batch_size driving frames per forward pass
    assert outputs[1].shape == (7, SIZE, SIZE, 3) and outputs[1].dtype == np.uint8
    # float reordering between batch shapes may move a value across a rounding boundary: one grey level
    assert _max_difference(outputs[1], outputs[3]) <= 1
    assert min(_max_difference(outputs[1][i], outputs[1][i + 1]) for i in range(6)) > 30   # the frames do move


@pytest.mark.parametrize("relative, adapt_scale", [(True, True), (True, False), (False, False)])
def test_motion_transfer_follows_the_official_demo(pipeline, clip, relative, adapt_scale):
    motion = MotionOptions(relative=relative, adapt_scale=adapt_scale)
    frames = np.stack(list(pipeline.animate_crops(pipeline.prepare_source(clip[0]), clip, clip[2], motion)))
    assert _max_difference(frames, _official_loop(pipeline, clip, clip[2], motion)) <= 1


def test_relative_and_absolute_motion_differ(pipeline, clip):
    source = pipeline.prepare_source(clip[0])
    results = {}
    for relative, adapt_scale in ((True, True), (True, False), (False, False)):
        motion = MotionOptions(relative=relative, adapt_scale=adapt_scale)
        results[relative, adapt_scale] = np.stack(list(pipeline.animate_crops(source, clip[3:6], clip[2], motion)))
    assert np.abs(results[True, True].astype(int) - results[False, False]).mean() > 5
    assert np.abs(results[True, False].astype(int) - results[False, False]).mean() > 5
    assert np.abs(results[True, True].astype(int) - results[True, False]).mean() > 2   # adapt_scale counts too
    # the pipeline's own setting is used when no motion is given
    assert np.array_equal(np.stack(list(pipeline.animate_crops(source, clip[3:6], clip[2]))), results[True, True])


def test_driving_equal_to_the_initial_frame_reconstructs_the_source(pipeline, clip):
    """Relative motion moves the source by the driving change since the initial frame: none when the
    driving frame is the initial one, whichever it is, so the output is the source's reconstruction."""
    source = pipeline.prepare_source(clip[0])
    with torch.no_grad():
        reconstruction = _uint8(pipeline.model.generator(source.image, kp_driving=source.keypoints,
                                                         kp_source=source.keypoints)["prediction"])[0]
    for adapt_scale in (True, False):
        for initial in (clip[2], clip[5]):
            frame = next(pipeline.animate_crops(source, [initial], initial, MotionOptions(True, adapt_scale)))
            assert _max_difference(frame, reconstruction) <= 1
    # absolute motion from the source's own crop is the reconstruction too; from another crop it is not
    own = next(pipeline.animate_crops(source, [clip[0]], clip[4], MotionOptions(relative=False)))
    assert _max_difference(own, reconstruction) <= 1
    other = next(pipeline.animate_crops(source, [clip[2]], clip[2], MotionOptions(relative=False)))
    assert np.abs(other.astype(int) - reconstruction).mean() > 5


def test_source_keypoints_are_computed_once_per_video(pipeline, clip):
    calls: list[int] = []
    handle = pipeline.model.kp_detector.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    try:
        source = pipeline.prepare_source(clip[0])
        assert calls == [1]
        frames = pipeline.animate_crops(source, iter(clip), clip[0])
        next(frames)
        assert calls == [1, 1, 3]                 # the initial crop, then the first batch of three
        assert len(list(frames)) == 6 and calls == [1, 1, 3, 3, 1]
    finally:
        handle.remove()


def _exact_and_fast(files) -> list[FOMMPipeline]:
    return [FOMMPipeline.from_pretrained(files["checkpoint"], config=files["config"], device="cpu", batch_size=3,
                                         precision=precision) for precision in ("exact", "fast")]


def test_fast_mode_runs_the_generator_in_bfloat16_and_stays_close(files, clip):
    """precision="fast" (autocast, bfloat16 on the CPU): the generator's convolutions leave float32, the
    keypoint detector and the dense-motion network (what becomes a position) do not."""
    absolute = MotionOptions(relative=False)
    sources, frames, convs = {}, {}, {}
    for pipeline in _exact_and_fast(files):
        sources[pipeline.precision] = source = pipeline.prepare_source(clip[0])
        frames[pipeline.precision], convs[pipeline.precision] = conv_output_dtypes(
            pipeline.model, lambda: np.stack(list(pipeline.animate_crops(source, clip[1:], clip[0], absolute))))
    assert dtypes_under(convs["exact"], under="") == {torch.float32}
    assert dtypes_under(convs["fast"], under="generator.", but_not="generator.dense_motion_network.") == {torch.bfloat16}
    assert dtypes_under(convs["fast"], under="generator.dense_motion_network.") == {torch.float32}
    assert dtypes_under(convs["fast"], under="kp_detector.") == {torch.float32}
    assert sources["fast"].keypoints.value.dtype == torch.float32
    assert torch.equal(sources["exact"].keypoints.value, sources["fast"].keypoints.value)
    assert frames["fast"].dtype == np.uint8 and frames["fast"].shape == frames["exact"].shape
    assert 0 < np.abs(frames["exact"].astype(int) - frames["fast"]).mean() < 2.0


def test_fast_mode_with_the_default_relative_motion(files, clip):
    frames = [np.stack(list(p.animate_crops(p.prepare_source(clip[0]), clip[1:], clip[0])))
              for p in _exact_and_fast(files)]
    assert np.abs(frames[0].astype(int) - frames[1]).mean() < 2.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_device_gives_the_cpu_frames(files, clip):
    frames = {}
    for device in ("cpu", "cuda"):
        pipeline = FOMMPipeline.from_pretrained(files["checkpoint"], config=files["config"], device=device)
        assert next(pipeline.model.parameters()).device.type == device
        frames[device] = np.stack(list(pipeline.animate_crops(pipeline.prepare_source(clip[0]), clip, clip[1])))
    assert np.abs(frames["cpu"].astype(int) - frames["cuda"]).mean() < 0.5


def test_bad_crops_and_settings(files, pipeline, clip):
    with pytest.raises(InputError, match=r"uint8 \(64, 64, 3\)"):
        pipeline.prepare_source(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(InputError, match="uint8"):
        list(pipeline.animate_crops(pipeline.prepare_source(clip[0]), [clip[1].astype(np.float32)], clip[0]))
    with pytest.raises(InputError, match="batch size"):
        FOMMPipeline.from_pretrained(files["checkpoint"], config=files["config"], batch_size=0)
    with pytest.raises(InputError, match="precision"):
        FOMMPipeline.from_pretrained(files["checkpoint"], config=files["config"], precision="half")


def test_missing_weights_name_the_flag_and_variable(files, monkeypatch):
    monkeypatch.delenv("FACEANIM_FOMM_CHECKPOINT", raising=False)
    with pytest.raises(MissingWeightsError, match="--checkpoint.*FACEANIM_FOMM_CHECKPOINT"):
        FOMMPipeline.from_pretrained(config=files["config"])
    monkeypatch.setenv("FACEANIM_FOMM_CHECKPOINT", str(files["fomm_pth"]))
    assert FOMMPipeline.from_pretrained(config=files["config"], device="cpu").crop_size == SIZE
