"""FOMM's command-line options (registry hook; imports nothing heavy)."""
from __future__ import annotations


def add_options(add, command: str) -> None:
    if command == "reenact":
        add("--config", help="official YAML (e.g. config/vox-256.yaml; default: the released vox256 model)")
