"""Atomic outputs: write to a temporary path beside the target, rename only on success; and config
files found by path or by the name of one a package ships.

A crash, a kill or an exception never leaves a partial file at the final path (and the temporary is
removed on an exception)."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from .errors import InputError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

PACKAGED_CONFIG_FOLDER = "configs"


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success `os.replace` it onto `final`.

    The temporary name keeps the target's suffix (encoders pick the container from it)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".tmp{final.suffix}", dir=final.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        _give_default_permissions(tmp, is_dir)
        if is_dir:
            replace_folder(tmp, final)
        else:
            os.replace(tmp, final)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        raise


def _give_default_permissions(path: Path, is_dir: bool) -> None:
    """mkstemp/mkdtemp create private (0600/0700) paths; give the result the usual umask-based mode."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if is_dir else 0o666) & ~umask)


def replace_folder(new: Path, final: Path) -> None:
    """os.replace for folders: a previous `final` is moved aside first and removed only once `new` is in
    place, so at every moment one complete folder exists at or beside `final`."""
    if not final.exists():
        os.replace(new, final)
        return
    old = final.with_name(f".{final.name}.old")
    if old.exists():
        shutil.rmtree(old)
    os.replace(final, old)
    os.replace(new, final)
    shutil.rmtree(old, ignore_errors=True)


def packaged_configs(package: str) -> list[str]:
    """Names of the YAML configs `package` ships (its `configs/*.yaml`)."""
    from importlib.resources import files

    folder = files(package) / PACKAGED_CONFIG_FOLDER
    return sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def config_file(source: str | os.PathLike, package: str) -> Path | Traversable:
    """`source` as a path if it exists or names a folder, else the config of that name that `package`
    ships (".yaml" optional); InputError when it is neither."""
    from importlib.resources import files

    path = Path(source)
    if path.exists() or path.parent != Path("."):
        return path
    name = path.name if path.suffix in (".yaml", ".yml") else f"{path.name}.yaml"
    shipped = packaged_configs(package)
    if name not in shipped:
        raise InputError(source, f"config not found (neither a file nor one of {', '.join(shipped)})")
    return files(package) / PACKAGED_CONFIG_FOLDER / name


def load_config(source: str | os.PathLike, package: str, parse: Callable[[dict], Any]) -> Any:
    """`parse` of the YAML mapping of `source` (a file, or a config `package` ships); its errors become an
    InputError naming `source`, unless they name a file of their own (one the config points to)."""
    data = read_yaml_mapping(config_file(source, package))
    try:
        return parse(data)
    except InputError as err:
        if err.path is not None:
            raise
        raise InputError(source, err.problem) from None
    except (TypeError, ValueError) as err:
        raise InputError(source, f"invalid setting ({err})") from None


def read_yaml(path, *, name: str | os.PathLike | None = None) -> Any:
    """The YAML document of `path` (a file or a packaged resource: anything with `read_text`); InputError
    naming `name` (default `path`) when it cannot be read or is not YAML."""
    import yaml

    name = path if name is None else name
    try:
        return yaml.safe_load(path.read_text() if hasattr(path, "read_text") else Path(path).read_text())
    except OSError as err:
        raise InputError(name, f"cannot read the config ({err.strerror or err})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise InputError(name, f"is not valid YAML ({str(err).splitlines()[0]})") from None


def read_yaml_mapping(path, *, name: str | os.PathLike | None = None, what: str = "training config") -> dict:
    """`read_yaml`, which must give a mapping (else InputError: "is not a `what` (expected a mapping)")."""
    data = read_yaml(path, name=name)
    if not isinstance(data, dict):
        raise InputError(path if name is None else name, f"is not a {what} (expected a mapping)")
    return data


def read_official_model_params(path: str | os.PathLike, what: str) -> tuple[dict, int]:
    """(`model_params`, frame size) of an official FOMM-family YAML (DaGAN, FOMM, face-vid2vid); a file that
    cannot be read, is not YAML or has no `model_params` raises InputError naming it as not a `what` config."""
    data = read_yaml(path)
    if not isinstance(data, dict) or not isinstance(data.get("model_params"), dict):
        raise InputError(path, f"is not a {what} config (no model_params section)")
    frame_shape = (data.get("dataset_params") or {}).get("frame_shape") or [256]
    return data["model_params"], int(frame_shape[0])
