"""The one checkpoint loader: safetensors, or `torch.load(weights_only=True)`; never arbitrary unpickling.

Official checkpoints come as `.pth/.pth.tar/.pt/.tar/.ckpt` pickles. They are read with PyTorch's
weights-only unpickler. Foreign classes inside them (a Lightning `hyper_parameters` config object, an
`argparse.Namespace`) are rebuilt as inert `OpaqueObject`s that only hold their data: no code from the
file ever runs, and modules such as `os`/`subprocess` stay blocked by PyTorch.

TorchScript archives (`torch.jit.save`, e.g. Diffused Heads' networks) are never loaded as TorchScript:
`jit_archive` reads their parameters and buffers as a flat state dict without running their code.

A converted model is a folder with `config.json` + `model.safetensors` (`save_pretrained` /
`load_pretrained`).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from .errors import CheckpointError, InputError
from .fileio import atomic_path
from .jit_archive import is_torchscript_archive, read_torchscript_tensors

log = logging.getLogger(__name__)

PICKLE_SUFFIXES = (".pth", ".pt", ".tar", ".ckpt", ".bin")
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class OpaqueObject:
    """Stand-in for a class a checkpoint names but we will not import: keeps its data, runs nothing."""

    def __init__(self, *args: Any, **kwargs: Any):
        self.args, self.kwargs, self.state = args, kwargs, None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"OpaqueObject(args={self.args!r}, state={self.state!r})"


def _numpy_safe_globals() -> list:
    """Numpy scalars, dtypes and arrays, as official checkpoints pickle them (an epoch as np.int64, ...).

    Rebuilding them runs no foreign code: `_reconstruct` makes an empty array whose contents come from the
    same restricted unpickler. Listed under numpy 2's module names and numpy 1's (`numpy.core`), which
    checkpoints written before 2024 use."""
    import numpy as np
    from numpy._core.multiarray import _reconstruct, scalar

    dtype_classes = [type(np.dtype(name)) for name in ("bool", "int8", "int16", "int32", "int64", "uint8",
                                                         "uint16", "uint32", "uint64", "float16", "float32",
                                                         "float64", "complex64", "complex128")]
    entries: list = [_reconstruct, scalar, np.dtype, np.ndarray, *dtype_classes]
    entries += [(_reconstruct, "numpy.core.multiarray._reconstruct"), (scalar, "numpy.core.multiarray.scalar")]
    return entries


def sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file, computed once per file version (path, size, modification time)."""
    stat = os.stat(path)
    return _sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def load_checkpoint(path: str | os.PathLike, *, expected_sha256: str | None = None) -> Any:
    """Read a checkpoint file safely and return what it holds (dicts of tensors, numbers, strings).

    Raises CheckpointError (exit 2) naming the file when it is missing, corrupt, truncated, tampered
    (hash mismatch) or holds code that the weights-only unpickler refuses."""
    path = Path(path)
    if path.is_dir():
        return load_pretrained(path)[1]
    if not path.is_file():
        raise CheckpointError(path, "checkpoint file not found")
    digest = sha256(path)
    log.info("loading %s (sha256 %s)", path, digest)
    if expected_sha256 is not None and digest != expected_sha256.lower():
        raise CheckpointError(path, f"sha256 {digest} does not match the expected {expected_sha256}")
    if path.suffix == ".safetensors":
        return _load_safetensors(path)
    if is_torchscript_archive(path):
        return read_torchscript_tensors(path)
    return _load_pickle(path)


def _load_safetensors(path: Path) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(path, f"not a valid safetensors file ({_first_line(err)})") from None


