"""The training loop, on Hugging Face Accelerate: any `TrainingMethod`, one or many processes.

Per step: `grad_accumulation` micro-batches are drawn; for each phase in order, its loss is computed
and back-propagated on every micro-batch (under `accelerator.accumulate`, so DDP syncs gradients
once), the phase's gradients are clipped and its optimizers and schedulers stepped. Phases run one
after the other over all micro-batches, so a phase always sees the earlier phases' updated models,
with or without accumulation. Then the EMA is updated, scalars are logged to TensorBoard, sample
grids written and checkpoints saved (see `state.py`) on their periods.

Resume is exact: weights, optimizer, scheduler, gradient-scaler and EMA states, every RNG state of
every process, the step and the position in the data order are restored, so a resumed run computes
bit for bit what an uninterrupted one would (on the same hardware and software). Schedulers step once
per optimizer step, whatever the number of processes.
"""
from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .. import __version__
from ..checkpoints import load_into
from ..errors import CheckpointError, FaceanimError, InputError, MissingDependencyError
from ..fileio import atomic_path
from ..progress import progress
from . import state as ckpt
from .config import TrainerConfig
from .data import SeededSampler
from .ema import EMA
from .method import Phase, TrainingMethod

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
SAMPLES = "samples"
TRACKER_RUN = "tensorboard"
TRAINER_STATE = "trainer_state.json"


class DivergedError(FaceanimError):
    """A loss became NaN or infinite: training stops before that phase's update, writing no checkpoint."""


@dataclass
class FitResult:
    """step: the last step trained; checkpoint: the newest checkpoint folder (None if none was
    written); history: (step, averaged scalars) at every logging step of this run."""

    step: int
    checkpoint: Path | None
    history: list[tuple[int, dict[str, float]]] = field(default_factory=list)


@dataclass
class _PhaseRun:
    """A phase with what running it needs, resolved once."""

    phase: Phase
    models: dict[str, nn.Module]        # the models its loss sees: own ones wrapped, others plain
    wrapped: list[nn.Module]            # its own prepared (possibly DDP) models
    params: list[nn.Parameter]          # what its optimizers update
    others: list[nn.Parameter]          # trained by other phases: frozen while this one runs
    optimizers: list[torch.optim.Optimizer]
    schedulers: list[Any]


