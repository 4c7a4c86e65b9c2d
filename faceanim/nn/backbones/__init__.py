"""Small backbones with the official parameter names (torchvision's ResNet, VGG and AlexNet; pytorch-fid's
Inception; piergiaj's I3D; InsightFace's IR-SE50), defined here so that their checkpoints load without
importing torchvision or the packages that wrap them."""
from .alexnet import AlexNetFeatures, load_alexnet
from .vgg import PERCEPTUAL_TAPS, VGG16Features, VGG19Features, imagenet_normalize, load_vgg16, load_vgg19

__all__ = ["VGG19Features", "load_vgg19", "VGG16Features", "load_vgg16", "AlexNetFeatures", "load_alexnet",
           "imagenet_normalize", "PERCEPTUAL_TAPS"]
