"""`faceanim` command line: parse arguments, call one function in `tasks/`, map errors to exit codes.

User-fixable problems (`FaceanimError`) print one line and exit 2; anything else is a bug in faceanim
and keeps its traceback.
"""
from __future__ import annotations

import argparse
import logging
import sys

from .. import __version__
from ..errors import FaceanimError
from . import commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="faceanim", description="Face reenactment, talking heads and "
                                     "face-video editing.")
    parser.add_argument("--version", action="version", version=f"faceanim {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log progress details (checkpoint hashes, timings)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in (commands.add_reenact, commands.add_talk, commands.add_edit, commands.add_train,
                     commands.add_preprocess, commands.add_evaluate, commands.add_convert, commands.add_info,
                     commands.add_track, commands.add_probe):
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="faceanim: %(message)s", stream=sys.stderr)
    try:
        return int(args.run(args) or 0)
    except FaceanimError as err:
        print(f"faceanim: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("faceanim: interrupted", file=sys.stderr)
        return 130