def _load_pickle(path: Path) -> Any:
    import pickle

    import torch

    allowed = _numpy_safe_globals()
    allowed_names = {name if isinstance(name, str) else f"{name.__module__}.{name.__qualname__}"
                     for name in (e[1] if isinstance(e, tuple) else e for e in allowed)}
    try:
        foreign = [name for name in torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
                   if name not in allowed_names]
    except Exception as err:  # not a zip/pickle archive, truncated, ...
        if not _is_legacy_torch_file(path):
            raise CheckpointError(path, f"not a readable PyTorch checkpoint ({_first_line(err)})") from None
        # Pre-1.6 (non-zip) files, e.g. torchvision's 2017 ImageNet weights and lpips v0.1: PyTorch cannot
        # list their globals, but its weights-only unpickler below still refuses anything not allowed.
        foreign = []
    if foreign:
        log.info("%s: reading foreign classes as inert data: %s", path, ", ".join(foreign))
    try:
        with torch.serialization.safe_globals(allowed + [(OpaqueObject, name) for name in foreign]):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(path, f"refused by the weights-only loader ({_unpickling_reason(err)})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(path, f"corrupt or truncated checkpoint ({_first_line(err)})") from None


def _is_legacy_torch_file(path: Path) -> bool:
    """A file of PyTorch's pre-1.6 serialisation: a bare pickle stream (protocol 2+), not a zip archive."""
    import zipfile

    with open(path, "rb") as f:
        return f.read(1) == b"\x80" and not zipfile.is_zipfile(path)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


def _unpickling_reason(err: BaseException) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if "GLOBAL" in ln or "blocked" in ln]
    return lines[0][:200] if lines else _first_line(err)


def state_dict_from(obj: Any, key: str | None = None, *, path: str | os.PathLike = "checkpoint",
                    strip_prefixes: Iterable[str] = ("module.",)) -> dict:
    """Pick the tensors of one component (`key`, e.g. "generator") and strip DataParallel prefixes."""
    import torch

    if key is not None:
        if not isinstance(obj, Mapping) or key not in obj:
            keys = ", ".join(list(obj)[:12]) if isinstance(obj, Mapping) else type(obj).__name__
            raise CheckpointError(path, f"has no entry '{key}' (it has: {keys})")
        obj = obj[key]
    if not isinstance(obj, Mapping):
        raise CheckpointError(path, f"holds {type(obj).__name__}, not a state dict")
    out = {}
    for name, value in obj.items():
        if not isinstance(value, torch.Tensor):
            continue  # e.g. Monodepth2's encoder.pth stores height/width/use_stereo beside the weights
        for prefix in strip_prefixes:
            if name.startswith(prefix):
                name = name[len(prefix):]
        out[name] = value
    return out


def load_state_dict(path: str | os.PathLike, key: str | None = None, *,
                    expected_sha256: str | None = None, strip_prefixes: Iterable[str] = ("module.",)) -> dict:
    """Load one component's state dict from a file or converted folder (see `load_checkpoint`)."""
    return state_dict_from(load_checkpoint(path, expected_sha256=expected_sha256), key, path=path,
                           strip_prefixes=strip_prefixes)


@dataclass
class LoadReport:
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)   # "key: checkpoint (a, b) vs model (c, d)"

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self, limit: int = 5) -> str:
        parts = []
        for label, keys in (("missing", self.missing), ("unexpected", self.unexpected),
                            ("shape mismatch", self.mismatched)):
            if keys:
                more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
                parts.append(f"{len(keys)} {label}: {', '.join(keys[:limit])}{more}")
        return "; ".join(parts) or "all keys match"


def load_into(module, state_dict: Mapping, *, strict: bool = True,
              source: str | os.PathLike = "checkpoint") -> LoadReport:
    """Load `state_dict` into `module`, reporting missing, unexpected and wrongly shaped keys.

    strict=True raises CheckpointError naming the file and the first offending keys."""
    own = module.state_dict()
    report = LoadReport(
        missing=sorted(set(own) - set(state_dict)),
        unexpected=sorted(set(state_dict) - set(own)),
        mismatched=[f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
                    for k in sorted(set(own) & set(state_dict)) if own[k].shape != state_dict[k].shape])
    if strict and not report.ok:
        raise CheckpointError(source, f"does not fit {type(module).__name__}: {report.summary()}")
    usable = {k: v for k, v in state_dict.items() if k in own and own[k].shape == v.shape}
    module.load_state_dict(usable, strict=False)
    if not report.ok:
        log.warning("%s: %s", source, report.summary())
    return report


def _config_dict(config: Any) -> dict:
    if dataclasses.is_dataclass(config):
        return dataclasses.asdict(config)
    return dict(config)


