"""The trainer on a toy GAN (CPU): it learns, phases and freezing, accumulation, logging, samples,
atomic checkpoints and bit-exact resume after an exception or a SIGKILL."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from faceanim.errors import CheckpointError, InputError
from faceanim.media import read_image
from faceanim.train import DivergedError, Phase, Trainer, TrainerConfig, state

from .toy import ToyGAN, ToyImages

REPO = Path(__file__).resolve().parents[2]

# 14 items in batches of 4 -> 3 batches an epoch; 2 micro-batches a step: steps straddle epoch ends.
RESUME_SETTINGS = dict(max_steps=16, batch_size=4, grad_accumulation=2, log_every=4, checkpoint_every=4,
                       keep_last_n=2, ema_decay=0.9, seed=7)


def fit(method, out, size=14, **settings):
    trainer = Trainer(method, ToyImages(size), TrainerConfig(output_dir=out, **settings))
    return trainer, trainer.fit()


def weights(trainer, name):
    return {k: v.clone() for k, v in trainer.models[name].state_dict().items()}


def assert_same_checkpoint(a: Path, b: Path):
    """Byte-identical files (the manifests hold every file's SHA-256), and equal tensors for the record."""
    assert state.verify(a)["files"] == state.verify(b)["files"]
    for name in ("models/generator.safetensors", "ema/generator.safetensors"):
        left, right = state.load_tensors(a / name), state.load_tensors(b / name)
        assert all(torch.equal(left[k], right[k]) for k in left)


def test_toy_gan_learns_and_each_phase_trains_its_own_models(tmp_path):
    trainer, result = fit(ToyGAN(), tmp_path, size=24, max_steps=40, batch_size=4, log_every=5, checkpoint_every=0)
    first, last = result.history[0][1], result.history[-1][1]
    assert last["generator/reconstruction"] < 0.7 * first["generator/reconstruction"]
    assert last["discriminator/lsgan"] < first["discriminator/lsgan"]
    assert {"generator/gan", "generator/total", "lr/generator", "lr/discriminator"} <= set(last)
    assert last["lr/generator"] == pytest.approx(1e-2 * 0.8 ** 8)  # StepLR(5, 0.8) stepped once per step
    assert result.step == 40 and result.checkpoint.name == "step-00000040"  # the last step is always saved
    trained = state.load_tensors(result.checkpoint / "models" / "generator.safetensors")
    assert trained["1.running_mean"].abs().sum() > 0 and trained["1.num_batches_tracked"] == 40  # BatchNorm ran
    assert torch.equal(trained["0.weight"], trainer.models["generator"][0].weight)
    assert not (result.checkpoint / "models" / "blur.safetensors").exists()  # frozen helpers are not saved
    assert torch.all(trainer.models["blur"].weight == 1 / 9)
    assert trainer.method.autocast == {"off"}


def test_models_of_other_phases_are_frozen_during_a_phase(tmp_path):
    seen = []

    class Watching(ToyGAN):
        def generator_loss(self, models, batch, context):
            seen.append(("g", [p.requires_grad for p in models["discriminator"].parameters()],
                         [p.requires_grad for p in models["blur"].parameters()]))
            return super().generator_loss(models, batch, context)

        def discriminator_loss(self, models, batch, context):
            seen.append(("d", [p.requires_grad for p in models["generator"].parameters()],
                         [p.requires_grad for p in models["discriminator"].parameters()]))
            return super().discriminator_loss(models, batch, context)

    trainer, _ = fit(Watching(), tmp_path, max_steps=2, batch_size=4, checkpoint_every=0)
    assert {(kind, any(a), any(b)) for kind, a, b in seen} == {("g", False, False), ("d", False, True)}
    assert all(p.requires_grad for p in trainer.models["generator"].parameters())  # restored afterwards
    assert not trainer.models["blur"].training and trainer.models["generator"].training


def test_gradient_accumulation_gives_the_big_batch_update(tmp_path):
    def run(out, batch_size, accumulation):
        method = ToyGAN(batchnorm=False, noise=0.0, optimizer="sgd", lr=0.05)
        trainer, _ = fit(method, out, size=16, max_steps=3, batch_size=batch_size, grad_accumulation=accumulation,
                         checkpoint_every=0)
        return trainer, method

    big, big_method = run(tmp_path / "big", 8, 1)
    small, small_method = run(tmp_path / "small", 4, 2)
    assert big_method.seen == small_method.seen  # the same items in each step
    for name in ("generator", "discriminator"):
        for key, value in weights(big, name).items():
            assert torch.allclose(value, weights(small, name)[key], atol=1e-6), (name, key)
    moved = ToyGAN(batchnorm=False, noise=0.0, optimizer="sgd", lr=0.05)
    unaccumulated, _ = fit(moved, tmp_path / "one", size=16, max_steps=3, batch_size=4, checkpoint_every=0)
    assert not torch.allclose(weights(unaccumulated, "generator")["0.weight"], weights(small, "generator")["0.weight"])


def test_resume_after_an_exception_is_bit_exact(tmp_path):
    whole = ToyGAN()
    _, reference = fit(whole, tmp_path / "whole", **RESUME_SETTINGS)
    with pytest.raises(RuntimeError, match="injected"):
        fit(ToyGAN(fail_at_step=10), tmp_path / "broken", **RESUME_SETTINGS)
    assert (tmp_path / "broken" / "checkpoints" / "latest").read_text().strip() == "step-00000008"
    resumed_method = ToyGAN()
    _, resumed = fit(resumed_method, tmp_path / "broken", resume="latest", **RESUME_SETTINGS)
    assert resumed.step == 16 and sorted(resumed_method.seen) == list(range(9, 17))
    assert all(resumed_method.seen[s] == whole.seen[s] for s in resumed_method.seen)  # same data order
    assert_same_checkpoint(reference.checkpoint, resumed.checkpoint)
    assert resumed.history[-1] == reference.history[-1]  # same losses at the end


def test_resume_after_sigkill_is_bit_exact(tmp_path):
    _, reference = fit(ToyGAN(), tmp_path / "whole", **RESUME_SETTINGS)
    out = tmp_path / "killed"
    killed = run_in_subprocess(out, "--kill-after-step", "10")
    assert killed.returncode == -9, killed.stderr
    assert [s for s, _ in state.checkpoints(out / "checkpoints")] == [4, 8]
    _, resumed = fit(ToyGAN(), out, resume="latest", **RESUME_SETTINGS)
    assert_same_checkpoint(reference.checkpoint, resumed.checkpoint)


def test_sigkill_while_saving_keeps_the_previous_checkpoint(tmp_path):
    _, reference = fit(ToyGAN(), tmp_path / "whole", **RESUME_SETTINGS)
    out = tmp_path / "killed"
    killed = run_in_subprocess(out, "--kill-while-saving", "12")
    assert killed.returncode == -9, killed.stderr
    root = out / "checkpoints"
    assert [s for s, _ in state.checkpoints(root)] == [4, 8]          # 12 never appeared
    assert (root / ".step-00000012.tmp").is_dir()                      # only its staging folder
    assert (root / "latest").read_text().strip() == "step-00000008"
    state.verify(root / "step-00000008")
    _, resumed = fit(ToyGAN(), out, resume="latest", **RESUME_SETTINGS)
    assert not (root / ".step-00000012.tmp").exists()
    assert_same_checkpoint(reference.checkpoint, resumed.checkpoint)


def run_in_subprocess(out: Path, *args: str, settings: dict | None = None) -> subprocess.CompletedProcess:
    settings = json.dumps({**RESUME_SETTINGS, **(settings or {}), "output_dir": str(out), "dataset_size": 14})
    return subprocess.run([sys.executable, "-m", "tests.train.run_toy", settings, *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_a_failure_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    original = state.save_object

    def fail_on_step_8(path, value):
        if ".step-00000008.tmp" in str(path) and "optimizers" in str(path):
            raise OSError(28, "No space left on device")
        original(path, value)

    monkeypatch.setattr(state, "save_object", fail_on_step_8)
    with pytest.raises(OSError, match="No space"):
        fit(ToyGAN(), tmp_path, **RESUME_SETTINGS)
    root = tmp_path / "checkpoints"
    assert [s for s, _ in state.checkpoints(root)] == [4]
    assert (root / "latest").read_text().strip() == "step-00000004"
    state.verify(root / "step-00000004")


def test_tensorboard_scalars_images_and_sample_png(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    fit(ToyGAN(), tmp_path, max_steps=6, batch_size=4, log_every=2, sample_every=3, checkpoint_every=0)
    sample = read_image(tmp_path / "samples" / "step-00000003.png")
    assert sample.shape == (4 * 8, 2 * 8, 3) and (tmp_path / "samples" / "step-00000006.png").is_file()
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    assert {"generator/reconstruction", "discriminator/lsgan", "lr/generator"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("generator/total")] == [2, 4, 6]
    assert [e.step for e in events.Images("samples")] == [3, 6]
    assert json.loads((tmp_path / "trainer_config.json").read_text())["max_steps"] == 6


def test_sampling_and_ema_do_not_change_the_training(tmp_path):
    base = dict(max_steps=8, batch_size=4, checkpoint_every=0, log_every=4)
    plain, _ = fit(ToyGAN(), tmp_path / "plain", **base)
    watched, result = fit(ToyGAN(), tmp_path / "watched", sample_every=2, ema_decay=0.5, **base)
    assert all(torch.equal(v, weights(watched, "generator")[k]) for k, v in weights(plain, "generator").items())
    average = state.load_tensors(result.checkpoint / "ema" / "generator.safetensors")
    assert not torch.equal(average["0.weight"], weights(watched, "generator")["0.weight"])
    assert watched.ema.num_updates == 8


def test_resume_latest_without_checkpoints_starts_fresh_and_bad_paths_fail(tmp_path):
    _, result = fit(ToyGAN(), tmp_path, max_steps=2, batch_size=4, resume="latest", checkpoint_every=0)
    assert result.step == 2
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        fit(ToyGAN(), tmp_path / "other", max_steps=2, batch_size=4, resume=str(tmp_path / "nope"))
    _, again = fit(ToyGAN(), tmp_path, max_steps=2, batch_size=4, resume=str(result.checkpoint))
    assert again.step == 2 and again.history == []  # nothing left to do


def test_a_non_finite_loss_stops_before_the_update(tmp_path):
    class Exploding(ToyGAN):
        def generator_loss(self, models, batch, context):
            losses = super().generator_loss(models, batch, context)
            if len(self.seen) == 3:
                losses["reconstruction"] = losses["reconstruction"] * float("nan")
            return losses

    with pytest.raises(DivergedError, match="step 4, phase generator: loss reconstruction"):
        fit(Exploding(), tmp_path, max_steps=10, batch_size=4, checkpoint_every=2)
    assert [s for s, _ in state.checkpoints(tmp_path / "checkpoints")] == [2]


def test_dataset_smaller_than_a_batch_and_bad_settings_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="fewer than one batch"):
        fit(ToyGAN(), tmp_path, size=3, max_steps=2, batch_size=4)
    for bad in (dict(max_steps=0), dict(max_steps=1, mixed_precision="fp8"), dict(max_steps=1, grad_accumulation=0),
                dict(max_steps=1, ema_decay=1.0), dict(max_steps=1, max_grad_norm=0)):
        with pytest.raises(InputError, match="trainer settings"):
            TrainerConfig(output_dir=tmp_path, **bad)


def test_gradient_clipping_is_logged_and_bounds_the_norm(tmp_path):
    _, result = fit(ToyGAN(), tmp_path, max_steps=4, batch_size=4, max_grad_norm=1e-3, log_every=1,
                    checkpoint_every=0)
    norms = [values["generator/grad_norm"] for _, values in result.history]
    assert len(norms) == 4 and all(n > 1e-3 for n in norms)  # the norm before clipping is what is logged


def test_bf16_autocast_trains(tmp_path):
    run = run_in_subprocess(tmp_path, settings={"mixed_precision": "bf16", "max_steps": 4, "max_grad_norm": 1.0})
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["step"] == 4 and summary["autocast"] == ["torch.bfloat16"]
    assert all(value == value and abs(value) < 1e3 for value in summary["last"].values())  # finite


def test_gradient_scaler_skips_overflowing_steps_and_their_scheduler_step(tmp_path, monkeypatch):
    """The fp16 path (a GradScaler; accelerate makes one on GPUs) with a CPU scaler put in its place."""
    import faceanim.train.trainer as trainer_module

    make_accelerator = trainer_module._make_accelerator

    def with_scaler(config):
        accelerator = make_accelerator(config)
        accelerator.scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
        return accelerator

    class Overflowing(ToyGAN):
        def generator_loss(self, models, batch, context):
            losses = super().generator_loss(models, batch, context)
            if len(self.seen) == 2:  # step 3: a finite loss whose gradient is not (d sqrt(x) / dx at 0)
                losses["spike"] = torch.sqrt(models["generator"][0].bias[0] * 0)
            return losses

    monkeypatch.setattr(trainer_module, "_make_accelerator", with_scaler)
    trainer, result = fit(Overflowing(), tmp_path, max_steps=4, batch_size=4, checkpoint_every=0, max_grad_norm=1.0)
    assert state.load_object(result.checkpoint / "scaler.pt")["scale"] == 512.0   # halved once
    assert state.load_object(result.checkpoint / "schedulers" / "generator.pt")["last_epoch"] == 3  # not 4
    assert all(torch.isfinite(p).all() for p in trainer.models["generator"].parameters())


@pytest.mark.slow
def test_two_processes_ddp_resume_is_bit_exact(tmp_path):
    """torchrun with 2 CPU processes (gloo DDP): sharded data, per-process RNG, barriers around saving."""
    with socket.socket() as probe:  # a free port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(port),
              "-m", "tests.train.run_toy"]
    settings = {**RESUME_SETTINGS, "max_steps": 8, "cpu": True, "dataset_size": 14}
    runs = {}
    for name, extra in (("whole", []), ("killed", ["--kill-after-step", "6"])):
        out = tmp_path / name
        runs[name] = subprocess.run(script + [json.dumps({**settings, "output_dir": str(out)}), *extra], cwd=REPO,
                                    capture_output=True, text=True, timeout=300)
    assert runs["whole"].returncode == 0, runs["whole"].stderr[-2000:]
    assert runs["killed"].returncode != 0
    resumed = subprocess.run(script + [json.dumps({**settings, "output_dir": str(tmp_path / "killed"),
                                                   "resume": "latest"})],
                             cwd=REPO, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    whole, again = tmp_path / "whole" / "checkpoints", tmp_path / "killed" / "checkpoints"
    assert sorted(p.name for p in (whole / "step-00000008" / "rng").iterdir()) == ["process-0.pt", "process-1.pt"]
    assert_same_checkpoint(whole / "step-00000008", again / "step-00000008")


def test_inconsistent_methods_are_refused_before_training(tmp_path):
    class UnknownOptimizer(ToyGAN):
        def phases(self):
            return [Phase("generator", ("generator", "kp_detector"), self.generator_loss)]

    class IdleOptimizer(ToyGAN):
        def phases(self):
            return super().phases()[:1]

    class StrayParameters(ToyGAN):
        def build_optimizers(self, models):
            optimizers = super().build_optimizers(models)
            optimizers["generator"].add_param_group({"params": [torch.nn.Parameter(torch.zeros(2))]})
            return optimizers

    for method, message in ((UnknownOptimizer(), "unknown optimizers"), (IdleOptimizer(), "stepped by no phase"),
                            (StrayParameters(), "belong to no model")):
        with pytest.raises(ValueError, match=message):
            fit(method, tmp_path, max_steps=1, batch_size=4)
