"""FADM (Zeng et al. 2023): a coarse animator's frame refined by an attribute-guided diffusion renderer."""
from .conditioning import Condition, coarse_condition
from .config import FADMModelConfig, UNetConfig
from .deca import DECAEncoder
from .model import FADMModel
from .pipeline import FADMPipeline, FADMSource

__all__ = ["Condition", "coarse_condition", "FADMModelConfig", "UNetConfig", "DECAEncoder", "FADMModel", "FADMPipeline", "FADMSource"]
