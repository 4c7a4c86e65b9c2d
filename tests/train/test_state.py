"""Checkpoint folders: atomic publication, manifests, verification, `latest`, pruning, safe loading."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from faceanim.errors import CheckpointError
from faceanim.train import state


def write_checkpoint(root, step, keep=0, value=0.0):
    staging = state.staging_folder(root, step)
    (staging / "models").mkdir()
    state.save_tensors(staging / "models" / "net.safetensors", {"w": torch.full((3,), value)})
    state.save_object(staging / "rng.pt", state.rng_state())
    return state.publish(staging, root, step, keep)


def test_publish_writes_a_verified_folder_and_the_latest_pointer(tmp_path):
    folder = write_checkpoint(tmp_path, 5)
    assert folder.name == "step-00000005" and not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
    manifest = state.verify(folder)
    assert set(manifest["files"]) == {"models/net.safetensors", "rng.pt"} and manifest["step"] == 5
    assert (tmp_path / "latest").read_text().strip() == "step-00000005"
    assert state.find_checkpoint(tmp_path, "latest") == folder


def test_damaged_latest_falls_back_to_the_previous_checkpoint(tmp_path, caplog):
    first = write_checkpoint(tmp_path, 1, value=1.0)
    second = write_checkpoint(tmp_path, 2, value=2.0)
    data = bytearray((second / "models" / "net.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (second / "models" / "net.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match its hash"):
        state.verify(second)
    assert state.find_checkpoint(tmp_path, "latest") == first
    assert "skipping checkpoint" in caplog.text
    with pytest.raises(CheckpointError):
        state.find_checkpoint(tmp_path, str(second))


def test_a_folder_without_manifest_is_not_a_checkpoint(tmp_path):
    (tmp_path / "step-00000003").mkdir()
    with pytest.raises(CheckpointError, match="no manifest"):
        state.find_checkpoint(tmp_path, str(tmp_path / "step-00000003"))
    assert state.find_checkpoint(tmp_path, "latest") is None
    assert state.find_checkpoint(tmp_path / "nothing", "latest") is None
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        state.find_checkpoint(tmp_path, str(tmp_path / "missing"))


def test_keep_last_n_prunes_older_steps_only(tmp_path):
    for step in (10, 20, 30):
        write_checkpoint(tmp_path, step)
    write_checkpoint(tmp_path, 15, keep=1)   # a run resumed from step 10: step 20 and 30 are left alone
    assert [s for s, _ in state.checkpoints(tmp_path)] == [15, 20, 30]
    write_checkpoint(tmp_path, 40, keep=2)
    assert [s for s, _ in state.checkpoints(tmp_path)] == [30, 40]


def test_republishing_a_step_replaces_it(tmp_path):
    write_checkpoint(tmp_path, 7, value=1.0)
    folder = write_checkpoint(tmp_path, 7, value=2.0)
    assert state.load_tensors(folder / "models" / "net.safetensors")["w"][0] == 2.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step-00000007"]


def test_stale_staging_folders_are_removed(tmp_path):
    write_checkpoint(tmp_path, 1)
    (tmp_path / ".step-00000002.tmp" / "models").mkdir(parents=True)
    (tmp_path / ".step-00000001.old").mkdir()
    state.remove_stale(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step-00000001"]


def test_rng_state_round_trip_through_a_weights_only_file(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.normal()  # leaves a cached gaussian in numpy's legacy state
    state.save_object(tmp_path / "rng.pt", state.rng_state())
    expected = (random.random(), np.random.normal(), np.random.rand(), torch.rand(3))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    state.set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    got = (random.random(), np.random.normal(), np.random.rand(), torch.rand(3))
    assert got[:3] == expected[:3] and torch.equal(got[3], expected[3])


def test_optimizer_and_scheduler_states_load_weights_only(tmp_path):
    net = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.1)
    net(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    lr_scheduler = torch.optim.lr_scheduler
    schedulers = [lr_scheduler.MultiStepLR(optimizer, [5, 10], 0.1), lr_scheduler.StepLR(optimizer, 3),
                  lr_scheduler.LambdaLR(optimizer, lambda s: 1)]
    values = {"optimizer": optimizer.state_dict(), **{f"s{i}": s.state_dict() for i, s in enumerate(schedulers)},
              "scaler": torch.amp.GradScaler("cpu").state_dict()}
    for name, value in values.items():
        state.save_object(tmp_path / f"{name}.pt", value)
        loaded = torch.load(tmp_path / f"{name}.pt", weights_only=True)
        assert loaded.keys() == value.keys()
    reloaded = torch.optim.Adam(net.parameters(), lr=0.1)
    reloaded.load_state_dict(state.load_object(tmp_path / "optimizer.pt"))
    assert torch.equal(reloaded.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])


def test_tied_tensors_are_saved(tmp_path):
    shared = torch.arange(6.0)
    state.save_tensors(tmp_path / "tied.safetensors", {"a": shared, "b": shared, "c": shared[:3]})
    loaded = state.load_tensors(tmp_path / "tied.safetensors")
    assert torch.equal(loaded["a"], loaded["b"]) and torch.equal(loaded["c"], shared[:3])
