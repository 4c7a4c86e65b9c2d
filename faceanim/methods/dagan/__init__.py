"""DaGAN (depth-aware talking-head reenactment): configuration, networks, weights and the inference pipeline.
Names are imported on first use (`faceanim.lazy`), so the CLI can read `options` without torch."""
from ...lazy import lazy_exports

__all__ = ["DaGANConfig", "DaGANModel", "DaGANPipeline", "DaGANSource", "SourceFeatures"]
__getattr__, __dir__ = lazy_exports(__name__, {"DaGANConfig": ".config", "DaGANModel": ".model",
                                               "SourceFeatures": ".model", "DaGANPipeline": ".pipeline",
                                               "DaGANSource": ".pipeline"})
