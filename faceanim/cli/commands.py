"""One `add_<command>` per subcommand: its arguments and the function it calls (imported when run)."""
from __future__ import annotations

import argparse

from ..errors import NotImplementedMethodError
from ..registry import get_method, list_methods, methods_for


def _method_task(task: str):
    def run(args: argparse.Namespace) -> int:
        get_method(args.method).pipeline_class_for(task)  # says so (exit 2) if it does not do this yet
        from ..tasks import animate

        settings = {key: getattr(args, key) for key in TASK_SETTINGS[task] if getattr(args, key, None) is not None}
        if getattr(args, "absolute", False):
            settings["relative"] = False
        inputs = [getattr(args, name) for name in TASK_INPUTS[task]]
        output = getattr(animate, task)(*inputs, args.output, method=args.method, checkpoint=args.checkpoint,
                                        **settings)
        print(f"wrote {output}")
        return 0
    return run


TASK_INPUTS = {"reenact": ("source", "driving"), "talk": ("source", "audio"), "edit": ("video",)}
TASK_SETTINGS = {
    "reenact": ("preset_name", "adapt_scale", "smoothing", "motion_limit", "detector"),
    "talk": ("preset_name", "fps", "still", "head_amplitude", "head_speed", "blink_rate", "seed", "max_opening",
             "detector"),
    "edit": (),
}


def _add_warp_options(p: argparse.ArgumentParser, task: str) -> None:
    group = p.add_argument_group("warp engine (--method warp)")
    group.add_argument("--preset", dest="preset_name", choices=["default", "subtle", "expressive"])
    group.add_argument("--detector", choices=["hog", "mmod"], help="face detector (default hog)")
    if task == "reenact":
        group.add_argument("--absolute", action="store_true",
                           help="take the driving face's shape and pose as they are (default: relative motion)")
        group.add_argument("--adapt-scale", action="store_true", default=None,
                           help="scale head motion by the ratio of face sizes (FOMM's adapt_movement_scale)")
        group.add_argument("--smoothing", type=float, help="driving landmark smoothing, sigma in frames (default 1)")
        group.add_argument("--motion-limit", type=float,
                           help="soft limit on landmark motion in face widths (default 0.1; 0 = none)")
    if task == "talk":
        group.add_argument("--fps", type=float, help="output frame rate (default 25)")
        group.add_argument("--still", action="store_true", default=None, help="no idle head motion (blinks stay)")
        group.add_argument("--head-amplitude", type=float, help="idle head motion amplitude, x (default 1)")
        group.add_argument("--head-speed", type=float, help="idle head motion speed, x (default 1)")
        group.add_argument("--blink-rate", type=float, help="blinks per minute (default 15; 0 = none)")
        group.add_argument("--max-opening", type=float, help="widest mouth opening (inner-lip gap / face width)")
        group.add_argument("--seed", type=int, help="seed of the idle motion (blinks, head)")


def _add_method_arg(parser: argparse.ArgumentParser, task: str, default: str) -> None:
    names = [m.name for m in list_methods()]
    parser.add_argument("--method", default=default, choices=names,
                        help=f"method (for {task}: {', '.join(methods_for(task))}; default {default})")
    parser.add_argument("--checkpoint", help="pretrained weights of the method (file or converted folder)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")


def _add_method_task(sub, task: str, description: str, inputs: dict[str, str], default_method: str) -> None:
    """reenact / talk / edit: input files, -o OUTPUT.mp4, and the method with its weights."""
    p = sub.add_parser(task, help=description)
    for name, text in inputs.items():
        p.add_argument(name, help=text)
    p.add_argument("-o", "--output", required=True, help="output .mp4")
    _add_method_arg(p, task, default_method)
    if task in ("reenact", "talk"):
        _add_warp_options(p, task)
    p.set_defaults(run=_method_task(task))


def add_reenact(sub) -> None:
    _add_method_task(sub, "reenact", "animate a photo with a driving video",
                     {"source": "source photo", "driving": "driving video"}, "warp")


def add_talk(sub) -> None:
    _add_method_task(sub, "talk", "make a photo speak an audio track",
                     {"source": "source photo", "audio": "speech (any format PyAV decodes, or a video's sound)"},
                     "warp")


def add_edit(sub) -> None:
    _add_method_task(sub, "edit", "edit attributes of the face in a video", {"video": "input video"}, "dva")


def _not_yet(what: str):
    def run(args: argparse.Namespace) -> int:
        raise NotImplementedMethodError(f"{what} is not implemented yet; see the README's status table")
    return run


def add_train(sub) -> None:
    p = sub.add_parser("train", help="train a method on a preprocessed dataset")
    p.add_argument("method", choices=[m.name for m in list_methods()])
    p.add_argument("--config", help="training config (YAML)")
    p.add_argument("--data", help="dataset folder written by `faceanim preprocess`")
    p.set_defaults(run=lambda a: _not_yet(f"training of '{a.method}'")(a))


