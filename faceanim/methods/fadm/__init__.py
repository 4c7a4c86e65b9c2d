"""FADM (Zeng et al. 2023): a coarse animator's frame refined by an attribute-guided diffusion renderer.
Names are imported on first use (`faceanim.lazy`), so the CLI can read `options` without torch."""
from ...lazy import lazy_exports

__all__ = ["Condition", "coarse_condition", "FADMConfig", "UNetConfig", "DECAEncoder", "FADMModel",
           "FADMPipeline", "FADMSource"]
__getattr__, __dir__ = lazy_exports(__name__, {"Condition": ".conditioning", "coarse_condition": ".conditioning",
                                               "FADMConfig": ".config", "UNetConfig": ".config",
                                               "DECAEncoder": ".deca", "FADMModel": ".model",
                                               "FADMPipeline": ".pipeline", "FADMSource": ".pipeline"})
