"""Where the dlib model files live, and loading each of them once per process.

The files ship in the `face_recognition_models` package. We only locate its folder (importing it needs
pkg_resources); `FACEANIM_DLIB_MODELS` (a folder) or an explicit file path overrides that location.
"""
from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, MissingDependencyError, MissingWeightsError

LANDMARKS_68 = "shape_predictor_68_face_landmarks.dat"
FACE_RECOGNITION = "dlib_face_recognition_resnet_model_v1.dat"
MMOD_DETECTOR = "mmod_human_face_detector.dat"
ENV_MODELS_DIR = "FACEANIM_DLIB_MODELS"


def models_dir() -> Path | None:
    """The folder holding the dlib model files: `$FACEANIM_DLIB_MODELS`, else the installed package's."""
    if os.environ.get(ENV_MODELS_DIR):
        return Path(os.environ[ENV_MODELS_DIR])
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def model_path(filename: str, override: str | os.PathLike | None = None) -> Path:
    """The path of one dlib model file; `MissingWeightsError` naming the file when it is absent."""
    if override is not None:
        path = Path(override)
    else:
        folder = models_dir()
        if folder is None:
            raise MissingWeightsError(
                f"dlib model {filename} not found: install face_recognition_models or set {ENV_MODELS_DIR}")
        path = folder / filename
    if not path.is_file():
        raise MissingWeightsError(
            f"dlib model file not found: {path} (install face_recognition_models or set {ENV_MODELS_DIR} "
            f"to a folder holding {filename})")
    return path


def import_dlib() -> Any:
    try:
        import dlib
    except ImportError as exc:  # pragma: no cover - dlib is a hard dependency
        raise MissingDependencyError("dlib is needed for face detection: pip install dlib-bin") from exc
    return dlib


@functools.lru_cache(maxsize=None)
def _load(kind: str, path: Path) -> Any:
    dlib = import_dlib()
    constructors = {"shape": dlib.shape_predictor, "recognition": dlib.face_recognition_model_v1,
                    "mmod": dlib.cnn_face_detection_model_v1}
    try:
        return constructors[kind](str(path))
    except RuntimeError as exc:  # dlib says "Unexpected version found while deserializing ..." etc.
        raise CheckpointError(path, f"not a valid dlib model file ({exc})") from exc


def load_model(kind: str, filename: str, override: str | os.PathLike | None = None) -> Any:
    """The loaded model of `kind` ("shape", "recognition" or "mmod"), cached per resolved path."""
    return _load(kind, model_path(filename, override).resolve())


@functools.lru_cache(maxsize=None)
def hog_detector() -> Any:
    """dlib's frontal HOG face detector (built into dlib, no file needed)."""
    return import_dlib().get_frontal_face_detector()


def dlib_model_status() -> dict[str, str]:
    """Each dlib model file the face package uses -> "found: PATH" or why it is not usable."""
    status = {}
    for filename in (LANDMARKS_68, FACE_RECOGNITION, MMOD_DETECTOR):
        try:
            status[filename] = f"found: {model_path(filename)}"
        except MissingWeightsError as err:
            status[filename] = f"missing ({err})"
    return status
