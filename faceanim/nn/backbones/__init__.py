"""Small classification backbones (ResNet, VGG) with torchvision-compatible parameter names, defined here
so that torchvision-format checkpoints load without importing torchvision."""
from .vgg import PERCEPTUAL_TAPS, VGG19Features, imagenet_normalize, load_vgg19

__all__ = ["VGG19Features", "load_vgg19", "imagenet_normalize", "PERCEPTUAL_TAPS"]
