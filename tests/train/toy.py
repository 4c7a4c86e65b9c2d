"""A small GAN-like method and dataset for trainer tests (CPU, seconds).

The generator denoises 3x8x8 images (BatchNorm inside, input noise from the global torch RNG, so RNG
restore matters); the discriminator is trained with LSGAN on its detached outputs; a frozen blur
network shows how untrained helpers are handled. Each step records the dataset indices it trained on.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset

from faceanim.losses import lsgan_discriminator_loss, lsgan_generator_loss
from faceanim.train import Phase, TrainingMethod, image_grid


class ToyImages(Dataset):
    """Item i: a fixed smooth random image (from i) plus noise from the key's seed."""

    def __init__(self, size: int = 24):
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key):
        index, seed = key
        base = torch.rand(3, 4, 4, generator=torch.Generator().manual_seed(index))
        image = nn.functional.interpolate(base[None], size=(8, 8), mode="bilinear", align_corners=False)[0]
        jitter = 0.02 * torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(seed % 2 ** 62))
        return {"x": (image + jitter).clamp(0, 1), "index": index}


def _generator(batchnorm: bool) -> nn.Module:
    norm = nn.BatchNorm2d(16) if batchnorm else nn.Identity()
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), norm, nn.ReLU(), nn.Conv2d(16, 3, 3, padding=1),
                         nn.Sigmoid())


def _discriminator() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(8, 1, 3, padding=1))


class ToyGAN(TrainingMethod):
    def __init__(self, *, batchnorm: bool = True, noise: float = 0.1, optimizer: str = "adam", lr: float = 1e-2,
                 fail_at_step: int | None = None, gan_weight: float = 0.1):
        self.batchnorm, self.noise, self.optimizer, self.lr = batchnorm, noise, optimizer, lr
        self.fail_at_step, self.gan_weight = fail_at_step, gan_weight
        self.seen: dict[int, list[int]] = {}
        self.autocast: set[str] = set()   # autocast dtypes the losses ran under ("off" without)
        self._indices: list[int] = []

    def build_models(self):
        blur = nn.Conv2d(3, 3, 3, padding=1, groups=3, bias=False)
        nn.init.constant_(blur.weight, 1 / 9)
        return {"generator": _generator(self.batchnorm), "discriminator": _discriminator(), "blur": blur}

    def build_optimizers(self, models):
        def make(params):
            if self.optimizer == "sgd":
                return torch.optim.SGD(params, lr=self.lr, momentum=0.9)
            return torch.optim.Adam(params, lr=self.lr, betas=(0.5, 0.999))
        return {"generator": make(models["generator"].parameters()),
                "discriminator": make(models["discriminator"].parameters())}

    def build_schedulers(self, optimizers):
        return {"generator": torch.optim.lr_scheduler.StepLR(optimizers["generator"], step_size=5, gamma=0.8)}

    def phases(self):
        return [Phase("generator", ("generator",), self.generator_loss),
                Phase("discriminator", ("discriminator",), self.discriminator_loss)]

    def generator_loss(self, models, batch, context):
        self._indices += batch["index"].tolist()
        x = batch["x"]
        noisy = x + self.noise * torch.randn_like(x) if self.noise else x
        prediction = models["generator"](noisy)
        device = x.device.type
        self.autocast.add(str(torch.get_autocast_dtype(device)) if torch.is_autocast_enabled(device) else "off")
        context["prediction"] = prediction.detach()
        reconstruction = (models["blur"](prediction) - models["blur"](x)).abs().mean() + (prediction - x).abs().mean()
        gan = lsgan_generator_loss(models["discriminator"](prediction), weight=self.gan_weight)
        return {"reconstruction": reconstruction, "gan": gan}

    def discriminator_loss(self, models, batch, context):
        discriminator = models["discriminator"]
        return {"lsgan": lsgan_discriminator_loss(discriminator(batch["x"]), discriminator(context["prediction"]))}

    def samples(self, models, batch):
        x = batch["x"][:4]
        return image_grid([x, models["generator"](x)])

    def on_step_end(self, models, step):
        self.seen[step], self._indices = self._indices, []
        if step == self.fail_at_step:
            raise RuntimeError(f"injected failure after step {step}")
