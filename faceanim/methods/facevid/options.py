"""face-vid2vid's command-line options (registry hook; imports nothing heavy)."""
from __future__ import annotations


def add_options(add, command: str) -> None:
    if command in ("reenact", "convert"):
        add("--config", help="official YAML (e.g. config/vox-256.yaml; default: the released vox256 model)")
