"""One `add_<command>` per subcommand: its arguments and the function it calls (imported when run)."""
from __future__ import annotations

import argparse

from ..errors import InputError, NotImplementedMethodError
from ..registry import get_method, list_methods, methods_for


def _method_task(task: str):
    def run(args: argparse.Namespace) -> int:
        get_method(args.method).pipeline_class_for(task)  # says so (exit 2) if it does not do this yet
        from ..tasks import animate

        settings = _method_settings(args)
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


def _method_settings(args: argparse.Namespace) -> dict:
    """The options given (not None), as settings of the method's pipeline and task; InputError for options
    of another method."""
    settings, foreign = {}, []
    for dest, (flag, methods) in args.method_options.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        if args.method not in methods:
            foreign.append(flag)
        settings[dest] = value
    if foreign:
        raise InputError(None, f"{', '.join(foreign)} {'does' if len(foreign) == 1 else 'do'} not apply to "
                               f"--method {args.method}")
    absolute, relative = settings.pop("absolute", False), settings.pop("relative_motion", False)
    if absolute and relative:
        raise InputError(None, "--absolute and --relative exclude each other")
    if absolute or relative:
        settings["relative"] = relative
    return settings


TASK_INPUTS = {"reenact": ("source", "driving"), "talk": ("source", "audio"), "edit": ("video",)}
WARP = ("warp",)
CROP_MODELS = ("dagan", "fomm", "facevid", "fadm")   # methods of face crops (faceanim.tasks.crop_reenact)


class _Options:
    """Adds options to a parser, recording which methods each applies to (read back by `_method_settings`)."""

    def __init__(self, parser: argparse.ArgumentParser):
        self.parser = parser
        self.methods: dict[str, tuple[str, tuple[str, ...]]] = {}   # dest -> (flag, methods)
        parser.set_defaults(method_options=self.methods)

    def group(self, title: str, methods: tuple[str, ...]):
        group = self.parser.add_argument_group(title)

        def add(*flags: str, **kwargs) -> None:
            action = group.add_argument(*flags, default=kwargs.pop("default", None), **kwargs)
            self.methods[action.dest] = (flags[0], methods)
        return add


def _add_motion_options(options: _Options) -> None:
    add = options.group("motion transfer (warp and the models of face crops; fadm: its coarse animator)",
                        WARP + CROP_MODELS)
    add("--detector", choices=["hog", "mmod"], help="face detector (default hog)")
    add("--absolute", action="store_true",
        help="take the driving face's shape and pose as they are (default for fadm and facevid)")
    add("--relative", dest="relative_motion", action="store_true",
        help="move the source by the driving face's change from the initial frame (default for warp, dagan, fomm)")
    add("--adapt-scale", action=argparse.BooleanOptionalAction,
        help="scale head motion by the ratio of face sizes (FOMM's adapt_movement_scale; default: on for "
             "dagan and fomm, off otherwise)")


def _add_warp_options(options: _Options, task: str) -> None:
    add = options.group("warp engine (--method warp)", WARP)
    add("--preset", dest="preset_name", choices=["default", "subtle", "expressive"])
    if task == "talk":
        add("--detector", choices=["hog", "mmod"], help="face detector (default hog)")
    if task == "reenact":
        add("--smoothing", type=float, help="driving landmark smoothing, sigma in frames (default 1)")
        add("--motion-limit", type=float, help="soft limit on landmark motion in face widths (default 0.1; 0 = none)")
    if task == "talk":
        add("--fps", type=float, help="output frame rate (default 25)")
        add("--still", action="store_true", help="no idle head motion (blinks stay)")
        add("--head-amplitude", type=float, help="idle head motion amplitude, x (default 1)")
        add("--head-speed", type=float, help="idle head motion speed, x (default 1)")
        add("--blink-rate", type=float, help="blinks per minute (default 15; 0 = none)")
        add("--max-opening", type=float, help="widest mouth opening (inner-lip gap / face width)")
        add("--seed", type=int, help="seed of the idle motion (blinks, head)")


