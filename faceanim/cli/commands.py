"""One `add_<command>` per subcommand: its arguments and the function it calls (imported when run)."""
from __future__ import annotations

import argparse

from ..errors import InputError
from ..registry import get_method, list_methods, methods_for
from .options import add_method_options, method_settings, specs_for


# crop kinds of `track`/`preprocess` (faceanim.face.video.CROP_KINDS, kept here so that parsing loads no face code)
CROP_KINDS = ["fomm", "ffhq", "sda"]
TASK_INPUTS = {"reenact": ("source", "driving"), "talk": ("source", "audio"), "edit": ("video",)}


def _method_task(task: str):
    def run(args: argparse.Namespace) -> int:
        get_method(args.method).pipeline_class_for(task)  # says so (exit 2) if it does not do this yet
        from ..tasks import animate

        settings = method_settings(args, args.method, f"--method {args.method}")
        if settings.pop("list_attributes", False):    # a listing, not a job: no inputs needed
            cls = get_method(args.method).load_pipeline_class()
            print("\n".join(cls.list_attributes(checkpoint=args.checkpoint, **settings)))
            return 0
        if args.output is None:
            raise InputError(None, f"{task} needs -o OUTPUT")
        inputs = [getattr(args, name) for name in TASK_INPUTS[task]]
        if settings.get("refine_video") is not None:
            if any(value is not None for value in inputs):
                raise InputError(None, "--refine-video takes no SOURCE and DRIVING (the video is refined as it is)")
            output = animate.refine(settings.pop("refine_video"), args.output, method=args.method,
                                    checkpoint=args.checkpoint, **settings)
            print(f"wrote {output}")
            return 0
        missing = [name.upper() for name, value in zip(TASK_INPUTS[task], inputs) if value is None]
        if missing:
            raise InputError(None, f"{task} needs {' and '.join(missing)}")
        output = getattr(animate, task)(*inputs, args.output, method=args.method, checkpoint=args.checkpoint,
                                        **settings)
        print(f"wrote {output}")
        return 0
    return run


def _add_method_arg(parser: argparse.ArgumentParser, task: str, default: str) -> None:
    names = [m.name for m in list_methods()]
    parser.add_argument("--method", default=default, choices=names,
                        help=f"method (for {task}: {', '.join(methods_for(task))}; default {default})")
    parser.add_argument("--checkpoint", help="pretrained weights of the method (file or converted folder)")


def _add_method_task(sub, task: str, description: str, inputs: dict[str, str], default_method: str) -> None:
    """reenact / talk / edit: input files, -o OUTPUT.mp4, the method with its weights and its options."""
    p = sub.add_parser(task, help=description)
    for name, text in inputs.items():
        # optional for reenact (a refiner's `--refine-video` has no source and driving) and edit (a listing)
        p.add_argument(name, help=text, **({"nargs": "?"} if task in ("reenact", "edit") else {}))
    p.add_argument("-o", "--output", required=task != "edit", help="output .mp4")
    _add_method_arg(p, task, default_method)
    add_method_options(p, task)
    p.set_defaults(run=_method_task(task))


def add_reenact(sub) -> None:
    _add_method_task(sub, "reenact", "animate a photo with a driving video",
                     {"source": "source photo", "driving": "driving video"}, "warp")


def add_talk(sub) -> None:
    _add_method_task(sub, "talk", "make a photo speak an audio track",
                     {"source": "source photo", "audio": "speech (any format PyAV decodes, or a video's sound)"},
                     "warp")


def add_edit(sub) -> None:
    _add_method_task(sub, "edit", "edit attributes of the face in a video", {"video": "input video"},
                     (methods_for("edit") or ["none"])[0])


