"""The checkpoint loader: formats, prefix stripping, key reports, hashes, and refusal of pickled code."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os

import pytest
import torch
from torch import nn

from faceanim.checkpoints import (OpaqueObject, load_checkpoint, load_into, load_pretrained, load_state_dict,
                                  save_pretrained, sha256)
from faceanim.errors import CheckpointError


class TinyNet(nn.Module):
    def __init__(self, width: int = 4):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3)
        self.norm = nn.BatchNorm2d(width)


@dataclasses.dataclass
class ForeignConfig:  # stands for a training-config class pickled into a Lightning checkpoint
    lr: float = 1e-4


class Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_official_style_pth_tar_with_module_prefix(tmp_path):
    net = TinyNet()
    wrapped = {f"module.{k}": v for k, v in net.state_dict().items()}
    path = tmp_path / "vox.pth.tar"
    torch.save({"generator": wrapped, "epoch": 149, "optimizer_generator": {"state": {}, "param_groups": []}}, path)
    state = load_state_dict(path, "generator")
    assert set(state) == set(net.state_dict())
    fresh = TinyNet()
    assert load_into(fresh, state).ok
    assert torch.equal(fresh.conv.weight, net.conv.weight)


def test_non_tensor_entries_are_dropped(tmp_path):
    # Monodepth2's encoder.pth keeps height/width/use_stereo next to the tensors.
    net = TinyNet()
    path = tmp_path / "encoder.pth"
    torch.save({**net.state_dict(), "height": 256, "width": 256, "use_stereo": False}, path)
    assert set(load_state_dict(path)) == set(net.state_dict())


def test_foreign_classes_load_as_inert_data(tmp_path):
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "hyper_parameters": {"conf": ForeignConfig(lr=3e-4)},
                "args": argparse.Namespace(batch=8)}, path)
    ckpt = load_checkpoint(path)
    assert torch.equal(ckpt["state_dict"]["w"], torch.ones(2))
    conf = ckpt["hyper_parameters"]["conf"]
    assert isinstance(conf, OpaqueObject) and conf.state == {"lr": 3e-4}


def test_numpy_values_load_as_numpy(tmp_path):
    import numpy as np

    path = tmp_path / "vox.pth.tar"
    torch.save({"epoch": np.int64(149), "lr": np.float32(2e-4), "mean": np.arange(3, dtype=np.float64),
                "flag": np.bool_(True), "generator": {"w": torch.ones(1)}}, path)
    ckpt = load_checkpoint(path)
    assert ckpt["epoch"] == 149 and isinstance(ckpt["epoch"], np.int64)
    assert ckpt["lr"] == np.float32(2e-4) and bool(ckpt["flag"])
    assert np.array_equal(ckpt["mean"], [0.0, 1.0, 2.0])


def test_pickled_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    exploit = Exploit()
    exploit.marker = marker
    path = tmp_path / "evil.pth"
    torch.save({"x": exploit}, path)
    with pytest.raises(CheckpointError, match="evil.pth: refused by the weights-only loader"):
        load_checkpoint(path)
    assert not marker.exists()


def test_legacy_pre_1_6_files_load_and_their_pickled_code_is_refused(tmp_path):
    """torchvision's 2017 ImageNet weights and lpips v0.1 use the old non-zip format, whose globals PyTorch
    cannot list in advance: the weights-only unpickler alone must then refuse code."""
    state = TinyNet().state_dict()
    legacy = tmp_path / "legacy.pth"
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    assert all(torch.equal(state[k], v) for k, v in load_checkpoint(legacy).items())
    marker = tmp_path / "pwned"
    exploit = Exploit()
    exploit.marker = marker
    evil = tmp_path / "evil_legacy.pth"
    torch.save({"x": exploit}, evil, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match="evil_legacy.pth"):
        load_checkpoint(evil)
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_files_raise_checkpoint_error(tmp_path, damage):
    path = tmp_path / "model.pth"
    torch.save(TinyNet().state_dict(), path)
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": os.urandom(300), "empty": b""}[damage])
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert "model.pth" in str(info.value) and "\n" not in str(info.value)


def test_bad_safetensors_and_missing_file(tmp_path):
    bad = tmp_path / "w.safetensors"
    bad.write_bytes(b"\xff" * 64)
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "absent.pth")


def test_sha256_is_checked(tmp_path):
    path = tmp_path / "m.pth"
    torch.save(TinyNet().state_dict(), path)
    digest = sha256(path)
    load_checkpoint(path, expected_sha256=digest.upper())
    with pytest.raises(CheckpointError, match="does not match"):
        load_checkpoint(path, expected_sha256="0" * 64)


def test_key_report_names_missing_unexpected_and_shapes(tmp_path):
    state = TinyNet(width=4).state_dict()
    state.pop("norm.running_mean")
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as info:
        load_into(TinyNet(width=5), state, source="ck.pth")
    message = str(info.value)
    assert "1 missing: norm.running_mean" in message and "1 unexpected: extra.weight" in message
    assert "conv.weight: checkpoint (4, 3, 3, 3) vs model (5, 3, 3, 3)" in message
    report = load_into(TinyNet(width=4), state, strict=False)
    assert report.missing == ["norm.running_mean"] and report.unexpected == ["extra.weight"]


def test_pretrained_folder_round_trip(tmp_path):
    net = TinyNet()
    folder = save_pretrained(tmp_path / "converted", {"width": 4}, net.state_dict())
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    config, state = load_pretrained(folder)
    assert config == {"width": 4}
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    assert set(load_state_dict(folder)) == set(net.state_dict())
    (folder / "config.json").write_text("{broken")
    with pytest.raises(CheckpointError, match="config.json: is not valid JSON"):
        load_pretrained(folder)
    assert json.loads("{}") == {}


def test_numpy_1_pickles_load(tmp_path):
    """Checkpoints written under numpy 1 name `numpy.core.multiarray`; numpy 2 moved it to `numpy._core`."""
    import zipfile

    import numpy as np

    modern, legacy = tmp_path / "modern.pth", tmp_path / "legacy.pth"
    torch.save({"epoch": np.int64(7), "arr": np.ones(2, np.float32)}, modern)
    with zipfile.ZipFile(modern) as src, zipfile.ZipFile(legacy, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("data.pkl"):
                data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            dst.writestr(info, data)
    ckpt = load_checkpoint(legacy)
    assert ckpt["epoch"] == 7 and np.array_equal(ckpt["arr"], [1.0, 1.0])
