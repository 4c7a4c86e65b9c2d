"""Method options on the command line, gathered from the registry.

Each command that takes `--method` (reenact, talk, edit) or a method name (convert, train) gets the
standard option groups its methods ask for (`MethodSpec.option_groups`) and every method's own options
(`MethodSpec.options`, a hook `add_options(add, command)` in the method's folder). A flag that several
methods declare is added once and applies to all of them; the options of a method that can be a coarse
animator also apply, on `reenact`, to the refiners (they configure their coarse animator). Which methods
a flag applies to is recorded, so that a flag given to another method is refused in one line.
"""
from __future__ import annotations

import argparse
from typing import Callable

from ..errors import InputError
from ..registry import OPTION_GROUPS, MethodSpec, list_methods, load_attribute

AddOption = Callable[..., None]


class MethodOptions:
    """Adds options to a parser in titled groups, recording which methods each applies to."""

    def __init__(self, parser: argparse.ArgumentParser):
        self.parser = parser
        self.applies: dict[str, tuple[str, set[str]]] = {}   # dest -> (flag, methods)
        parser.set_defaults(method_options=self.applies)

    def group(self, title: str, methods: set[str]) -> AddOption:
        group = None

        def add(*flags: str, **kwargs) -> None:
            nonlocal group
            dest = kwargs.get("dest") or flags[0].lstrip("-").replace("-", "_")
            if dest in self.applies:        # declared by another method already: it applies to these too
                self.applies[dest][1].update(methods)
                return
            group = group or self.parser.add_argument_group(title)
            group.add_argument(*flags, default=kwargs.pop("default", None), **kwargs)
            self.applies[dest] = (flags[0], set(methods))
        return add


def specs_for(command: str) -> list[MethodSpec]:
    """The methods a command offers: those doing the task, or with a convert/train entry."""
    if command == "convert":
        return [m for m in list_methods() if m.convert]
    if command == "train":
        return [m for m in list_methods() if m.train]
    return [m for m in list_methods() if command in m.tasks]


def add_method_options(parser: argparse.ArgumentParser, command: str) -> MethodOptions:
    """The standard groups, then each method's own options, for `command`."""
    options, specs = MethodOptions(parser), specs_for(command)
    refiners = {m.name for m in specs if m.kind == "refiner"}
    for name in OPTION_GROUPS:
        methods = {m.name for m in specs if name in m.option_groups}
        if methods:
            STANDARD_GROUPS[name](options, methods, command)
    for spec in specs:
        if spec.options is None:
            continue
        methods = {spec.name} | (refiners if spec.coarse is not None and command == "reenact" else set())
        load_attribute(spec.options)(options.group(f"{spec.name} (--method {spec.name})", methods), command)
    return options


def method_settings(args: argparse.Namespace, method: str, context: str) -> dict:
    """The method options given (not None) as settings; InputError naming the options of other methods
    (`context` completes "does not apply to ...")."""
    settings, foreign = {}, []
    for dest, (flag, methods) in args.method_options.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        if method not in methods:
            foreign.append(flag)
        settings[dest] = value
    if foreign:
        raise InputError(None, f"{', '.join(foreign)} {'does' if len(foreign) == 1 else 'do'} not apply to {context}")
    absolute, relative = settings.pop("absolute", False), settings.pop("relative_motion", False)
    if absolute and relative:
        raise InputError(None, "--absolute and --relative exclude each other")
    if absolute or relative:
        settings["relative"] = relative
    return settings


# -- the standard groups ------------------------------------------------------------------------------------
def _motion(options: MethodOptions, methods: set[str], command: str) -> None:
    if command != "reenact":
        return
    add = options.group("motion transfer (refiners: their coarse animator's)", methods)
    add("--detector", choices=["hog", "mmod"], help="face detector (default hog)")
    add("--absolute", action="store_true",
        help="take the driving face's shape and pose as they are (default for fadm and facevid)")
    add("--relative", dest="relative_motion", action="store_true",
        help="move the source by the driving face's change from the initial frame (default for warp, dagan, fomm)")
    add("--adapt-scale", action=argparse.BooleanOptionalAction,
        help="scale head motion by the ratio of face sizes (FOMM's adapt_movement_scale; default: on for "
             "dagan and fomm, off otherwise)")


def _crop(options: MethodOptions, methods: set[str], command: str) -> None:
    if command not in ("reenact", "talk", "edit"):
        return
    add = options.group("face crops (models of face crops: crop, generate, paste back)", methods)
    add("--no-crop", dest="crop", action="store_false",
        help="the inputs are face crops already (only resized, as the official demos do)")
    add("--detector", choices=["hog", "mmod"], help="face detector (default hog)")
    if command in ("reenact", "edit"):
        add("--driving-crop", choices=["smooth", "fixed"],
            help="smooth: the crop window follows the video's face (default); fixed: one window for the clip")
    if command == "reenact":
        add("--find-best-frame", action="store_true",
            help="measure motion from the driving frame whose face is most like the photo's")
        add("--best-frame", type=int, metavar="N", help="measure motion from driving frame N")


def _runtime(options: MethodOptions, methods: set[str], command: str) -> None:
    if command not in ("reenact", "talk", "edit"):
        return
    add = options.group("runtime (models of face crops)", methods)
    add("--precision", choices=["exact", "fast"],
        help="exact: float32 (default); fast: bfloat16 (CPU) / float16 (CUDA) where precision allows")
    add("--batch-size", type=int, help="frames per forward pass (default: the method's)")
    add("--device", help="torch device (default: cuda if available, else cpu)")


STANDARD_GROUPS = {"motion": _motion, "crop": _crop, "runtime": _runtime}
