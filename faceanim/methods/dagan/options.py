"""DaGAN's command-line options (registry hook; imports nothing heavy)."""
from __future__ import annotations


def add_options(add, command: str) -> None:
    if command in ("reenact", "convert", "train"):
        add("--depth-encoder", help="the depth network's Monodepth2 encoder.pth (or set FACEANIM_DAGAN_DEPTH_ENCODER)")
        add("--depth-decoder", help="the depth network's Monodepth2 depth.pth (or set FACEANIM_DAGAN_DEPTH_DECODER)")
    if command in ("reenact", "convert"):
        add("--config", help="official YAML (e.g. config/vox-adv-256.yaml; default: the released vox256 model)")
        add("--kp-num", type=int, help="keypoints, as the official --kp_num (default: read from the checkpoint)")
        add("--generator", choices=["DepthAwareGenerator", "SPADEDepthAwareGenerator"],
            help="generator class, as the official --generator (default: read from the checkpoint)")
    if command == "convert":
        add("--discriminator", action="store_true", help="keep the discriminator (for fine-tuning)")
    if command == "train":
        add("--vgg19", help="torchvision-format VGG-19 weights for the perceptual loss (or set FACEANIM_VGG19)")
        add("--init", help="start from a converted folder or the official checkpoint (DaGAN: *.pth.tar)")
        add("--resnet", help="depth stage: torchvision-format ImageNet ResNet both encoders start from")
