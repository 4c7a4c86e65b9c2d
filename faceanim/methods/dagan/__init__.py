"""DaGAN (depth-aware talking-head reenactment): configuration, networks, weights and the inference pipeline."""
from .config import DaGANModelConfig
from .model import DaGANModel, SourceFeatures
from .pipeline import DaGANPipeline, DaGANSource

__all__ = ["DaGANModelConfig", "DaGANModel", "DaGANPipeline", "DaGANSource", "SourceFeatures"]
