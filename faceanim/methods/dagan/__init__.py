"""DaGAN (depth-aware talking-head reenactment): configuration and networks."""
from .config import DaGANModelConfig
from .model import DaGANModel

__all__ = ["DaGANModelConfig", "DaGANModel"]
