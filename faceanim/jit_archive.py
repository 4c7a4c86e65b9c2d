"""Read the tensors of a TorchScript archive (`torch.jit.save`) without running any of it.

A TorchScript file is a zip: `<prefix>/data.pkl` pickles the module objects (classes named `__torch__.…`),
`<prefix>/data/<key>` holds the raw bytes of each tensor storage and `<prefix>/code/` the TorchScript source.
We never load that code and never unpickle arbitrary objects: `data.pkl` is read by a restricted unpickler
whose module classes are inert stand-ins that only record their attributes, and which allows only the few
globals needed to rebuild tensors. The tensors of every module object, named by attribute path and kept
to the `__parameters__`/`__buffers__` its class declares in code/ (read as text), are what
`torch.jit.load(path).state_dict()` returns.
"""
from __future__ import annotations

import ast
import io
import os
import pickle
import re
import zipfile
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, NamedTuple

from .errors import CheckpointError

# The storage classes TorchScript names in persistent ids ("torch FloatStorage"): only a dtype tag to us.
_STORAGE_DTYPES = {
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16",
    "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool",
    "ComplexFloatStorage": "complex64", "ComplexDoubleStorage": "complex128",
}


class _Refused(Exception):
    """A reason to refuse the archive; becomes CheckpointError(path, reason)."""


class _StorageTag(NamedTuple):
    dtype_name: str


class _Storage(NamedTuple):
    data: Any    # torch.UntypedStorage
    dtype: Any   # torch.dtype


class _ScriptObject:
    """Stand-in for a `__torch__.*` class: keeps the attributes BUILD hands it, runs nothing."""

    qualname = "__torch__"

    def __new__(cls, *args: Any, **kwargs: Any) -> "_ScriptObject":
        obj = object.__new__(cls)
        obj.state = None
        return obj

    def __init__(self, *args: Any, **kwargs: Any):
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _rebuild_tensor(storage: Any, offset: int, size: tuple, stride: tuple, *_hooks_and_metadata: Any):
    import torch

    if not isinstance(storage, _Storage):
        raise _Refused(f"a tensor whose storage is {type(storage).__name__}, not an archive record")
    try:
        return torch.empty(0, dtype=storage.dtype).set_(storage.data, int(offset), tuple(size), tuple(stride))
    except (RuntimeError, TypeError, ValueError) as err:
        raise _Refused(f"a tensor that does not fit its storage ({_first_line(err)})") from None


def _rebuild_parameter(data: Any, *_requires_grad_and_hooks: Any) -> Any:
    return data  # state_dict() holds the detached data, so the Parameter wrapper is dropped


def _identity(value: Any, *_type_tag: Any) -> Any:
    return value


# The only globals data.pkl may name besides `__torch__.*` classes and storage tags.
_ALLOWED: dict[tuple[str, str], Callable] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): OrderedDict,
    # Scripted modules' typed list attributes (`_flat_weights` of an RNN, ...): plain values to us.
    ("torch.jit._pickle", "build_intlist"): _identity,
    ("torch.jit._pickle", "build_tensorlist"): _identity,
    ("torch.jit._pickle", "build_doublelist"): _identity,
    ("torch.jit._pickle", "build_boollist"): _identity,
    ("torch.jit._pickle", "restore_type_tag"): _identity,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, read_record: Callable[[str], bytes]):
        super().__init__(io.BytesIO(data))
        self._read_record = read_record
        self._storages: dict[str, _Storage] = {}
        self._stand_ins: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "__torch__" or module.startswith("__torch__."):
            qualname = f"{module}.{name}"
            if qualname not in self._stand_ins:
                self._stand_ins[qualname] = type(name, (_ScriptObject,), {"qualname": qualname})
            return self._stand_ins[qualname]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageTag(_STORAGE_DTYPES[name])
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        raise _Refused(f"data.pkl names the forbidden global {module}.{name}")

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageTag) and isinstance(pid[2], str) and isinstance(pid[4], int)):
            raise _Refused(f"unexpected persistent id {str(pid)[:80]}")
        key = pid[2]
        if key not in self._storages:
            self._storages[key] = _read_storage(self._read_record(f"data/{key}"), pid[1].dtype_name, pid[4], key)
        return self._storages[key]


def _read_storage(raw: bytes, dtype_name: str, numel: int, key: str) -> _Storage:
    import torch

    dtype = getattr(torch, dtype_name)
    expected = numel * dtype.itemsize
    if len(raw) != expected:
        raise _Refused(f"record data/{key} holds {len(raw)} bytes, expected {expected}")
    data = torch.frombuffer(bytearray(raw), dtype=torch.uint8).untyped_storage() if raw else torch.UntypedStorage(0)
    return _Storage(data, dtype)