def add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="compute the papers' metrics on generated videos")
    p.add_argument("--pred", help="generated video or frame folder")
    p.add_argument("--ref", help="reference video or frame folder")
    p.set_defaults(run=_not_yet("'faceanim evaluate'"))


def add_convert(sub) -> None:
    p = sub.add_parser("convert", help="convert official checkpoints to a faceanim model folder")
    p.add_argument("method", choices=[m.name for m in list_methods()])
    p.add_argument("inputs", nargs="+", help="official checkpoint file(s)")
    p.add_argument("-o", "--output", required=True, help="output folder (config.json + model.safetensors)")
    p.set_defaults(run=lambda a: _not_yet(f"conversion of '{a.method}' checkpoints")(a))


def add_info(sub) -> None:
    p = sub.add_parser("info", help="versions, device, methods and which weights were found")
    p.add_argument("--checkpoint", action="append", default=[], metavar="PATH",
                   help="also describe this checkpoint (sha256, components, tensor count); repeatable")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")

    def run(args):
        from .info import run_info
        return run_info(checkpoints=args.checkpoint, as_json=args.json)
    p.set_defaults(run=run)


def add_probe(sub) -> None:
    p = sub.add_parser("probe", help="check media files and print what they contain (JSON)")
    p.add_argument("inputs", nargs="+", help="image, video or audio files")
    p.add_argument("--expect", choices=["image", "video", "audio"],
                   help="fail unless each file is of this kind (a video with sound also counts as audio)")

    def run(args):
        from ..tasks.probe import probe_files
        return probe_files(args.inputs, expect=args.expect)
    p.set_defaults(run=run)


def add_preprocess(sub) -> None:
    p = sub.add_parser("preprocess", help="turn raw videos into a training dataset (crops, landmarks, audio)")
    p.add_argument("inputs", nargs="+", help="videos, or folders searched for videos")
    p.add_argument("--out", required=True, help="dataset folder (one sub-folder per clip)")
    p.add_argument("--crop", choices=["fomm", "ffhq"], default="fomm",
                   help="fomm: VoxCeleb-style square crop (DaGAN/FOMM/FADM); ffhq: FFHQ alignment (DVA)")
    p.add_argument("--size", type=int, default=256, help="crop size in pixels (default 256)")
    p.add_argument("--crop-motion", choices=["smooth", "fixed"], default="smooth",
                   help="smooth: the crop follows the face; fixed: one window per clip (fomm only)")
    p.add_argument("--audio", action="store_true", help="also extract 16 kHz mono audio (audio.wav)")
    p.add_argument("--fps", type=float, default=None, help="resample clips to this constant frame rate")
    p.add_argument("--workers", type=int, default=1, help="clips processed in parallel (default 1)")
    p.add_argument("--min-face-fraction", type=float, default=0.5,
                   help="skip a clip whose face is found in fewer frames than this fraction (default 0.5)")
    p.add_argument("--overwrite", action="store_true", help="redo clips that are already finished")
    p.add_argument("--detector", choices=["hog", "mmod"], default="hog",
                   help="face detector: hog (fast, frontal faces) or mmod (dlib's CNN: slower, finds turned faces)")

    def run(args):
        from ..tasks.preprocess import PreprocessOptions, preprocess
        opts = PreprocessOptions(crop=args.crop, size=args.size, crop_motion=args.crop_motion, audio=args.audio,
                                 fps=args.fps, min_face_fraction=args.min_face_fraction,
                                 overwrite=args.overwrite, detector=args.detector)
        return preprocess(args.inputs, args.out, opts, workers=args.workers)
    p.set_defaults(run=run)


def add_track(sub) -> None:
    p = sub.add_parser("track", help="track the face in a video or photo: crops, and crop -> paste-back")
    p.add_argument("input", help="video or photo")
    p.add_argument("-o", "--output", required=True,
                   help="output .mp4: the full frames after crop -> (optional landmark overlay) -> paste-back")
    p.add_argument("--crops", help="also write the face crops as a video here")
    p.add_argument("--crop", choices=["fomm", "ffhq"], default="fomm")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--draw-landmarks", action="store_true", help="draw the 68 landmarks on the crops")
    p.add_argument("--face-index", type=int, default=None, help="pick the N-th face from the left")
    p.add_argument("--reference", help="pick the face that looks most like this photo")
    p.add_argument("--detector", choices=["hog", "mmod"], default="hog",
                   help="face detector: hog (fast, frontal faces) or mmod (dlib's CNN: slower, finds turned faces)")

    def run(args):
        from ..tasks.track import track_file
        return track_file(args)
    p.set_defaults(run=run)
