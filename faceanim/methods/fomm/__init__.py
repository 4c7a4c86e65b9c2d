"""FOMM (Siarohin et al., First Order Motion Model, NeurIPS 2019) on face crops: FADM's training-time coarse
animator, also usable on its own (`faceanim reenact --method fomm`)."""
from .pipeline import FOMMPipeline, FOMMSource

__all__ = ["FOMMPipeline", "FOMMSource"]
