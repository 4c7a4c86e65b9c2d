"""EMO (Tian et al., 2024, "Emote Portrait Alive"): audio-driven portrait video by latent video diffusion on the
SD-1.5 UNet with ReferenceNet, audio attention, temporal layers, a face locator and speed layers; Hallo's released
weights (the open model of the same family) run in it. Names are imported on first use (`faceanim.lazy`)."""
from ...lazy import lazy_exports

__all__ = ["EMOConfig", "EMOModel", "EMOPipeline", "load_model", "build_model", "load_vae"]
__getattr__, __dir__ = lazy_exports(__name__, {
    "EMOConfig": ".config", "EMOModel": ".model", "EMOPipeline": ".pipeline", "load_model": ".weights",
    "build_model": ".weights", "load_vae": ".weights"})
