"""FOMM (Siarohin et al., First Order Motion Model, NeurIPS 2019) on face crops: FADM's training-time coarse
animator, also usable on its own (`faceanim reenact --method fomm`). Names are imported on first use."""
from ...lazy import lazy_exports

__all__ = ["FOMMPipeline", "FOMMSource"]
__getattr__, __dir__ = lazy_exports(__name__, {"FOMMPipeline": ".pipeline", "FOMMSource": ".pipeline"})
