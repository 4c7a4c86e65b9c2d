"""`faceanim info`: versions, threads, device, registered methods, and which weights were found."""
from __future__ import annotations

import importlib.metadata
import json
import os
import platform
from pathlib import Path

from .. import __version__
from ..registry import list_methods

PACKAGES = ("torch", "numpy", "av", "dlib-bin", "face_recognition_models", "opencv-python-headless", "scipy",
            "safetensors", "soxr", "librosa", "transformers", "accelerate", "pillow")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _device_info() -> dict:
    import torch

    info = {"threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "cuda": torch.cuda.is_available(),
            "device": "cpu"}
    if info["cuda"]:
        info["device"] = "cuda"
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        info["device"] = "mps"
    info["bf16_cpu"] = bool(getattr(torch.backends, "mkldnn", None) and torch.backends.mkldnn.is_available())
    return info


def _weights_found() -> dict:
    from ..face import dlib_model_status

    from ..metrics.base import METRIC_WEIGHTS

    found = {"dlib": dlib_model_status()}
    specs = [(f"{method.name}.{weight.name}", weight) for method in list_methods() for weight in method.weights]
    specs += [(f"metrics.{weight.name}", weight) for weight in METRIC_WEIGHTS.values()]
    for name, weight in specs:
        value = os.environ.get(weight.env)
        state = "not set" if not value else ("found" if Path(value).exists() else f"missing: {value}")
        found[name] = f"{state} (set {weight.env} or pass {weight.flag})"
    return found


def describe_checkpoint(path: str) -> dict:
    from ..checkpoints import load_checkpoint, sha256

    obj = load_checkpoint(path)  # hashes the file; sha256 below reuses that
    digest = sha256(path if Path(path).is_file() else Path(path) / "model.safetensors")
    summary = {"path": str(path), "sha256": digest}
    summary["components"] = {key: _count_tensors(value) for key, value in obj.items()} if isinstance(obj, dict) else {}
    return summary


def _count_tensors(value) -> str:
    import torch

    if isinstance(value, torch.Tensor):
        return f"tensor {tuple(value.shape)} {str(value.dtype).replace('torch.', '')}"
    if isinstance(value, dict):
        tensors = [v for v in value.values() if isinstance(v, torch.Tensor)]
        return f"{len(tensors)} tensors, {sum(t.numel() for t in tensors):,} values"
    return type(value).__name__


def collect_info(checkpoints: list[str] = ()) -> dict:
    return {
        "faceanim": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {p: _version(p) for p in PACKAGES},
        "runtime": _device_info(),
        "methods": {m.name: {"tasks": list(m.tasks), "status": m.status, "paper": m.paper} for m in list_methods()},
        "weights": _weights_found(),
        "checkpoints": [describe_checkpoint(p) for p in checkpoints],
    }


def run_info(checkpoints: list[str] = (), as_json: bool = False) -> int:
    info = collect_info(checkpoints)
    if as_json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"faceanim {info['faceanim']}  (python {info['python']}, {info['platform']})")
    print("packages: " + ", ".join(f"{k} {v or 'missing'}" for k, v in info["packages"].items()))
    rt = info["runtime"]
    print(f"device: {rt['device']}  threads: {rt['threads']} of {rt['cpu_count']} cpus"
          + (f"  gpus: {', '.join(rt['gpus'])}" if rt.get("gpus") else ""))
    print("methods:")
    for name, m in info["methods"].items():
        print(f"  {name:15s} {m['status']:12s} {'/'.join(m['tasks']):14s} {m['paper']}")
    print("weights:")
    for name, state in info["weights"].items():
        entries = state.items() if isinstance(state, dict) else [("", state)]
        for file_name, file_state in entries:
            label = f"{name} {file_name}".strip()
            print(f"  {label:28s} {file_state}")
    for ck in info["checkpoints"]:
        print(f"checkpoint {ck['path']}\n  sha256 {ck['sha256']}")
        for comp, desc in ck["components"].items():
            print(f"  {comp}: {desc}")
    return 0