def _archive_prefix(names: list[str]) -> str | None:
    """The top folder of `<prefix>/data.pkl`, when the zip's records include it."""
    prefixes = [n[: -len("/data.pkl")] for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    return prefixes[0] if len(prefixes) == 1 else None


def is_torchscript_archive(path: str | os.PathLike) -> bool:
    """A zip holding `<prefix>/data.pkl` and `<prefix>/code/…` or `<prefix>/constants.pkl`, as
    `torch.jit.save` writes (a `torch.save` zip has neither code/ nor constants.pkl)."""
    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (OSError, zipfile.BadZipFile):
        return False
    prefix = _archive_prefix(names)
    return prefix is not None and any(n.startswith(f"{prefix}/code/") or n == f"{prefix}/constants.pkl"
                                      for n in names)


def read_torchscript_tensors(path: str | os.PathLike) -> dict:
    """The parameters and buffers of a TorchScript archive under their state_dict names, read without
    running its code. Raises CheckpointError(path, reason) when the file cannot be read safely."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "TorchScript archive not found")
    try:
        with zipfile.ZipFile(path) as zf:
            archive = _Archive(zf)
            tensors = _module_tensors(archive.unpickle_root(), archive)
    except _Refused as err:
        raise CheckpointError(path, str(err)) from None
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise CheckpointError(path, f"not a readable zip archive, corrupt or truncated ({_first_line(err)})") from None
    if not tensors:
        raise CheckpointError(path, "the TorchScript archive holds no tensors")
    return tensors


class _Archive:
    """The records of one TorchScript zip, read on demand."""

    def __init__(self, zf: zipfile.ZipFile):
        self.zf, self.names = zf, set(zf.namelist())
        prefix = _archive_prefix(zf.namelist())
        if prefix is None:
            raise _Refused("not a TorchScript archive (no <prefix>/data.pkl record)")
        self.prefix = prefix
        self._declared: dict[str, list[str] | None] = {}

    def read(self, name: str) -> bytes:
        try:
            return self.zf.read(f"{self.prefix}/{name}")
        except KeyError:
            raise _Refused(f"the archive lacks the record {self.prefix}/{name}") from None
        except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as err:
            raise _Refused(f"record {self.prefix}/{name} is corrupt or truncated ({_first_line(err)})") from None

    def unpickle_root(self) -> Any:
        if f"{self.prefix}/byteorder" in self.names and self.read("byteorder").strip() != b"little":
            raise _Refused("a big-endian archive, which is not supported")
        try:
            return _RestrictedUnpickler(self.read("data.pkl"), self.read).load()
        except _Refused:
            raise
        except Exception as err:  # malformed pickle bytes fail in many ways; all mean "unreadable"
            raise _Refused(f"data.pkl is not a readable pickle ({type(err).__name__}: {_first_line(err)})") from None

    def declared_tensors(self, qualname: str) -> list[str] | None:
        """The `__parameters__` + `__buffers__` that the class's code record declares (read as text, never
        run), or None when it cannot be found: tensor attributes outside them are not in state_dict()."""
        if qualname not in self._declared:
            module, _, name = qualname.rpartition(".")
            record = f"{self.prefix}/code/{module.replace('.', '/')}.py"
            source = self.zf.read(record).decode("utf-8", "replace") if record in self.names else ""
            found = re.search(rf"^class {re.escape(name)}\(Module\):\n  __parameters__ = (\[[^\]\n]*\])\n"
                              rf"  __buffers__ = (\[[^\]\n]*\])$", source, re.MULTILINE)
            self._declared[qualname] = _literal_names(found.group(1), found.group(2)) if found else None
        return self._declared[qualname]


def _literal_names(*lists: str) -> list[str] | None:
    try:
        names = [name for text in lists for name in ast.literal_eval(text)]
    except (ValueError, SyntaxError):
        return None
    return names if all(isinstance(n, str) for n in names) else None


def _is_module(obj: Any) -> bool:
    # Every TorchScript module carries a `training` flag; other scripted objects hold no state_dict entries.
    return isinstance(obj, _ScriptObject) and isinstance(obj.state, dict) and "training" in obj.state


def _module_tensors(root: Any, archive: _Archive) -> dict:
    if not _is_module(root):
        raise _Refused(f"data.pkl holds {type(root).__name__}, not a TorchScript module")
    out: dict = {}
    _collect(root, "", out, archive, set())
    return out


def _collect(module: _ScriptObject, prefix: str, out: dict, archive: _Archive, on_path: set[int]) -> None:
    import torch

    if id(module) in on_path:
        raise _Refused(f"module {prefix.rstrip('.')} contains itself")
    on_path.add(id(module))
    state = {name: value for name, value in module.state.items() if isinstance(name, str)}
    declared = archive.declared_tensors(module.qualname)
    names = declared if declared is not None else list(state)  # declared order = state_dict order
    out.update((prefix + name, state[name]) for name in names if isinstance(state.get(name), torch.Tensor))
    for name, value in state.items():
        if _is_module(value):
            _collect(value, f"{prefix}{name}.", out, archive, on_path)
    on_path.discard(id(module))


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__
