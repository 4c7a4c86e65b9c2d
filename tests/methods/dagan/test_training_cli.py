"""`faceanim train dagan` on the command line: the depth stage, then DaGAN on the depth network it
exported, resume, checkpoints and TensorBoard logs, and the exported model driving `faceanim reenact
--method dagan`. Bad invocations exit 2 with a one-line message and leave no run folder."""
from __future__ import annotations

import json

import pytest

from faceanim.cli.main import main
from faceanim.media import probe, write_image
from tests.conftest import write_face_clip


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_depth_stage_then_dagan_then_reenact(tmp_path, face_dataset, weight_files, astronaut, capsys):
    depth_run = tmp_path / "depth-run"
    code, out, _ = run(capsys, "train", "dagan", "--stage", "depth", "--config", "depth_tiny.yaml",
                       "--data", face_dataset, "--output", depth_run, "--max-steps", 2)
    assert code == 0 and "trained dagan (depth stage) to step 2" in out
    depth = depth_run / "depth"
    assert (depth / "encoder.pth").is_file() and (depth / "depth.pth").is_file()

    dagan_run = tmp_path / "dagan-run"
    argv = ["train", "dagan", "--config", "tiny.yaml", "--data", face_dataset, "-o", dagan_run,
            "--depth-encoder", depth / "encoder.pth", "--depth-decoder", depth / "depth.pth",
            "--vgg19", weight_files.vgg19]
    code, out, _ = run(capsys, *argv, "--max-steps", 3)
    assert code == 0 and "trained dagan to step 3" in out
    assert (dagan_run / "checkpoints" / "latest").read_text().strip() == "step-00000003"
    code, out, _ = run(capsys, *argv, "--max-steps", 5, "--resume", "latest")
    assert code == 0 and "to step 5" in out
    assert (dagan_run / "checkpoints" / "latest").read_text().strip() == "step-00000005"
    assert json.loads((dagan_run / "train_config.json").read_text())["model"]["image_size"] == 64
    _assert_logged(dagan_run)

    source, driving = tmp_path / "source.png", tmp_path / "driving.mp4"
    write_image(source, astronaut)
    write_face_clip(driving, astronaut, frames=6, with_audio=False)
    code, out, err = run(capsys, "reenact", source, driving, "-o", tmp_path / "out.mp4", "--method", "dagan",
                         "--checkpoint", dagan_run / "model")
    assert code == 0, err
    assert probe(tmp_path / "out.mp4", expect="video").frame_count == 6


def _assert_logged(run_folder) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_folder / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    assert {"generator/perceptual", "generator/equivariance_value", "generator/kp_distance",
            "discriminator/discriminator_gan", "lr/generator"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("generator/total")] == [5]   # tiny.yaml logs every 5 steps


@pytest.mark.parametrize("argv, problem", [
    (["train", "dagan", "--config", "tiny.yaml"], "training needs --data DATASET"),
    (["train", "dagan", "--stage", "depth", "--config", "tiny.yaml", "--data", "."], "is a dagan-stage config"),
    (["train", "dagan", "--config", "depth_tiny", "--data", "."], "is a depth-stage config"),
    (["train", "dagan", "--config", "nowhere.yaml", "--data", "."], "config not found"),
    (["train", "dagan", "--max-steps", "0", "--data", "."], "--max-steps must be >= 1"),
    (["train", "dagan", "--config", "tiny.yaml", "--data", "."], "--depth-encoder"),
    (["train", "dagan", "--config", "tiny.yaml", "--data", "no-such-dataset", "--depth-encoder", "{enc}",
      "--depth-decoder", "{dec}", "--vgg19", "{vgg}"], "no-such-dataset: dataset folder not found"),
    (["train", "fadm", "--data", "."], "--coarse-checkpoint"),
])
def test_bad_train_invocations_exit_2_with_one_line(argv, problem, tmp_path, weight_files, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for variable in ("FACEANIM_DAGAN_DEPTH_ENCODER", "FACEANIM_DAGAN_DEPTH_DECODER", "FACEANIM_VGG19"):
        monkeypatch.delenv(variable, raising=False)
    files = {"enc": weight_files.depth_encoder, "dec": weight_files.depth_decoder, "vgg": weight_files.vgg19}
    code, _, err = run(capsys, *[a.format(**files) for a in argv])
    assert code == 2 and err.startswith("faceanim: error:") and err.count("\n") == 1
    assert problem in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_two_process_training_under_torchrun(tmp_path, face_dataset, weight_files):
    """What `torchrun`/`accelerate launch` do on GPUs, with two CPU processes (gloo DDP)."""
    import socket
    import subprocess
    import sys

    from tests.conftest import REPO

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    out = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(port),
               "-m", "faceanim", "train", "dagan", "--config", "tiny.yaml", "--data", str(face_dataset), "-o", str(out),
               "--max-steps", "2", "--depth-encoder", weight_files.depth_encoder,
               "--depth-decoder", weight_files.depth_decoder, "--vgg19", weight_files.vgg19]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("trained dagan to step 2") == 1        # the main process reports
    checkpoint = out / "checkpoints" / "step-00000002"
    assert sorted(p.name for p in (checkpoint / "rng").iterdir()) == ["process-0.pt", "process-1.pt"]
    assert json.loads((checkpoint / "trainer_state.json").read_text())["num_processes"] == 2
    assert (out / "model" / "model.safetensors").is_file()
