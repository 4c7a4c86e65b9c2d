"""Training losses shared by methods: VGG perceptual pyramid, LSGAN and feature matching, equivariance."""
from .adversarial import feature_matching_loss, lsgan_discriminator_loss, lsgan_generator_loss
from .equivariance import RandomWarp
from .perceptual import ImagePyramid, PyramidPerceptualLoss

__all__ = ["PyramidPerceptualLoss", "ImagePyramid", "lsgan_generator_loss", "lsgan_discriminator_loss",
           "feature_matching_loss", "RandomWarp"]
