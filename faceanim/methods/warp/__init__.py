"""`warp`: the training-free landmark warping engine (reenact and talk on any face, no weights).

The method has no trained parts, so it has no `training.py` or `convert.py`; its settings can still be
saved as a folder with `config.json` (`WarpPipeline.save_pretrained`)."""
from .config import PRESETS, WarpConfig, preset
from .pipeline import WarpPipeline, WarpSource

__all__ = ["WarpConfig", "WarpPipeline", "WarpSource", "PRESETS", "preset"]