def save_pretrained(folder: str | os.PathLike, config: Any, state_dict: Mapping, *,
                    metadata: Mapping[str, str] | None = None) -> Path:
    """Write a converted model folder (`config.json` + `model.safetensors`) atomically."""
    from safetensors.torch import save_file

    folder = Path(folder)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    with atomic_path(folder, is_dir=True) as tmp:
        (tmp / CONFIG_NAME).write_text(json.dumps(_config_dict(config), indent=2, sort_keys=True) + "\n")
        save_file(tensors, str(tmp / WEIGHTS_NAME), metadata=dict(metadata or {}))
    return folder


def load_pretrained(folder: str | os.PathLike) -> tuple[dict, dict]:
    """Read a converted model folder: (config dict, state dict)."""
    folder = Path(folder)
    config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    for required in (config_path, weights_path):
        if not required.is_file():
            raise CheckpointError(folder, f"is not a converted model folder (no {required.name})")
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(config_path, f"is not valid JSON ({_first_line(err)})") from None
    log.info("loading %s (sha256 %s)", weights_path, sha256(weights_path))
    return config, _load_safetensors(weights_path)


@dataclasses.dataclass
class Conversion:
    """What a `faceanim convert` read (name -> (path, sha256)) and wrote (a folder with these components)."""

    output: Path
    inputs: dict[str, tuple[Path, str]] = dataclasses.field(default_factory=dict)
    components: tuple[str, ...] = ()

    @classmethod
    def of(cls, output: str | os.PathLike, inputs: Mapping[str, str | os.PathLike],
           components: tuple[str, ...]) -> "Conversion":
        return cls(Path(output), {name: (Path(path), sha256(path)) for name, path in inputs.items()}, components)

    def metadata(self) -> dict[str, str]:
        """The inputs' names and hashes, for the converted file's safetensors metadata."""
        out = {f"{name}_sha256": digest for name, (_, digest) in self.inputs.items()}
        out.update({f"{name}_file": path.name for name, (path, _) in self.inputs.items()})
        return out


def check_conversion_paths(inputs: Mapping[str, str | os.PathLike], output: str | os.PathLike) -> None:
    """Official files in, a folder out: an input that is a folder (converted already?) is refused, and
    only a new path or an earlier converted folder may be (re)written, never someone's other folder."""
    for path in inputs.values():
        if Path(path).is_dir():
            raise InputError(path, "is a folder (converted already?); convert takes the official file")
    output = Path(output)
    if output.is_file():
        raise InputError(output, "exists and is a file; the output is a folder")
    if output.is_dir() and any(output.iterdir()) and not (output / CONFIG_NAME).is_file():
        raise InputError(output, "exists and is not a converted model folder; choose a new path")


def save_model_folder(folder: str | os.PathLike, method: str, model_config: Mapping[str, Any], state_dict: Mapping,
                      *, metadata: Mapping[str, str] | None = None, **extra: Any) -> Path:
    """A converted folder of `method`: config.json {"method", "model": model_config, **extra} and the
    state dict in model.safetensors (its metadata names the method)."""
    config = {"method": method, "model": dict(model_config), **extra}
    return save_pretrained(folder, config, state_dict, metadata={"method": method, **(metadata or {})})


def load_model_folder(folder: str | os.PathLike, method: str, label: str,
                      parse_config: Callable[[Mapping[str, Any]], Any]) -> tuple[Any, dict]:
    """(parse_config(the folder's "model" settings), state dict) of a converted folder of `method`;
    CheckpointError naming its config.json when it holds another method or settings that do not parse."""
    config, state = load_pretrained(folder)
    if not isinstance(config, dict) or config.get("method") != method or not isinstance(config.get("model"), dict):
        found = config.get("method") if isinstance(config, dict) else None
        raise CheckpointError(Path(folder) / CONFIG_NAME, f"is not a converted {label} model (method: {found})")
    try:
        return parse_config(config["model"]), state
    except (InputError, TypeError) as err:
        raise CheckpointError(Path(folder) / CONFIG_NAME, getattr(err, "problem", str(err))) from None
