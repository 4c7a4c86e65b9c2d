"""Diffusion Video Autoencoders (Kim et al., CVPR 2023): a face video as one identity code shared by all frames,
per-frame landmark codes and per-frame DDIM noise maps; editing the identity edits the whole video.
Names are imported on first use (`faceanim.lazy`), so the CLI can read `options` without torch."""
from ...lazy import lazy_exports

__all__ = ["DVAConfig", "DVAModel", "DVAPipeline", "ClassifierEdit", "load_model", "load_classifier",
           "load_identity_stats", "ATTRIBUTES"]
__getattr__, __dir__ = lazy_exports(__name__, {
    "DVAConfig": ".config", "DVAModel": ".model", "DVAPipeline": ".pipeline", "ClassifierEdit": ".pipeline",
    "load_model": ".weights", "load_classifier": ".weights", "load_identity_stats": ".weights",
    "ATTRIBUTES": ".weights"})
