"""The error types faceanim raises for problems a user can fix.

Every `FaceanimError` carries a one-line message and an exit code; the CLI prints the message alone
(no traceback) and exits with that code. Anything else escaping to the CLI is a bug in faceanim.
"""
from __future__ import annotations

import os


class FaceanimError(Exception):
    """Base class: a problem the user can fix, reported in one line."""

    exit_code = 2

    def __str__(self) -> str:  # keep the message on one line, whatever was passed in
        return " ".join(super().__str__().split())


class InputError(FaceanimError):
    """A bad input file or argument. The message names the file and the problem."""

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)


class NoFaceError(InputError):
    """No usable face where one is required."""


class CheckpointError(InputError):
    """A checkpoint that cannot be loaded safely or does not fit the model."""


class MissingWeightsError(FaceanimError):
    """A pretrained network was asked for but its local file was not given or not found."""


class MissingDependencyError(FaceanimError):
    """An optional package is needed for this feature; the message says what to install."""


class NotImplementedMethodError(FaceanimError):
    """A method or feature that faceanim does not implement yet (we say so rather than pretend)."""