class Trainer:
    """Trains `method` on `dataset` as `config` says. The dataset is indexed with `(index, seed)`
    keys (see `data.SeededSampler`): it must take all its randomness from the seed."""

    def __init__(self, method: TrainingMethod, dataset: Dataset, config: TrainerConfig):
        self.method = method
        self.dataset = dataset
        self.config = config
        self.step = 0
        self.history: list[tuple[int, dict[str, float]]] = []
        self.last_checkpoint: Path | None = None

    def fit(self) -> FitResult:
        """Train up to `config.max_steps` (resuming first if `config.resume` says so)."""
        self._build()
        try:
            resumed = self._resume()
            self._start_logging(resumed)
            self._loop()
        finally:
            self.accelerator.end_training()
        return FitResult(self.step, self.last_checkpoint, self.history)

    # ----------------------------------------------------------------------------------- setup

    def _build(self) -> None:
        from accelerate.utils import set_seed

        config = self.config
        self.accelerator = _make_accelerator(config)
        set_seed(config.seed)  # the same initial weights on every process
        models = dict(self.method.build_models())
        if self.accelerator.num_processes > 1 and self.accelerator.device.type == "cuda":
            models = {name: nn.SyncBatchNorm.convert_sync_batchnorm(m) for name, m in models.items()}
        optimizers = dict(self.method.build_optimizers(models))
        if not optimizers:
            raise ValueError("the method builds no optimizer")
        schedulers = dict(self.method.build_schedulers(optimizers))
        owners = _optimizer_models(models, optimizers)
        self._trained = [name for name in models if any(name in names for names in owners.values())]
        self._prepare(models, optimizers)
        self._schedulers = schedulers
        self._phases = [self._resolve_phase(p, owners) for p in self.method.phases()]
        self._check_coverage(optimizers, schedulers)
        self.ema = self._make_ema(config)
        set_seed(config.seed, device_specific=True)  # processes draw different noise from here on
        self._log_sums: dict[str, torch.Tensor] = {}
        self._log_count = 0

    def _prepare(self, models: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer]) -> None:
        accelerator = self.accelerator
        for name, model in models.items():
            if name not in self._trained:
                model.to(accelerator.device).eval().requires_grad_(False)
        self.sampler = SeededSampler(len(self.dataset), self.config.seed)
        loader = DataLoader(self.dataset, batch_size=self.config.batch_size, sampler=self.sampler,
                            num_workers=self.config.num_workers, drop_last=True,
                            # its own generator: starting an epoch must not draw from the global RNG
                            generator=torch.Generator().manual_seed(self.config.seed),
                            multiprocessing_context=worker_context(self.config.num_workers))
        trained = [models[name] for name in self._trained]
        prepared = accelerator.prepare(*trained, *optimizers.values(), loader)
        self._wrapped = dict(zip(self._trained, prepared[:len(trained)]))
        self.optimizers = dict(zip(optimizers, prepared[len(trained):-1]))
        self.loader = prepared[-1]
        self.models = {name: accelerator.unwrap_model(self._wrapped.get(name, model)) for name, model in models.items()}
        for name in self._trained:
            self.models[name].train()
        if len(self.loader) == 0:
            raise InputError(None, f"the dataset has {len(self.dataset)} items, fewer than one batch of "
                                   f"{self.config.batch_size * accelerator.num_processes}")

    def _resolve_phase(self, phase: Phase, owners: dict[str, list[str]]) -> _PhaseRun:
        unknown = [name for name in phase.optimizers if name not in self.optimizers]
        if unknown:
            raise ValueError(f"phase {phase.name!r} steps unknown optimizers {unknown}")
        own = {model for opt in phase.optimizers for model in owners[opt]}
        params = [p for opt in phase.optimizers for g in self.optimizers[opt].param_groups for p in g["params"]]
        own_ids = {id(p) for p in params}
        others = [p for opt in self.optimizers.values() for g in opt.param_groups for p in g["params"]
                  if id(p) not in own_ids and p.requires_grad]
        raw = [self.optimizers[name].optimizer for name in phase.optimizers]
        schedulers = [s for s in self._schedulers.values() if any(s.optimizer is o for o in raw)]
        views = {name: self._wrapped[name] if name in own else module for name, module in self.models.items()}
        return _PhaseRun(phase, views, [self._wrapped[name] for name in own], params, others, raw, schedulers)

    def _check_coverage(self, optimizers: Mapping, schedulers: Mapping) -> None:
        stepped = {name for run in self._phases for name in run.phase.optimizers}
        idle = sorted(set(optimizers) - stepped)
        if idle:
            raise ValueError(f"optimizers {idle} are stepped by no phase")
        raw = [opt.optimizer for opt in self.optimizers.values()]
        for name, scheduler in schedulers.items():
            if not any(getattr(scheduler, "optimizer", None) is o for o in raw):
                raise ValueError(f"scheduler {name!r} is not over one of the method's optimizers")

    def _make_ema(self, config: TrainerConfig) -> EMA | None:
        if config.ema_decay is None:
            return None
        names = config.ema_models or tuple(self._trained)
        unknown = [name for name in names if name not in self.models]
        if unknown:
            raise InputError(None, f"trainer settings: ema_models names unknown models {unknown}")
        return EMA({name: self.models[name] for name in names}, config.ema_decay)

    @property
    def _checkpoint_root(self) -> Path:
        return Path(self.config.output_dir) / CHECKPOINTS

    def _start_logging(self, resumed: bool) -> None:
        kwargs = {TRACKER_RUN: {"purge_step": self.step + 1}} if resumed else {}
        self.accelerator.init_trackers(TRACKER_RUN, init_kwargs=kwargs)
        if self.accelerator.is_main_process:
            with atomic_path(Path(self.config.output_dir) / "trainer_config.json") as tmp:
                tmp.write_text(json.dumps(self.config.as_dict(), indent=2) + "\n")

    # ------------------------------------------------------------------------------------ loop

    def _loop(self) -> None:
        config, accelerator = self.config, self.accelerator
        batches = self._micro_batches()
        steps = progress(range(self.step, config.max_steps), total=config.max_steps - self.step, desc="train",
                         unit="step", enabled=config.progress if accelerator.is_main_process else False)
        try:
            for _ in steps:
                micro_batches = [next(batches) for _ in range(config.grad_accumulation)]
                self._train_step(micro_batches)
                self._after_step(micro_batches[0], steps)
        finally:
            batches.close()  # ends the DataLoader's worker processes now, not at garbage collection

    def _after_step(self, batch: Any, bar: Any) -> None:
        config = self.config
        self.step += 1
        self._position += config.grad_accumulation
        if self.ema is not None:
            self.ema.update(self.models)
        self.method.on_step_end(self.models, self.step)
        if config.log_every and self.step % config.log_every == 0:
            self._write_scalars(bar)
        if config.sample_every and self.step % config.sample_every == 0:
            self._write_samples(batch)
        if (config.checkpoint_every and self.step % config.checkpoint_every == 0) or self.step == config.max_steps:
            self.save_checkpoint()

    def _micro_batches(self) -> Iterator[Any]:
        """Batches from the current data position on, epoch after epoch."""
        per_epoch = len(self.loader)
        epoch, skip = divmod(self._position, per_epoch)
        while True:
            self.sampler.set_epoch(epoch)
            loader = self.accelerator.skip_first_batches(self.loader, skip) if skip else self.loader
            loader.set_epoch(epoch)
            yield from loader
            epoch, skip = epoch + 1, 0

    def _train_step(self, micro_batches: list[Any]) -> None:
        contexts: list[dict] = [{} for _ in micro_batches]
        for run in self._phases:
            self._run_phase(run, micro_batches, contexts)
        self._log_count += 1

    def _run_phase(self, run: _PhaseRun, micro_batches: list[Any], contexts: list[dict]) -> None:
        share = 1.0 / len(micro_batches)
        with _frozen(run.others):
            for batch, context in zip(micro_batches, contexts):
                with self.accelerator.accumulate(*run.wrapped):
                    with self.accelerator.autocast():
                        losses = dict(run.phase.loss(run.models, batch, context))
                    total = self._checked_total(run.phase, losses)
                    self.accelerator.backward(total)
                for name, value in [*losses.items(), ("total", total)]:
                    self._add_scalar(f"{run.phase.name}/{name}", value.detach().float() * share)
        grad_norm = self._update(run)
        if grad_norm is not None:
            self._add_scalar(f"{run.phase.name}/grad_norm", grad_norm.detach().float())

    def _checked_total(self, phase: Phase, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        if not losses:
            raise ValueError(f"phase {phase.name!r} returned no losses")
        total = sum(loss.float() for loss in losses.values())
        if not total.requires_grad:
            raise ValueError(f"phase {phase.name!r}: its losses do not depend on any trained parameter")
        if not torch.isfinite(total).item():
            bad = [name for name, loss in losses.items() if not torch.isfinite(loss).all()]
            raise DivergedError(f"step {self.step + 1}, phase {phase.name}: loss {', '.join(bad)} is not finite; "
                                f"resume from the last checkpoint with a lower learning rate or other settings")
        return total

    def _update(self, run: _PhaseRun) -> torch.Tensor | None:
        """Clip and apply the accumulated gradients of one phase; step its schedulers."""
        scaler = self.accelerator.scaler
        if scaler is not None:
            for optimizer in run.optimizers:
                scaler.unscale_(optimizer)
        grad_norm = None
        if self.config.max_grad_norm is not None:
            grad_norm = torch.nn.utils.clip_grad_norm_(run.params, self.config.max_grad_norm)
        applied = True
        if scaler is None:
            for optimizer in run.optimizers:
                optimizer.step()
        else:  # one scaler update per phase, after all its optimizers (PyTorch's multi-optimizer recipe)
            scale = scaler.get_scale()
            for optimizer in run.optimizers:
                scaler.step(optimizer)
            scaler.update()
            applied = scaler.get_scale() >= scale  # the scale drops when inf/NaN gradients skipped the step
        for optimizer in run.optimizers:
            optimizer.zero_grad(set_to_none=True)
        if applied:
            for scheduler in run.schedulers:
                scheduler.step()
        return grad_norm

    # -------------------------------------------------------------------------------- logging

    def _add_scalar(self, name: str, value: torch.Tensor) -> None:
        self._log_sums[name] = self._log_sums.get(name, 0.0) + value

    def _write_scalars(self, bar: Any) -> None:
        """Average the scalars since the last write over steps and processes; log them."""
        names = sorted(self._log_sums)
        stacked = torch.stack([torch.as_tensor(self._log_sums[n], device=self.accelerator.device) for n in names])
        averaged = self.accelerator.reduce(stacked / self._log_count, reduction="mean").tolist()
        values = dict(zip(names, averaged))
        values.update({f"lr/{name}": opt.param_groups[0]["lr"] for name, opt in self.optimizers.items()})
        self._log_sums, self._log_count = {}, 0
        self.accelerator.log(values, step=self.step)
        self.history.append((self.step, values))
        if hasattr(bar, "set_postfix"):
            bar.set_postfix({k: f"{v:.4g}" for k, v in values.items() if k.endswith("/total")}, refresh=False)
        log.info("step %d: %s", self.step, ", ".join(f"{k} {v:.5g}" for k, v in values.items()))

    def _write_samples(self, batch: Any) -> None:
        """The method's sample grid for `batch` (main process), as PNG and in TensorBoard."""
        if not self.accelerator.is_main_process:
            return
        image = self._sample_image(batch)
        if image is None:
            return
        from ..media import from_tensor, write_image

        pixels = from_tensor(image.float().cpu())[0]
        write_image(Path(self.config.output_dir) / SAMPLES / f"{ckpt.step_name(self.step)}.png", pixels)
        tracker = self.accelerator.get_tracker(TRACKER_RUN, unwrap=True)
        tracker.add_image("samples", pixels, self.step, dataformats="HWC")

    def _sample_image(self, batch: Any) -> torch.Tensor | None:
        """Sampling uses its own RNG stream (fixed seed) and eval mode, and leaves training untouched."""
        trained = [self.models[name] for name in self._trained]
        devices = [self.accelerator.device] if self.accelerator.device.type == "cuda" else []
        swap = self.ema.swapped_in(self.models) if self.ema is not None else contextlib.nullcontext()
        with torch.random.fork_rng(devices=devices), torch.no_grad(), swap, self.accelerator.autocast():
            torch.manual_seed(self.config.seed)
            for model in trained:
                model.eval()
            try:
                return self.method.samples(self.models, batch)
            finally:
                for model in trained:
                    model.train()

    # ---------------------------------------------------------------------------- checkpoints

    def save_checkpoint(self) -> None:
        """Write the complete training state of this step (all processes must call it)."""
        accelerator, root = self.accelerator, self._checkpoint_root
        staging = root / f".{ckpt.step_name(self.step)}.tmp"
        if accelerator.is_main_process:
            ckpt.staging_folder(root, self.step)
            for sub in ("models", "optimizers", "schedulers", "rng", "ema"):
                (staging / sub).mkdir()
        accelerator.wait_for_everyone()
        ckpt.save_object(staging / "rng" / f"process-{accelerator.process_index}.pt", ckpt.rng_state())
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            self._write_state(staging)
            ckpt.publish(staging, root, self.step, self.config.keep_last_n)
        accelerator.wait_for_everyone()
        self.last_checkpoint = root / ckpt.step_name(self.step)

    def _write_state(self, folder: Path) -> None:
        for name in self._trained:
            ckpt.save_tensors(folder / "models" / f"{name}.safetensors", self.models[name].state_dict())
        for name, optimizer in self.optimizers.items():
            ckpt.save_object(folder / "optimizers" / f"{name}.pt", optimizer.optimizer.state_dict())
        for name, scheduler in self._schedulers.items():
            ckpt.save_object(folder / "schedulers" / f"{name}.pt", scheduler.state_dict())
        if self.accelerator.scaler is not None:
            ckpt.save_object(folder / "scaler.pt", self.accelerator.scaler.state_dict())
        if self.ema is not None:
            for name, average in self.ema.state_dict().items():
                ckpt.save_tensors(folder / "ema" / f"{name}.safetensors", average)
        (folder / TRAINER_STATE).write_text(json.dumps(self._trainer_state(), indent=2) + "\n")

    def _trainer_state(self) -> dict:
        config, processes = self.config, self.accelerator.num_processes
        return {"step": self.step, "samples_seen": self._position * config.batch_size * processes,
                "epoch": self._position // len(self.loader), "batch_size": config.batch_size,
                "grad_accumulation": config.grad_accumulation, "num_processes": processes,
                "dataset_size": len(self.dataset), "seed": config.seed,
                "ema_updates": self.ema.num_updates if self.ema is not None else 0, "faceanim": __version__}

    def _resume(self) -> bool:
        """Load the checkpoint `config.resume` names; False (fresh start) when there is none."""
        self._position = 0
        if self.accelerator.is_main_process:
            ckpt.remove_stale(self._checkpoint_root)
        if self.config.resume is None:
            return False
        folder = ckpt.find_checkpoint(self._checkpoint_root, self.config.resume)
        if folder is None:
            log.info("no checkpoint in %s: starting from step 0", self._checkpoint_root)
            return False
        self._load_state(folder)
        later = [step for step, _ in ckpt.checkpoints(self._checkpoint_root) if step > self.step]
        if later:
            log.warning("resuming from step %d; the checkpoints of steps %s are from the abandoned run and "
                        "will be replaced as this run reaches them", self.step, later)
        return True

    def _load_state(self, folder: Path) -> None:
        saved = json.loads((folder / TRAINER_STATE).read_text())
        for name in self._trained:
            path = _existing(folder / "models" / f"{name}.safetensors")
            load_into(self.models[name], ckpt.load_tensors(path), strict=True, source=path)
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(ckpt.load_object(_existing(folder / "optimizers" / f"{name}.pt")))
        for name, scheduler in self._schedulers.items():
            scheduler.load_state_dict(ckpt.load_object(_existing(folder / "schedulers" / f"{name}.pt")))
        if self.accelerator.scaler is not None and (folder / "scaler.pt").is_file():
            self.accelerator.scaler.load_state_dict(ckpt.load_object(folder / "scaler.pt"))
        if self.ema is not None:
            averages = {name: ckpt.load_tensors(_existing(folder / "ema" / f"{name}.safetensors"))
                        for name in self.ema.averages}
            self.ema.load_state_dict(averages, saved.get("ema_updates", 0))
        self.step = int(saved["step"])
        self._position = self._data_position(saved)
        self.last_checkpoint = folder
        ckpt.set_rng_state(ckpt.load_object(self._rng_file(folder)))
        log.info("resumed from %s (step %d)", folder, self.step)

    def _data_position(self, saved: dict) -> int:
        """Micro-batches already drawn, in this run's batch geometry."""
        global_batch = self.config.batch_size * self.accelerator.num_processes
        position, rest = divmod(int(saved["samples_seen"]), global_batch)
        if rest or saved.get("dataset_size") != len(self.dataset) or saved.get("seed") != self.config.seed:
            log.warning("the dataset, seed or batch size differ from the checkpoint's: the data order after "
                        "resuming is not the one an uninterrupted run would have seen")
        return position

    def _rng_file(self, folder: Path) -> Path:
        own = folder / "rng" / f"process-{self.accelerator.process_index}.pt"
        if own.is_file():
            return own
        log.warning("%s: no RNG state for process %d; using process 0's", folder, self.accelerator.process_index)
        return _existing(folder / "rng" / "process-0.pt")


def worker_context(num_workers: int) -> str | None:
    """How data-loader workers start: "forkserver", not Linux's default fork, which copies a process that
    already runs threads (OpenMP, TensorBoard's writer) and can deadlock a worker on a lock held mid-fork."""
    return "forkserver" if num_workers > 0 else None


def _make_accelerator(config: TrainerConfig):
    import importlib.util

    missing = [name for name in ("accelerate", "tensorboard") if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingDependencyError(f"training needs {' and '.join(missing)}: pip install {' '.join(missing)}")
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, GradientAccumulationPlugin

    # sync_with_dataloader=False: steps are counted by the trainer, across epoch ends
    plugin = GradientAccumulationPlugin(num_steps=config.grad_accumulation, sync_with_dataloader=False)
    return Accelerator(gradient_accumulation_plugin=plugin, mixed_precision=config.mixed_precision,
                       log_with="tensorboard", project_dir=str(config.output_dir), cpu=config.cpu,
                       kwargs_handlers=[DistributedDataParallelKwargs(
                           find_unused_parameters=config.find_unused_parameters)])


def _optimizer_models(models: Mapping[str, nn.Module], optimizers: Mapping[str, torch.optim.Optimizer]
                      ) -> dict[str, list[str]]:
    """For each optimizer, the names of the models whose parameters it updates."""
    owner = {id(p): name for name, model in models.items() for p in model.parameters()}
    result = {}
    for opt_name, optimizer in optimizers.items():
        params = [p for group in optimizer.param_groups for p in group["params"]]
        strays = sum(id(p) not in owner for p in params)
        if strays:
            raise ValueError(f"optimizer {opt_name!r} has {strays} parameters that belong to no model")
        result[opt_name] = sorted({owner[id(p)] for p in params}, key=list(models).index)
    return result


@contextlib.contextmanager
def _frozen(params: list[nn.Parameter]) -> Iterator[None]:
    """Turn off gradients of `params` for the block (they are all trainable outside it)."""
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise CheckpointError(path.parent.parent, f"has no {path.relative_to(path.parent.parent)}")
    return path