def _add_crop_model_options(options: _Options) -> None:
    add = options.group("models of face crops (--method dagan, fomm, facevid, fadm)", CROP_MODELS)
    add("--no-crop", dest="crop", action="store_false",
        help="the photo and the driving frames are face crops already (only resized, as the official demos do)")
    add("--driving-crop", choices=["smooth", "fixed"],
        help="smooth: the crop window follows the driving face (default); fixed: one window for the clip")
    add("--find-best-frame", action="store_true",
        help="measure motion from the driving frame whose face is most like the photo's")
    add("--best-frame", type=int, metavar="N", help="measure motion from driving frame N")
    add("--precision", choices=["exact", "fast"],
        help="exact: float32 (default); fast: bfloat16 (CPU) / float16 (CUDA) where precision allows")
    add("--batch-size", type=int, help="driving frames per forward pass (default 8; fadm 1)")
    add("--device", help="torch device (default: cuda if available, else cpu)")
    add = options.group("DaGAN weights (--method dagan, or fadm --coarse dagan; with X.pth.tar)", ("dagan", "fadm"))
    add("--depth-encoder", help="the depth network's Monodepth2 encoder.pth (or set FACEANIM_DAGAN_DEPTH_ENCODER)")
    add("--depth-decoder", help="the depth network's Monodepth2 depth.pth (or set FACEANIM_DAGAN_DEPTH_DECODER)")
    add = options.group("official model settings (--method dagan, fomm, facevid; fadm: its coarse animator)",
                        CROP_MODELS)
    add("--config", help="official YAML (e.g. config/vox-adv-256.yaml; default: the released vox256 model)")
    add = options.group("DaGAN settings", ("dagan", "fadm"))
    add("--kp-num", type=int, help="keypoints, as the official --kp_num (default: read from the checkpoint)")
    add("--generator", choices=["DepthAwareGenerator", "SPADEDepthAwareGenerator"],
        help="generator class, as the official --generator (default: read from the checkpoint)")


def _add_fadm_options(options: _Options) -> None:
    add = options.group("FADM (--method fadm; --checkpoint: diffusion.pth or a converted folder)", ("fadm",))
    add("--coarse", choices=["facevid", "fomm", "dagan", "warp"],
        help="coarse animator whose frames are refined (default facevid, as the official demo)")
    add("--coarse-checkpoint", help="its weights: Facevid.pth, FOMM.pth or a DaGAN checkpoint / converted folder "
                                    "(or set FACEANIM_FADM_COARSE)")
    add("--coarse-config", help="the coarse animator's official YAML, when not its released layout")
    add("--deca", help="DECA's deca_model.tar (or set FACEANIM_DECA; not needed for a converted folder holding it)")
    add("--steps", type=int, help="sampler steps (default: all 100, the official sampler; fewer = faster, respaced)")
    add("--eta", type=float, help="DDIM eta (default 1, the official sampler)")
    add("--seed", type=int, help="noise seed (default 0)")
    add("--fresh-noise", dest="share_noise", action="store_false",
        help="new noise for every frame (default: one noise for the whole video, the official choice)")
    add("--refine-video", metavar="COARSE.mp4",
        help="refine an existing animation instead (official 'direct' mode; no SOURCE/DRIVING)")


def _add_method_arg(parser: argparse.ArgumentParser, task: str, default: str) -> None:
    names = [m.name for m in list_methods()]
    parser.add_argument("--method", default=default, choices=names,
                        help=f"method (for {task}: {', '.join(methods_for(task))}; default {default})")
    parser.add_argument("--checkpoint", help="pretrained weights of the method (file or converted folder)")


def _add_method_task(sub, task: str, description: str, inputs: dict[str, str], default_method: str) -> None:
    """reenact / talk / edit: input files, -o OUTPUT.mp4, and the method with its weights."""
    p = sub.add_parser(task, help=description)
    for name, text in inputs.items():
        # optional for reenact: `--method fadm --refine-video` has no source and driving
        p.add_argument(name, help=text, **({"nargs": "?"} if task == "reenact" else {}))
    p.add_argument("-o", "--output", required=True, help="output .mp4")
    _add_method_arg(p, task, default_method)
    options = _Options(p)
    if task == "reenact":
        _add_motion_options(options)
    if task in ("reenact", "talk"):
        _add_warp_options(options, task)
    if task == "reenact":
        _add_crop_model_options(options)
        _add_fadm_options(options)
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


TRAIN_WEIGHTS = ("depth_encoder", "depth_decoder", "vgg19", "init", "resnet", "coarse", "deca", "fomm_config")


