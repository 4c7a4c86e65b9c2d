"""FADM's command-line options (registry hook; imports nothing heavy). Its coarse animator's options
(`--config`, DaGAN's depth files, ...) come from the coarse methods' own hooks."""
from __future__ import annotations

from ...registry import coarse_animators


def add_options(add, command: str) -> None:
    if command == "reenact":
        add("--coarse", choices=coarse_animators(),
            help="coarse animator whose frames are refined (default facevid, as the official demo)")
        add("--coarse-checkpoint", help="its weights: Facevid.pth, FOMM.pth or a DaGAN checkpoint / converted folder "
                                        "(or set FACEANIM_FADM_COARSE)")
        add("--coarse-config", help="the coarse animator's official YAML, when not its released layout")
    if command in ("reenact", "convert", "train"):
        add("--deca", help="DECA's deca_model.tar (or set FACEANIM_DECA; a converted folder may hold it)")
    if command == "reenact":
        add("--steps", type=int, help="sampler steps (default: all 100, the official sampler; fewer = faster, respaced)")
        add("--eta", type=float, help="DDIM eta (default 1, the official sampler)")
        add("--seed", type=int, help="noise seed (default 0)")
        add("--fresh-noise", dest="share_noise", action="store_false",
            help="new noise for every frame (default: one noise for the whole video, the official choice)")
        add("--refine-video", metavar="COARSE.mp4",
            help="refine an existing animation instead (official 'direct' mode; no SOURCE/DRIVING)")
    if command == "train":
        add("--coarse-checkpoint", dest="coarse", metavar="PATH",
            help="frozen coarse animator: FOMM.pth (or set FACEANIM_FADM_COARSE)")
        add("--fomm-config", help="official FOMM YAML of that checkpoint (default: the config's coarse: settings, "
                                  "FOMM vox-256 in vox256.yaml)")
        add("--init", help="start from a converted folder or the official checkpoint (FADM: diffusion.pth)")
