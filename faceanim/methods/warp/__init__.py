"""`warp`: the training-free landmark warping engine (reenact and talk on any face, no weights).

The method has no trained parts, so it has no `training.py` or `convert.py`; its settings can still be
saved as a folder with `config.json` (`WarpPipeline.save_pretrained`). Names are imported on first use."""
from ...lazy import lazy_exports

__all__ = ["WarpConfig", "WarpPipeline", "WarpSource", "PRESETS", "preset"]
__getattr__, __dir__ = lazy_exports(__name__, {"WarpConfig": ".config", "PRESETS": ".config", "preset": ".config",
                                               "WarpPipeline": ".pipeline", "WarpSource": ".pipeline"})