def add_train(sub) -> None:
    launch = ("several GPUs: run the same command under `accelerate launch --multi_gpu --num_processes N -m "
              "faceanim train ...` or `torchrun --nproc-per-node N -m faceanim train ...`")
    p = sub.add_parser("train", help="train a method on a preprocessed dataset",
                       description=f"Train a method on a preprocessed dataset. On {launch}.")
    p.add_argument("method", choices=[m.name for m in list_methods()])
    p.add_argument("--config", help="training config: a YAML file or a packaged one (dagan: vox256.yaml, "
                                    "tiny.yaml, depth.yaml, depth_tiny.yaml; default vox256.yaml, or depth.yaml "
                                    "with --stage depth; official DaGAN YAMLs are read too; fadm: vox256.yaml "
                                    "(default), tiny.yaml)")
    p.add_argument("--data", help="dataset folder written by `faceanim preprocess` (or an official ROOT with train/)")
    p.add_argument("-o", "--output", help="run folder: checkpoints, TensorBoard logs, samples, exported model "
                                          "(default runs/METHOD)")
    p.add_argument("--resume", help="'latest' (or start fresh when there is none) or a checkpoint folder")
    p.add_argument("--max-steps", type=int, help="stop after this many steps (default: the config's epochs)")
    group = p.add_argument_group("DaGAN (faceanim train dagan)")
    group.add_argument("--stage", choices=["dagan", "depth"], help="dagan (default) or the self-supervised "
                                                                   "depth network")
    group.add_argument("--depth-encoder", help="frozen depth network: Monodepth2 encoder.pth")
    group.add_argument("--depth-decoder", help="frozen depth network: Monodepth2 depth.pth")
    group.add_argument("--vgg19", help="torchvision-format VGG-19 weights for the perceptual loss "
                                       "(or set FACEANIM_VGG19)")
    group.add_argument("--init", help="start from a converted DaGAN folder or an official *.pth.tar "
                                      "(fadm: a converted FADM folder or an official diffusion.pth)")
    group.add_argument("--resnet", help="depth stage: torchvision-format ImageNet ResNet both encoders start from")
    group = p.add_argument_group("FADM (faceanim train fadm; --init as above)")
    group.add_argument("--coarse-checkpoint", dest="coarse", metavar="PATH",
                       help="frozen coarse animator: FOMM.pth (or set FACEANIM_FADM_COARSE)")
    group.add_argument("--fomm-config", help="official FOMM YAML of that checkpoint (default: the config's "
                                             "coarse: settings, FOMM vox-256 in vox256.yaml)")
    group.add_argument("--deca", help="frozen DECA: deca_model.tar (or set FACEANIM_DECA)")

    def run(args):
        from ..tasks.train import train_method
        return train_method(args.method, args.data, config=args.config, output=args.output, stage=args.stage,
                            resume=args.resume, max_steps=args.max_steps,
                            weights={name: getattr(args, name) for name in TRAIN_WEIGHTS})
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
    p.add_argument("inputs", nargs="+", help="official checkpoint file(s)")
    p.add_argument("-o", "--output", required=True, help="output folder (config.json + model.safetensors)")
    group = p.add_argument_group("DaGAN (faceanim convert dagan X.pth.tar --depth-encoder E --depth-decoder D)")
    group.add_argument("--depth-encoder", help="the depth network's Monodepth2 encoder.pth "
                                               "(or set FACEANIM_DAGAN_DEPTH_ENCODER)")
    group.add_argument("--depth-decoder", help="the depth network's Monodepth2 depth.pth "
                                               "(or set FACEANIM_DAGAN_DEPTH_DECODER)")
    group.add_argument("--config", help="official YAML (e.g. config/vox-adv-256.yaml; default: the released model)")
    group.add_argument("--kp-num", type=int, help="keypoints, as the official --kp_num (default: from the checkpoint)")
    group.add_argument("--generator", choices=["DepthAwareGenerator", "SPADEDepthAwareGenerator"],
                       help="generator class, as the official --generator (default: from the checkpoint)")
    group.add_argument("--discriminator", action="store_true", help="keep the discriminator (for fine-tuning)")
    group = p.add_argument_group("FADM (faceanim convert fadm diffusion.pth --deca deca_model.tar); "
                                 "face-vid2vid (faceanim convert facevid Facevid.pth [--config YAML])")
    group.add_argument("--deca", help="DECA's deca_model.tar, stored with the renderer (or set FACEANIM_DECA)")
    p.set_defaults(run=_convert)


def _convert(args: argparse.Namespace) -> int:
    if args.method not in ("dagan", "facevid", "fadm"):
        raise NotImplementedMethodError(f"conversion of '{args.method}' checkpoints is not implemented yet; "
                                        f"see the README's status table")
    if len(args.inputs) != 1:
        raise InputError(None, f"convert {args.method} takes one official file (the others go to their flags), "
                               f"got {len(args.inputs)} files")
    options = {"dagan": ("depth_encoder", "depth_decoder", "config", "kp_num", "generator", "discriminator"),
               "facevid": ("config",), "fadm": ("deca",)}
    foreign = sorted("--" + name.replace("_", "-") for name in ("depth_encoder", "depth_decoder", "config", "kp_num",
                                                                "generator", "discriminator", "deca")
                     if getattr(args, name) not in (None, False) and name not in options[args.method])
    if foreign:
        raise InputError(None, f"{', '.join(foreign)} do not apply to convert {args.method}")
    if args.method == "dagan":
        from ..methods.dagan.convert import convert_official

        result = convert_official(args.inputs[0], args.output, depth_encoder=args.depth_encoder,
                                  depth_decoder=args.depth_decoder, config=args.config, kp_num=args.kp_num,
                                  generator=args.generator, discriminator=args.discriminator)
    elif args.method == "facevid":
        from ..methods.facevid.convert import convert_official

        result = convert_official(args.inputs[0], args.output, config=args.config)
    else:
        from ..methods.fadm.convert import convert_official

        result = convert_official(args.inputs[0], args.output, deca=args.deca)
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
