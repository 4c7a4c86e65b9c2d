"""Method-agnostic trainer on Hugging Face Accelerate, checkpoint/resume state, EMA and datasets, and
the helpers a method's training entry point shares: trainer settings from a schedule in epochs, the
launched run's processes, the method's settings recorded beside the trainer's, frame augmentation."""
from .augment import Augmentation, ColorJitter, NO_AUGMENTATION, frame_augmentation
from .config import TrainerConfig, steps_per_epoch, trainer_config
from .data import FramePairDataset, PairOptions, SeededSampler, open_frame_pairs
from .ema import EMA
from .epochs import export_on_main, fit_in_epochs
from .method import Phase, TrainingMethod, image_grid
from .run import is_main_process, world_size, write_run_config
from .trainer import DivergedError, FitResult, Trainer

__all__ = ["Trainer", "TrainerConfig", "TrainingMethod", "Phase", "FitResult", "DivergedError", "image_grid",
           "EMA", "FramePairDataset", "PairOptions", "SeededSampler", "open_frame_pairs", "Augmentation",
           "ColorJitter", "NO_AUGMENTATION", "frame_augmentation", "trainer_config",
           "steps_per_epoch", "world_size", "is_main_process", "write_run_config", "fit_in_epochs", "export_on_main"]
