"""TorchScript archives read as zips: the tensors equal `torch.jit.load(...).state_dict()` (the oracle, used
only here), no code from the file runs, and damaged or malicious archives are refused in one line."""
from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from faceanim.checkpoints import load_checkpoint
from faceanim.errors import CheckpointError
from faceanim.jit_archive import is_torchscript_archive, read_torchscript_tensors
from tests.evidence import missing
from tests.parity import component, fixture, fixture_dir

# Writing archives is the point here: torch.jit's deprecation notices and the tracer's notes are expected.
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.jit"),
              pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")]

SYSTEM, STEM = "diffused_heads", "diffused_heads_small_seed0"


class Net(nn.Module):
    """Every layer kind the Diffused Heads networks use, plus awkward tensors (float16, views, bool, int64)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GroupNorm(2, 8), nn.SiLU())
        self.blocks = nn.ModuleList([nn.Sequential(nn.Conv1d(8, 8, 1), nn.BatchNorm1d(8)), nn.Linear(8, 4)])
        self.gru = nn.GRU(4, 6, num_layers=2, batch_first=True)
        self.fp16 = nn.Parameter(torch.linspace(-1, 1, 5, dtype=torch.float16))
        base = torch.arange(24.0)
        self.register_buffer("window", base[4:16].view(3, 4))        # offset view of a shared storage
        self.register_buffer("transposed", base.view(4, 6).t())      # non-contiguous view of the same storage
        self.register_buffer("mask", torch.tensor([True, False, True]))
        self.plain = torch.ones(2)   # not registered: an attribute of a scripted module, not in state_dict

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x).mean(dim=(2, 3))                              # (B, 8)
        y = self.blocks[0](y.unsqueeze(-1)).squeeze(-1)
        y = self.blocks[1](y)                                          # (B, 4)
        out, _ = self.gru(y.unsqueeze(1))
        extra = self.fp16.float().sum() + self.window.sum() + self.transposed.sum() + self.plain.sum()
        return out.sum() + extra + self.mask.float().sum()


def _archive(tmp_path: Path, kind: str) -> Path:
    torch.manual_seed(0)
    net = Net().eval()
    module = torch.jit.trace(net, torch.randn(2, 3, 8, 8)) if kind == "trace" else torch.jit.script(net)
    path = tmp_path / f"{kind}d.pt"
    torch.jit.save(module, str(path))
    return path


def _rewrite(path: Path, out: Path, replace: dict[str, bytes | None]) -> Path:
    """A copy of the zip at `path` whose records named in `replace` (after the prefix) are swapped or dropped."""
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            name = info.filename.split("/", 1)[1]
            if name not in replace:
                dst.writestr(info.filename, src.read(info))
            elif replace[name] is not None:
                dst.writestr(info.filename, replace[name])
    return out


def _data_pkl(path: Path) -> bytes:
    with zipfile.ZipFile(path) as zf:
        return zf.read(next(n for n in zf.namelist() if n.endswith("/data.pkl")))


def _refusal(path: Path) -> str:
    with pytest.raises(CheckpointError) as info:
        read_torchscript_tensors(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


@pytest.mark.parametrize("kind", ["trace", "script"])
def test_tensors_equal_the_loaded_state_dict(tmp_path, kind):
    path = _archive(tmp_path, kind)
    assert is_torchscript_archive(path)
    ours = read_torchscript_tensors(path)
    expected = torch.jit.load(str(path)).state_dict()
    assert list(ours) == list(expected)   # same names, same order; `plain` is not among them
    for key, value in expected.items():
        assert ours[key].dtype == value.dtype, key
        assert ours[key].shape == value.shape and ours[key].stride() == value.stride(), key
        assert torch.equal(ours[key], value), key
    assert ours["fp16"].dtype == torch.float16 and not ours["transposed"].is_contiguous()
    assert ours["window"].untyped_storage().data_ptr() == ours["transposed"].untyped_storage().data_ptr()
    assert {"gru.weight_hh_l1", "blocks.0.1.num_batches_tracked", "stem.1.weight"} <= set(ours)


@pytest.mark.parametrize("kind", ["trace", "script"])
def test_load_checkpoint_reads_archives_as_tensors(tmp_path, kind):
    path = _archive(tmp_path, kind)
    loaded = load_checkpoint(path)
    direct = read_torchscript_tensors(path)
    assert list(loaded) == list(direct) and all(torch.equal(loaded[k], direct[k]) for k in direct)


def test_other_files_are_not_torchscript_archives(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "plain.pt")   # a torch.save zip: no code/, no constants.pkl
    (tmp_path / "text.pt").write_text("hello")
    for name in ("plain.pt", "text.pt", "absent.pt"):
        assert not is_torchscript_archive(tmp_path / name)


def test_missing_and_non_zip_files_are_refused(tmp_path):
    assert "not found" in _refusal(tmp_path / "absent.pt")
    (tmp_path / "text.pt").write_bytes(b"definitely not a zip archive\n" * 10)
    assert "zip" in _refusal(tmp_path / "text.pt")


def test_truncated_archive_is_refused(tmp_path):
    path = _archive(tmp_path, "trace")
    raw = path.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(raw[: len(raw) // 2])
    assert "truncated" in _refusal(cut)


def test_archive_without_data_pkl_or_a_storage_is_refused(tmp_path):
    path = _archive(tmp_path, "trace")
    assert "data.pkl" in _refusal(_rewrite(path, tmp_path / "nopkl.pt", {"data.pkl": None}))
    assert "data/0" in _refusal(_rewrite(path, tmp_path / "nodata.pt", {"data/0": None}))


def test_archive_without_tensors_is_refused(tmp_path):
    torch.jit.save(torch.jit.script(nn.Identity()), str(tmp_path / "empty.pt"))
    assert "no tensors" in _refusal(tmp_path / "empty.pt")


@pytest.mark.parametrize("module, name", [("os", "system"), ("posix", "system"), ("builtins", "eval")])
def test_forbidden_global_is_refused_and_never_called(tmp_path, monkeypatch, module, name):
    marker = tmp_path / "pwned"
    argument = f"touch {marker}" if name == "system" else f"__import__('pathlib').Path({str(marker)!r}).touch()"
    calls: list = []
    monkeypatch.setattr(os, "system", lambda *args: calls.append(args))
    path = _archive(tmp_path, "trace")
    # GLOBAL module name, the argument, TUPLE1, REDUCE, POP, then the genuine pickle without its PROTO header.
    call = f"c{module}\n{name}\n".encode() + pickle.dumps(argument, protocol=2)[2:-1] + b"\x85R0"
    tampered = _rewrite(path, tmp_path / "tampered.pt", {"data.pkl": b"\x80\x02" + call + _data_pkl(path)[2:]})
    assert is_torchscript_archive(tampered)
    assert f"{module}.{name}" in _refusal(tampered)
    with pytest.raises(CheckpointError, match=f"{module}.{name}"):
        load_checkpoint(tampered)
    assert calls == [] and not marker.exists()


def test_shared_fixture_archive_holds_the_fixture_weights():
    archive = fixture_dir(SYSTEM) / f"{STEM}_traced.pt"
    if not archive.is_file():
        missing(f"{archive} not found")
    _, weights, _ = fixture(SYSTEM, STEM)
    expected = {key: value for key, value in component(weights, "unet.").items() if value.is_floating_point()}
    ours = read_torchscript_tensors(archive)
    assert set(ours) == set(expected)
    for key, value in expected.items():
        assert ours[key].dtype == torch.float32 and ours[key].shape == value.shape, key
        assert torch.equal(ours[key], value), f"{key}: max |diff| {(ours[key] - value).abs().max().item()}"
