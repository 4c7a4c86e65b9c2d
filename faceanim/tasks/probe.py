"""`faceanim probe`: validate media files and print what they contain, one JSON object per line."""
from __future__ import annotations

import json
import sys

from ..errors import InputError
from ..media import probe


def probe_files(paths: list[str], expect: str | None = None) -> int:
    """Print each file's MediaInfo as JSON; report broken files in one line each. Exit 2 if any is broken."""
    broken = 0
    for path in paths:
        try:
            info = probe(path, expect=expect)
        except InputError as err:
            print(f"faceanim: error: {err}", file=sys.stderr)
            broken += 1
            continue
        print(json.dumps({"path": path, **info.as_dict()}))
    return 2 if broken else 0
