"""Lazy package exports: a package names what it offers without importing it until first use, so that
reading a method's command-line options or `faceanim --help` never loads torch."""
from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`, whose name N is taken from its submodule `exports[N]`
    (relative, e.g. ".pipeline") when first asked for."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(exports[name], package), name)

    def __dir__() -> list[str]:
        return sorted(exports)
    return __getattr__, __dir__
