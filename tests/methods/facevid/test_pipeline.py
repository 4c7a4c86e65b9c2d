"""`FaceVidPipeline` on a tiny random model: loading, batching, absolute / relative / free-view motion,
the fast mode, and bad crops."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from faceanim.errors import InputError
from faceanim.methods.facevid import FaceVidPipeline, FreeView
from faceanim.warping import MotionOptions

from ...conv_dtypes import conv_output_dtypes, dtypes_under
from .tiny_files import crops, tiny_model, write_official


@pytest.fixture(scope="module")
def clip() -> list[np.ndarray]:
    return crops(5)


@pytest.fixture(scope="module")
def pipeline() -> FaceVidPipeline:
    return FaceVidPipeline(tiny_model(), device="cpu", batch_size=2)


def test_from_pretrained_official_and_converted(tmp_path, clip):
    from faceanim.methods.facevid.config import tiny

    checkpoint = write_official(tmp_path / "Facevid.pth", tiny_model())
    official = FaceVidPipeline.from_pretrained(checkpoint, config=tiny(), device="cpu", relative=True)
    converted = FaceVidPipeline.from_pretrained(official.save_pretrained(tmp_path / "converted"), device="cpu")
    assert official.motion == MotionOptions(relative=True, adapt_scale=False)
    assert converted.motion == MotionOptions(relative=False, adapt_scale=False) and converted.crop_size == 64
    outputs = [list(p.animate_crops(p.prepare_source(clip[0]), clip[1:3], clip[0], MotionOptions(relative=False)))
               for p in (official, converted)]
    assert all(np.array_equal(a, b) for a, b in zip(*outputs))


def test_batches_equal_frame_by_frame(clip):
    model = tiny_model()
    outputs = []
    for batch_size in (1, 2, 5):
        pipeline = FaceVidPipeline(model, device="cpu", batch_size=batch_size)
        outputs.append(np.stack(list(pipeline.animate_crops(pipeline.prepare_source(clip[0]), iter(clip), clip[0]))))
    assert outputs[0].shape == (5, 64, 64, 3) and outputs[0].dtype == np.uint8
    # float reordering between batch shapes may move a value across a rounding boundary: one grey level
    assert all(np.abs(o.astype(int) - outputs[0]).max() <= 1 for o in outputs[1:])
    assert np.abs(outputs[0][0].astype(int) - outputs[0][4]).max() > 10   # the frames do differ


def test_relative_and_absolute_motion(pipeline, clip):
    source = pipeline.prepare_source(clip[0])
    poses, initial = pipeline.head_poses(clip[1:4]), pipeline.head_poses([clip[4]])
    absolute = pipeline.generate(source, poses, motion=MotionOptions(relative=False))
    relative = pipeline.generate(source, poses, initial, MotionOptions(relative=True))
    assert (absolute["kp_driving"].value - relative["kp_driving"].value).abs().max() > 1e-3
    assert (absolute["prediction"] - relative["prediction"]).abs().max() > 1e-3
    # relative motion moves the source's own keypoints by the driving change: none when driving == initial
    for adapt_scale in (False, True):
        still = pipeline.generate(source, initial, initial, MotionOptions(relative=True, adapt_scale=adapt_scale))
        assert torch.equal(still["kp_driving"].value, source.keypoints.value)
        with torch.no_grad():
            reference = pipeline.model.generate_from(source.volume, source.keypoints, source.keypoints)
        assert torch.allclose(still["prediction"], reference["prediction"], atol=1e-6)
    # absolute motion from the source's own frame is the source's pose too
    own = pipeline.generate(source, pipeline.head_poses([clip[0]]), motion=MotionOptions(relative=False))
    assert torch.allclose(own["kp_driving"].value, source.keypoints.value, atol=1e-6)


def test_relative_motion_needs_the_initial_pose(pipeline, clip):
    source = pipeline.prepare_source(clip[0])
    with pytest.raises(InputError, match="initial"):
        pipeline.generate(source, pipeline.head_poses(clip[:1]), None, MotionOptions(relative=True))


def test_free_view_fixes_the_head_angles(clip):
    pipeline = FaceVidPipeline(tiny_model(), device="cpu", free_view=FreeView(yaw=0, pitch=0, roll=0))
    source = pipeline.prepare_source(clip[0])
    poses = pipeline.head_poses(clip[1:3])
    kp = pipeline.generate(source, poses, motion=MotionOptions(relative=False))["kp_driving"].value
    # no rotation: canonical keypoints + translation + expression deltas
    expected = source.canonical.value + poses.t[:, None] + poses.exp.view(2, -1, 3)
    assert torch.allclose(kp, expected, atol=1e-6)


def test_fast_mode_stays_close(clip):
    model = tiny_model()
    exact, fast = (FaceVidPipeline(model, device="cpu", precision=p, batch_size=3) for p in ("exact", "fast"))
    frames = [np.stack(list(p.animate_crops(p.prepare_source(clip[0]), clip[1:4], clip[0]))) for p in (exact, fast)]
    assert np.abs(frames[0].astype(int) - frames[1]).mean() < 2.0
    # fast mode did leave float32: the generator's per-frame convolutions run in bfloat16 (autocast on the
    # CPU) while what becomes a position (head pose, keypoints, the dense-motion flow) stays float32
    outputs, convs, poses = {}, {}, {}
    for pipeline in (exact, fast):
        source = pipeline.prepare_source(clip[0])
        poses[pipeline.precision] = pipeline.head_poses(clip[1:4])
        initial = pipeline.head_poses(clip[:1])
        outputs[pipeline.precision], convs[pipeline.precision] = conv_output_dtypes(
            pipeline.model, lambda: pipeline.generate(source, poses[pipeline.precision], initial,
                                                      MotionOptions(relative=True)))
    assert dtypes_under(convs["exact"], under="") == {torch.float32}
    assert dtypes_under(convs["fast"], under="generator.", but_not="generator.dense_motion_network.") == {torch.bfloat16}
    assert dtypes_under(convs["fast"], under="generator.dense_motion_network.") == {torch.float32}
    assert "generator.final" in convs["fast"]
    assert outputs["exact"]["prediction_logits"].dtype == torch.float32
    assert outputs["fast"]["prediction_logits"].dtype == torch.bfloat16     # the generator did run in half precision
    for field in ("yaw", "pitch", "roll", "t", "exp"):                      # head poses: float32 in both modes
        assert getattr(poses["fast"], field).dtype == torch.float32
        assert torch.equal(getattr(poses["exact"], field), getattr(poses["fast"], field))
    assert outputs["fast"]["kp_driving"].value.dtype == torch.float32
    assert torch.equal(outputs["exact"]["kp_driving"].value, outputs["fast"]["kp_driving"].value)
    error = float((outputs["fast"]["prediction_logits"].float() - outputs["exact"]["prediction_logits"]).norm()
                  / outputs["exact"]["prediction_logits"].norm())
    assert 0 < error <= 2e-2
    # the keypoint detector keeps float32 even when called under autocast (its own float32 island)
    images = torch.stack([torch.from_numpy(c).permute(2, 0, 1).float() / 255 for c in clip[1:4]])
    with torch.no_grad():
        expected = model.canonical_keypoints(images).value
        with torch.autocast("cpu", dtype=torch.bfloat16):
            keypoints, convs_inside = conv_output_dtypes(model, lambda: model.canonical_keypoints(images))
    assert dtypes_under(convs_inside, under="kp_detector.") == {torch.float32}
    assert keypoints.value.dtype == torch.float32 and torch.equal(keypoints.value, expected)


def test_head_pose_estimator_keeps_float32_under_autocast(clip):
    model = tiny_model()
    images = torch.stack([torch.from_numpy(c).permute(2, 0, 1).float() / 255 for c in clip[1:4]])
    with torch.no_grad():
        expected = model.head_pose(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            pose, convs_inside = conv_output_dtypes(model, lambda: model.head_pose(images))
    assert dtypes_under(convs_inside, under="he_estimator.") == {torch.float32}
    for field in ("yaw", "pitch", "roll", "t", "exp"):
        assert getattr(pose, field).dtype == torch.float32, field
        assert torch.equal(getattr(pose, field), getattr(expected, field)), field


def test_bad_crops_and_settings(pipeline):
    with pytest.raises(InputError, match=r"uint8 \(64, 64, 3\)"):
        pipeline.prepare_source(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(InputError, match="precision"):
        FaceVidPipeline(tiny_model(), device="cpu", precision="half")
    with pytest.raises(InputError, match="batch size"):
        FaceVidPipeline(tiny_model(), device="cpu", batch_size=0)