def add_train(sub) -> None:
    launch = ("several GPUs: run the same command under `accelerate launch --multi_gpu --num_processes N -m "
              "faceanim train ...` or `torchrun --nproc-per-node N -m faceanim train ...`")
    p = sub.add_parser("train", help="train a method on a preprocessed dataset",
                       description=f"Train a method on a preprocessed dataset. On {launch}.")
    # a later stage may also be named METHOD-STAGE (e.g. `train dva-classifier` = `train dva --stage classifier`)
    staged = {f"{m.name}-{stage}": (m.name, stage) for m in specs_for("train") for stage in list(m.train.stages)[1:]}
    p.add_argument("method", choices=[m.name for m in list_methods()] + sorted(staged))
    stages = {f"{m.name}: {', '.join(m.train.stages)}" for m in specs_for("train")}
    defaults = "; ".join(f"{m.name}: {', '.join(f'{config} ({stage})' for stage, config in m.train.stages.items())}"
                         for m in specs_for("train"))
    p.add_argument("--config", help=f"training config: a YAML file or a packaged one (default per stage: {defaults}; "
                                    "a method may also read its official YAMLs)")
    p.add_argument("--stage", help=f"training stage (default: the method's first; {'; '.join(sorted(stages))})")
    p.add_argument("--data", help="dataset folder written by `faceanim preprocess` (or an official ROOT with train/)")
    p.add_argument("-o", "--output", help="run folder: checkpoints, TensorBoard logs, samples, exported model "
                                          "(default runs/METHOD)")
    p.add_argument("--resume", help="'latest' (or start fresh when there is none) or a checkpoint folder")
    p.add_argument("--max-steps", type=int, help="stop after this many steps (default: the config's epochs)")
    add_method_options(p, "train")

    def run(args):
        from ..tasks.train import train_method
        if args.method in staged:
            method, stage = staged[args.method]
            if args.stage not in (None, stage):
                raise InputError(None, f"{args.method} is the {stage} stage; --stage {args.stage} contradicts it")
            args.method, args.stage = method, stage
        get_method(args.method).entry("train")   # says so (exit 2) when the method has no training
        return train_method(args.method, args.data, config=args.config, output=args.output, stage=args.stage,
                            resume=args.resume, max_steps=args.max_steps,
                            weights=method_settings(args, args.method, f"training {args.method}"))
    p.set_defaults(run=run)


