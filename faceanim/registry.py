"""Method registry: the one place that says which methods exist and what each offers.

A method is one folder under `faceanim/methods/` plus one `MethodSpec` here (or given to `register`).
The CLI, `faceanim.tasks` and `faceanim train`/`convert` iterate over the specs and never name a method:
the spec says what the method is (`kind`), which tasks it does, which options it takes on the command
line (standard groups by name, its own through an `options` hook), which weight files it needs, and
where its pipeline, conversion and training entry points live.

Entries are plain data ("module:attribute" strings) so that listing methods, building the command line
and `faceanim --help` import nothing heavy. A method whose `pipeline` is None is planned, not
implemented: the CLI says so and exits 2.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from typing import Any

from .errors import MissingWeightsError, NotImplementedMethodError

TASKS = ("reenact", "talk", "edit")
KINDS = ("image", "crops", "refiner")
# image:   a pipeline of whole images (`prepare_source(image, path=)`, then `reenact`/`talk` over frames);
# crops:   a model of fixed-size face crops: the task crops the faces, the model makes crops, the task pastes
#          them back (`crop_size`, `prepare_source(crop)`, `animate_crops` / `talk_crops` / `edit_crops`);
# refiner: a model of face crops that refines another animator's crops (`attach_coarse`, `refine_crops`).
OPTION_GROUPS = ("motion", "crop", "runtime")
# standard CLI option groups a method may take (defined once in `faceanim.cli.options`):
# motion:  --absolute / --relative / --adapt-scale / --detector (reenact);
# crop:    --no-crop, --driving-crop, --find-best-frame, --best-frame, --detector (the crop route);
# runtime: --device, --precision, --batch-size.


@dataclass(frozen=True)
class WeightSpec:
    """One pretrained file a method needs: the CLI flag and environment variable that point to it."""

    name: str
    flag: str
    env: str
    description: str

    def resolve(self, given: str | os.PathLike | None = None, configured: str | os.PathLike | None = None, *,
                config_key: str | None = None) -> str:
        """The path given by flag, else by a config file (its `weights:` entry `config_key`), else by the
        environment variable; else MissingWeightsError naming where it can be given."""
        path = given or configured or os.environ.get(self.env)
        if not path:
            in_config = f", set weights: {config_key}: in the config," if config_key else ""
            raise MissingWeightsError(f"missing {self.description}: pass {self.flag} PATH{in_config} or set {self.env}")
        return os.fspath(path)


@dataclass(frozen=True)
class TrainSpec:
    """`faceanim train METHOD`: the entry point and, per stage, its default packaged config.

    entry: "module:function" called as `function(stage, config, data, output, settings, resume=, max_steps=)`
    and returning (trainer result with `.step`, exported folder or None); the first stage is the default."""

    entry: str
    stages: dict[str, str]


@dataclass(frozen=True)
class CoarseSpec:
    """The method can serve as a refiner's coarse animator: the `from_pretrained` settings it then takes
    and its defaults in that role (e.g. FADM's official coarse stage uses absolute motion)."""

    settings: tuple[str, ...] = ()
    defaults: dict[str, Any] = field(default_factory=dict)
    weights: bool = True     # False: it has no weights (the `warp` engine)


@dataclass(frozen=True)
class MethodSpec:
    name: str
    tasks: tuple[str, ...]          # subset of TASKS
    paper: str
    status: str = "implemented"     # "planned" | "implemented"
    kind: str = "image"             # one of KINDS
    pipeline: str | None = None     # "module:Class", None until implemented
    weights: tuple[WeightSpec, ...] = ()
    option_groups: tuple[str, ...] = ()   # standard option groups (OPTION_GROUPS) it takes
    options: str | None = None      # "module:function(add, command)": adds its own CLI options
    convert: str | None = None      # "module:function(input, output, **settings) -> Conversion"
    train: TrainSpec | None = None
    coarse: CoarseSpec | None = None      # can be a refiner's coarse animator
    default_coarse: str | None = None     # a refiner's coarse animator when none is named

    def __post_init__(self):
        unknown = [t for t in self.tasks if t not in TASKS] + [g for g in self.option_groups if g not in OPTION_GROUPS]
        if unknown or self.kind not in KINDS:
            raise ValueError(f"method {self.name!r}: unknown task, option group or kind: {unknown or self.kind}")

    def pipeline_class_for(self, task: str):
        """The pipeline class, if this method does `task` and is implemented; else a clear error (exit 2)."""
        if task not in self.tasks:
            raise NotImplementedMethodError(
                f"method '{self.name}' does not do '{task}' (methods for {task}: {', '.join(methods_for(task))})")
        return self.load_pipeline_class()

    def load_pipeline_class(self):
        if self.pipeline is None:
            raise NotImplementedMethodError(
                f"method '{self.name}' is not implemented yet (status: {self.status}); "
                f"see the methods table in the README")
        return load_attribute(self.pipeline)

    def weight(self, name: str) -> WeightSpec:
        return next(w for w in self.weights if w.name == name)

    def entry(self, what: str):
        """The convert or train entry point, or a clear error (exit 2) when the method has none."""
        target = self.convert if what == "convert" else (self.train.entry if self.train else None)
        if target is None:
            raise NotImplementedMethodError(f"{'conversion' if what == 'convert' else 'training'} of '{self.name}' "
                                            f"is not implemented yet; see the README's status table")
        return load_attribute(target)


def load_attribute(target: str):
    """The object a "module:attribute" string names (imported now)."""
    module_name, attribute = target.split(":")
    return getattr(importlib.import_module(module_name), attribute)


def _w(name: str, flag: str, env: str, description: str) -> WeightSpec:
    return WeightSpec(name, flag, env, description)


_M = "faceanim.methods."
_CROP_GROUPS = ("motion", "crop", "runtime")

_METHODS: dict[str, MethodSpec] = {m.name: m for m in (
    MethodSpec("warp", ("reenact", "talk"), "training-free landmark warping engine (faceanim)",
               pipeline=_M + "warp:WarpPipeline", option_groups=("motion",), options=_M + "warp.options:add_options",
               coarse=CoarseSpec(weights=False)),
    MethodSpec("dagan", ("reenact",), "Hong et al., Depth-Aware Generative Adversarial Network, CVPR 2022",
               kind="crops", pipeline=_M + "dagan:DaGANPipeline", option_groups=_CROP_GROUPS,
               options=_M + "dagan.options:add_options", convert=_M + "dagan.convert:convert_official",
               train=TrainSpec(_M + "dagan.training:train", {"dagan": "vox256.yaml", "depth": "depth.yaml"}),
               coarse=CoarseSpec(("config", "depth_encoder", "depth_decoder", "kp_num", "generator", "relative",
                                  "adapt_scale", "device", "precision", "batch_size")),
               weights=(_w("checkpoint", "--checkpoint", "FACEANIM_DAGAN_CHECKPOINT",
                           "DaGAN *.pth.tar or converted folder"),
                        _w("depth-encoder", "--depth-encoder", "FACEANIM_DAGAN_DEPTH_ENCODER",
                           "Monodepth2 encoder.pth"),
                        _w("depth-decoder", "--depth-decoder", "FACEANIM_DAGAN_DEPTH_DECODER",
                           "Monodepth2 depth.pth"),
                        _w("vgg19", "--vgg19", "FACEANIM_VGG19",
                           "VGG-19 weights for the perceptual loss (training; torchvision vgg19 .pth)"))),
    MethodSpec("fomm", ("reenact",), "Siarohin et al., First Order Motion Model, NeurIPS 2019",
               kind="crops", pipeline=_M + "fomm:FOMMPipeline", option_groups=_CROP_GROUPS,
               options=_M + "fomm.options:add_options",
               coarse=CoarseSpec(("config", "relative", "adapt_scale", "device", "precision", "batch_size"),
                                 dict(relative=False, adapt_scale=False)),
               weights=(_w("checkpoint", "--checkpoint", "FACEANIM_FOMM_CHECKPOINT",
                           "FOMM checkpoint (vox-cpk.pth.tar, or FADM's FOMM.pth)"),)),
    MethodSpec("facevid", ("reenact",), "Wang et al., One-Shot Free-View Neural Talking-Head Synthesis "
               "(face-vid2vid), CVPR 2021 (zhanglonghao1992 re-implementation, as FADM uses)",
               kind="crops", pipeline=_M + "facevid:FaceVidPipeline", option_groups=_CROP_GROUPS,
               options=_M + "facevid.options:add_options", convert=_M + "facevid.convert:convert_official",
               coarse=CoarseSpec(("config", "relative", "adapt_scale", "device", "precision", "batch_size"),
                                 dict(relative=False, adapt_scale=False)),
               weights=(_w("checkpoint", "--checkpoint", "FACEANIM_FACEVID_CHECKPOINT",
                           "face-vid2vid Facevid.pth or converted folder"),)),
    MethodSpec("fadm", ("reenact",), "Zeng et al., Face Animation with an Attribute-Guided Diffusion Model, 2023",
               kind="refiner", pipeline=_M + "fadm:FADMPipeline", option_groups=_CROP_GROUPS,
               options=_M + "fadm.options:add_options", convert=_M + "fadm.convert:convert_official",
               train=TrainSpec(_M + "fadm.training:train", {"fadm": "vox256.yaml"}), default_coarse="facevid",
               weights=(_w("diffusion", "--checkpoint", "FACEANIM_FADM_DIFFUSION",
                           "FADM renderer (diffusion.pth or converted folder)"),
                        _w("coarse", "--coarse-checkpoint", "FACEANIM_FADM_COARSE",
                           "coarse animator weights (Facevid.pth, FOMM.pth or a DaGAN checkpoint)"),
                        _w("deca", "--deca", "FACEANIM_DECA", "DECA deca_model.tar"))),
    MethodSpec("diffused_heads", ("talk",), "Stypulkowski et al., Diffused Heads, WACV 2024",
               kind="crops", pipeline=_M + "diffused_heads:DiffusedHeadsPipeline", option_groups=("crop", "runtime"),
               options=_M + "diffused_heads.options:add_options", convert=_M + "diffused_heads.convert:convert_official",
               train=TrainSpec(_M + "diffused_heads.training:train", {"diffused_heads": "crema.yaml"}),
               weights=(_w("checkpoint", "--checkpoint", "FACEANIM_DIFFUSED_HEADS_CHECKPOINT",
                           "Diffused Heads UNet (crema_script.pt, a Lightning .ckpt or a converted folder)"),
                        _w("audio_encoder", "--audio-encoder", "FACEANIM_DIFFUSED_HEADS_AUDIO_ENCODER",
                           "Diffused Heads speech encoder (audio_encoder.pt)"))),
    MethodSpec("emo", ("talk",), "Tian et al., EMO: Emote Portrait Alive, 2024 (no official code; Hallo's weights)",
               kind="crops", pipeline=_M + "emo:EMOPipeline", option_groups=("crop", "runtime"),
               options=_M + "emo.options:add_options", convert=_M + "emo.convert:convert_official",
               weights=(_w("checkpoint", "--checkpoint", "FACEANIM_EMO_CHECKPOINT",
                           "EMO model (Hallo's net.pth, its pretrained_models folder or a converted folder)"),
                        _w("vae", "--vae", "FACEANIM_EMO_VAE", "VAE folder (sd-vae-ft-mse, diffusers layout)"),
                        _w("wav2vec2", "--wav2vec2", "FACEANIM_WAV2VEC2", "wav2vec2 model folder (HF layout)"),
                        _w("face_analysis", "--face-analysis", "FACEANIM_EMO_FACE_ANALYSIS",
                           "insightface recognition model (w600k_r50.onnx)"))),
    MethodSpec("dva", ("edit",), "Kim et al., Diffusion Video Autoencoders, CVPR 2023", kind="crops",
               pipeline=_M + "dva:DVAPipeline", option_groups=("crop", "runtime"), options=_M + "dva.options:add_options",
               convert=_M + "dva.convert:convert_official",
               train=TrainSpec(_M + "dva.training:train", {"dva": "vox256.yaml", "classifier": "classifier.yaml"}),
               weights=(_w("checkpoint", "--checkpoint", "FACEANIM_DVA_CHECKPOINT",
                           "DVA model (the released Lightning .ckpt, a training run's or a converted folder)"),
                        _w("classifier", "--classifier", "FACEANIM_DVA_CLASSIFIER",
                           "DVA attribute classifier (diffusion_video_autoencoder_cls last.ckpt)"),
                        _w("clip", "--clip", "FACEANIM_CLIP", "CLIP model folder (transformers layout)"),
                        _w("idnet", "--idnet", "FACEANIM_DVA_IDNET", "ArcFace model_ir_se50.pth"),
                        _w("lndnet", "--lndnet", "FACEANIM_DVA_LNDNET",
                           "landmark net mobilenet_224_model_best_gdconv_external.pth.tar"),
                        _w("bgnet", "--bgnet", "FACEANIM_DVA_BGNET", "BiSeNet face parser 79999_iter.pth"))),
)}


def register(spec: MethodSpec, *, replace: bool = False) -> MethodSpec:
    """Add a method (a plug-in, or a test's stand-in); `unregister` removes it again."""
    if spec.name in _METHODS and not replace:
        raise ValueError(f"method {spec.name!r} is registered already")
    _METHODS[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    _METHODS.pop(name, None)


def list_methods() -> list[MethodSpec]:
    return list(_METHODS.values())


def get_method(name: str) -> MethodSpec:
    try:
        return _METHODS[name]
    except KeyError:
        raise NotImplementedMethodError(
            f"unknown method '{name}' (known: {', '.join(_METHODS)})") from None


def methods_for(task: str) -> list[str]:
    return [m.name for m in _METHODS.values() if task in m.tasks]


def coarse_animators() -> list[str]:
    """The methods that can serve as a refiner's coarse animator."""
    return [m.name for m in _METHODS.values() if m.coarse is not None and m.pipeline is not None]
