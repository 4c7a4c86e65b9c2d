"""Method-agnostic trainer on Hugging Face Accelerate, checkpoint/resume state, EMA and datasets."""
from .augment import Augmentation, ColorJitter, NO_AUGMENTATION
from .config import TrainerConfig
from .data import FramePairDataset, PairOptions, SeededSampler, open_frame_pairs
from .ema import EMA
from .method import Phase, TrainingMethod, image_grid
from .trainer import DivergedError, FitResult, Trainer

__all__ = ["Trainer", "TrainerConfig", "TrainingMethod", "Phase", "FitResult", "DivergedError", "image_grid",
           "EMA", "FramePairDataset", "PairOptions", "SeededSampler", "open_frame_pairs", "Augmentation",
           "ColorJitter", "NO_AUGMENTATION"]