def add_evaluate(sub) -> None:
    from ..metrics.base import METRIC_WEIGHTS

    p = sub.add_parser("evaluate", help="compute the papers' metrics on generated videos",
                       description="Metrics of a generated video against a reference (same-identity "
                                   "reconstruction) or of a reenactment of --source (cross-identity). Writes "
                                   "metrics.json, metrics.md, per_frame.csv and plots/*.png into -o DIR.")
    p.add_argument("--pred", help="generated video or frame folder")
    p.add_argument("--ref", help="reference video or frame folder (ground truth, or the driving video)")
    p.add_argument("--source", help="source photo of a cross-identity reenactment (identity metrics compare with it)")
    p.add_argument("--audio", help="speech for the lip-sync metrics (default: the prediction's soundtrack)")
    p.add_argument("--metrics", help="comma-separated metric names (default: every metric whose inputs and "
                                     "weights are available); see --list")
    p.add_argument("-o", "--output", help="report folder (metrics.json, metrics.md, per_frame.csv, plots/)")
    p.add_argument("--list", action="store_true", help="list the metrics and the weights each needs, then exit")
    p.add_argument("--fps", type=float, help="frame rate of frame folders (default: the video's, else 25)")
    p.add_argument("--resize", action="store_true", help="resize prediction frames to the reference's size")
    p.add_argument("--max-frames", type=int, help="evaluate only the first N frames")
    p.add_argument("--ssim-mode", choices=["paper", "skimage"], default="paper",
                   help="paper: DiffAE/DVA ssim.py (zero-padded borders); skimage: borders left out")
    p.add_argument("--identity", choices=["dlib", "arcface"],
                   help="identity embedding for CSIM/AED/TL-ID/TG-ID (default: arcface when --arcface or "
                        "FACEANIM_ARCFACE gives its weights, else dlib)")
    p.add_argument("--lpips-net", choices=["alex", "vgg"], default="alex", help="LPIPS backbone (default alex)")
    p.add_argument("--fvd-stride", type=int, default=16, help="frames between FVD clip starts (default 16)")
    p.add_argument("--device", help="torch device for network metrics (default: cuda if available)")
    weights = p.add_argument_group("metric weights (local files; or the environment variables named)")
    for spec in METRIC_WEIGHTS.values():
        weights.add_argument(spec.flag, dest=f"weight_{spec.name}", metavar="PATH",
                             help=f"{spec.description} [{spec.env}]")
    p.add_argument("--benchmark", nargs=argparse.REMAINDER, metavar="COMMAND",
                   help="last option: run this faceanim command (e.g. reenact SRC DRV -o OUT.mp4 --method warp), "
                        "report seconds/frame and peak memory, and evaluate its output as --pred")

    def run(args):
        from ..tasks import evaluate as task
        if args.list:
            return _list_metrics()
        bench = None
        if args.benchmark is not None:
            from ..tasks.benchmark import benchmark_command
            from .main import main
            bench = benchmark_command(args.benchmark, run=main)
            args.pred = args.pred or bench.output
        if args.pred is None:
            raise InputError(None, "evaluate needs --pred (or --benchmark COMMAND)")
        evaluation = None
        if args.ref is not None or args.metrics or args.benchmark is None:
            evaluation = task.evaluate(
                args.pred, args.ref, source=args.source, audio=args.audio,
                metrics=[m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None,
                weights={spec.name: getattr(args, f"weight_{spec.name}") for spec in METRIC_WEIGHTS.values()},
                options={"identity": args.identity, "lpips_net": args.lpips_net, "fvd_stride": args.fvd_stride,
                         "ssim_mode": args.ssim_mode},
                device=args.device, fps=args.fps, resize=args.resize, max_frames=args.max_frames)
        if args.output:
            table = task.write_evaluation(evaluation, args.output, benchmark=bench)
            print(table, end="")
            print(f"wrote {args.output}")
        else:
            print(task.markdown(evaluation, bench), end="")
        return 0
    p.set_defaults(run=run)


def _list_metrics() -> int:
    from ..metrics.base import METRIC_WEIGHTS
    from ..metrics.catalog import METRICS

    for info in METRICS.values():
        metric = info.load()
        needs = ", ".join(sorted(metric.needs)) or "-"
        files = ", ".join(METRIC_WEIGHTS[w].flag for w in metric.weights) or "none"
        print(f"{info.name:10s} {info.group:13s} needs: {needs:12s} weights: {files:32s} {info.description}")
    return 0


def add_convert(sub) -> None:
    p = sub.add_parser("convert", help="convert official checkpoints to a faceanim model folder")
    p.add_argument("method", choices=[m.name for m in list_methods()])
    p.add_argument("inputs", nargs="+", help="the official checkpoint file (its companions go to their flags)")
    p.add_argument("-o", "--output", required=True, help="output folder (config.json + model.safetensors)")
    add_method_options(p, "convert")
    p.set_defaults(run=_convert)


def _convert(args: argparse.Namespace) -> int:
    convert = get_method(args.method).entry("convert")   # says so (exit 2) when the method has none
    if len(args.inputs) != 1:
        raise InputError(None, f"convert {args.method} takes one official file (the others go to their flags), "
                               f"got {len(args.inputs)} files")
    result = convert(args.inputs[0], args.output, **method_settings(args, args.method, f"convert {args.method}"))
    for path, digest in result.inputs.values():
        print(f"sha256 {digest}  {path}")
    print(f"wrote {result.output} ({', '.join(result.components)})")
    return 0


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
    p.add_argument("--crop", choices=CROP_KINDS, default=CROP_KINDS[0],
                   help="fomm: VoxCeleb-style square crop (DaGAN/FOMM/FADM); ffhq: FFHQ alignment (DVA); "
                        "sda: face-processor alignment (Diffused Heads, CREMA)")
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
    p.add_argument("--crop", choices=CROP_KINDS, default=CROP_KINDS[0])
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
