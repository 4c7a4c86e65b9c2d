"""Method registry: name -> what the method does, its status, and where its pipeline lives.

Entries are plain data (dotted "module:Class" strings) so that listing methods imports nothing heavy.
A method whose `pipeline` is None is planned but not implemented: the CLI says so and exits 2.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field

from .errors import MissingWeightsError, NotImplementedMethodError


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
class MethodSpec:
    name: str
    tasks: tuple[str, ...]          # subset of ("reenact", "talk", "edit")
    paper: str
    status: str                     # "planned" | "implemented"
    pipeline: str | None = None     # "module:Class", None until implemented
    weights: tuple[WeightSpec, ...] = field(default_factory=tuple)

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
        module_name, class_name = self.pipeline.split(":")
        return getattr(importlib.import_module(module_name), class_name)


def _w(name: str, flag: str, env: str, description: str) -> WeightSpec:
    return WeightSpec(name, flag, env, description)


_METHODS: dict[str, MethodSpec] = {m.name: m for m in (
    MethodSpec("warp", ("reenact", "talk"), "training-free landmark warping engine (faceanim)", "implemented",
               pipeline="faceanim.methods.warp:WarpPipeline"),
    MethodSpec("dagan", ("reenact",), "Hong et al., Depth-Aware Generative Adversarial Network, CVPR 2022",
               "implemented", pipeline="faceanim.methods.dagan:DaGANPipeline",
               weights=(_w("checkpoint", "--checkpoint", "FACEANIM_DAGAN_CHECKPOINT",
                           "DaGAN *.pth.tar or converted folder"),
                        _w("depth-encoder", "--depth-encoder", "FACEANIM_DAGAN_DEPTH_ENCODER",
                           "Monodepth2 encoder.pth"),
                        _w("depth-decoder", "--depth-decoder", "FACEANIM_DAGAN_DEPTH_DECODER",
                           "Monodepth2 depth.pth"),
                        _w("vgg19", "--vgg19", "FACEANIM_VGG19",
                           "VGG-19 weights for the perceptual loss (training; torchvision vgg19 .pth)"))),
    MethodSpec("fomm", ("reenact",), "Siarohin et al., First Order Motion Model, NeurIPS 2019", "implemented",
               pipeline="faceanim.methods.fomm:FOMMPipeline",
               weights=(_w("checkpoint", "--checkpoint", "FACEANIM_FOMM_CHECKPOINT",
                           "FOMM checkpoint (vox-cpk.pth.tar, or FADM's FOMM.pth)"),)),
    MethodSpec("facevid", ("reenact",), "Wang et al., One-Shot Free-View Neural Talking-Head Synthesis "
               "(face-vid2vid), CVPR 2021 (zhanglonghao1992 re-implementation, as FADM uses)", "implemented",
               pipeline="faceanim.methods.facevid:FaceVidPipeline",
               weights=(_w("checkpoint", "--checkpoint", "FACEANIM_FACEVID_CHECKPOINT",
                           "face-vid2vid Facevid.pth or converted folder"),)),
    MethodSpec("fadm", ("reenact",), "Zeng et al., Face Animation with an Attribute-Guided Diffusion Model, 2023",
               "implemented", pipeline="faceanim.methods.fadm:FADMPipeline",
               weights=(_w("diffusion", "--checkpoint", "FACEANIM_FADM_DIFFUSION",
                           "FADM renderer (diffusion.pth or converted folder)"),
                        _w("coarse", "--coarse-checkpoint", "FACEANIM_FADM_COARSE",
                           "coarse animator weights (Facevid.pth, FOMM.pth or a DaGAN checkpoint)"),
                        _w("deca", "--deca", "FACEANIM_DECA", "DECA deca_model.tar"))),
    MethodSpec("diffused_heads", ("talk",), "Stypulkowski et al., Diffused Heads, WACV 2024", "planned",
               weights=(_w("checkpoint", "--checkpoint", "FACEANIM_DIFFUSED_HEADS_CHECKPOINT", "UNet checkpoint"),)),
    MethodSpec("emo", ("talk",), "Tian et al., EMO: Emote Portrait Alive, 2024 (no official code)", "planned",
               weights=(_w("checkpoint", "--checkpoint", "FACEANIM_EMO_CHECKPOINT", "EMO model folder"),
                        _w("wav2vec2", "--wav2vec2", "FACEANIM_WAV2VEC2", "wav2vec2 model folder (HF layout)"))),
    MethodSpec("dva", ("edit",), "Kim et al., Diffusion Video Autoencoders, CVPR 2023", "planned",
               weights=(_w("checkpoint", "--checkpoint", "FACEANIM_DVA_CHECKPOINT", "DVA Lightning .ckpt"),)),
)}


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
