"""DVA's semantic encoder: frozen pretrained networks instead of DiffAE's learned encoder.

Written from the official `model/unet_autoenc.py` (`DiffusionVideoAutoencoder`), `model/model_irse.py`
(`IDnet`), `model/basenet.py` (`LNDnet`) and `model/seg_model_2.py` (`BGnet`). Attribute and parameter
names are the official ones, so the `encoder.*` tensors of the released Lightning checkpoint (under
`model.` / `ema_model.`) load by name into `DVAEncoder`:

- `idnet.backbone`  ArcFace IR-SE50 (`model_ir_se50.pth`): frame in [-1, 1] at 256 px -> crop rows 35:223,
  columns 32:220 -> adaptive average pool to 112 -> l2-normalised 512-d identity;
- `lndnet.backbone` MobileNet_GDConv(136) (`mobilenet_224_model_best_gdconv_external.pth.tar`): centre crop
  16:240 -> (x+1)/2 -> ImageNet normalisation -> 68 (x, y) clamped to [0, 1] -> jaw points (first 17)
  dropped -> 102-d landmark code;
- `bgnet.backbone`  BiSeNet(19) face parser (`79999_iter.pth`): nearest resize to 512 -> clip to [-1, 1]
  -> (x+1)/2 -> ImageNet normalisation -> main logits -> argmax -> foreground = not background/hat/cloth
  (image class set) or additionally not ears/neck/hair (video class set) -> nearest resize to 256;
- `linear`          Linear(614, 512), the only trained part: z_face = linear([identity, landmarks]).

The three networks are frozen (`requires_grad_(False)`) and always run in eval mode, as the official
forwards call `backbone.eval()` each time.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...nn.backbones.bisenet import BiSeNet
from ...nn.backbones.irse import ir_se50
from ...nn.backbones.mobilenet_gdconv import MobileNetGDConv

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ID_DIM = 512
LANDMARK_DIM = 102            # 51 non-jaw landmarks x (x, y)
Z_FACE_DIM = 512

FRAME_SIZE = 256
ID_CROP = (slice(35, 223), slice(32, 220))       # rows, columns of the 256 px frame
ID_INPUT = 112
LANDMARK_INPUT = 224
LANDMARK_CROP = slice(16, 240)
JAW_POINTS = 17
PARSER_INPUT = 512
BACKGROUND_CLASSES = (0, 18, 16)                 # background, hat, cloth
VIDEO_BACKGROUND_CLASSES = BACKGROUND_CLASSES + (7, 8, 14, 17)   # + ears, neck, hair


class _FrozenNet(nn.Module):
    """A holder of a frozen `backbone` that stays in eval mode whatever `train()` is asked."""

    backbone: nn.Module

    def _freeze(self) -> None:
        self.backbone.requires_grad_(False)
        self.backbone.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        self.backbone.eval()
        return self


class IdentityNet(_FrozenNet):
    """Official `IDnet`: (N, 3, H, W) in [-1, 1] -> (N, 512) unit ArcFace features."""

    def __init__(self):
        super().__init__()
        self.backbone = ir_se50()
        self._freeze()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[2] != FRAME_SIZE:
            x = F.adaptive_avg_pool2d(x, (FRAME_SIZE, FRAME_SIZE))
        x = F.adaptive_avg_pool2d(x[:, :, ID_CROP[0], ID_CROP[1]], (ID_INPUT, ID_INPUT))
        return self.backbone(x)


class LandmarkNet(_FrozenNet):
    """Official `LNDnet`: (N, 3, 256, 256) in [-1, 1] (or an already cropped 224 px input) -> (N, 102)."""

    def __init__(self):
        super().__init__()
        self.backbone = MobileNetGDConv(136)
        # plain tensors in the official code: not part of the state dict
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1), persistent=False)
        self._freeze()

    def landmarks(self, x: torch.Tensor) -> torch.Tensor:
        """All 68 (x, y) landmarks in [0, 1] crop coordinates, (N, 68, 2)."""
        if x.shape[2] != LANDMARK_INPUT:  # the official test: any other size gets the 256 px centre crop
            x = x[:, :, LANDMARK_CROP, LANDMARK_CROP]
        x = ((x + 1) / 2 - self.mean) / self.std
        return self.backbone(x).clamp(0, 1).reshape(-1, 68, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.landmarks(x)[:, JAW_POINTS:, :].reshape(x.shape[0], -1)


class ParserNet(_FrozenNet):
    """Official `BGnet`: BiSeNet face parsing of (N, 3, H, W) in [-1, 1]; `forward` gives the (N, 1, 256, 256)
    float foreground mask of the image (`for_video=False`) or video (`for_video=True`) class set."""

    def __init__(self):
        super().__init__()
        self.backbone = BiSeNet(19)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1), persistent=False)
        self._freeze()

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 19, 512, 512) main-head class logits."""
        x = F.interpolate(x, (PARSER_INPUT, PARSER_INPUT), mode="nearest")
        x = (x.clip(-1, 1).add(1).div(2) - self.mean) / self.std
        return self.backbone(x, aux=False)

    @staticmethod
    def foreground(logits: torch.Tensor, for_video: bool = False) -> torch.Tensor:
        """(N, 1, 256, 256) float mask: 1 where the argmax class is none of the background classes."""
        labels = logits.argmax(dim=1, keepdim=True)
        classes = VIDEO_BACKGROUND_CLASSES if for_video else BACKGROUND_CLASSES
        keep = torch.ones_like(labels, dtype=torch.bool)
        for cls in classes:
            keep &= labels != cls
        return F.interpolate(keep.float(), (FRAME_SIZE, FRAME_SIZE), mode="nearest")

    def parse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits, image-set foreground mask, video-set foreground mask) with one parser call."""
        logits = self.logits(x)
        return logits, self.foreground(logits, False), self.foreground(logits, True)

    def forward(self, x: torch.Tensor, for_video: bool = False) -> torch.Tensor:
        return self.foreground(self.logits(x), for_video)


class DVAEncoder(nn.Module):
    """Official `DiffusionVideoAutoencoder` (the UNet's `encoder`): z_face = Linear(614 -> 512) of the
    identity and landmark features. Build, then load the released `encoder.*` tensors (or the three
    pretrained files into `idnet.backbone`, `lndnet.backbone`, `bgnet.backbone`)."""

    def __init__(self):
        super().__init__()
        self.idnet = IdentityNet()
        self.lndnet = LandmarkNet()
        self.bgnet = ParserNet()
        self.linear = nn.Linear(ID_DIM + LANDMARK_DIM, Z_FACE_DIM)

    def forward(self, id: torch.Tensor, lnd: torch.Tensor | None = None, return_id_feats: bool = False):
        """z_face of frames `id` (landmarks from `lnd`, default the same frames); with `return_id_feats`
        also the identity features."""
        id_feats = self.idnet(id)
        feats = self.forward_with_id(id_feats, id if lnd is None else lnd)
        return (feats, id_feats) if return_id_feats else feats

    def id_forward(self, id: torch.Tensor) -> torch.Tensor:
        return self.idnet(id)

    def forward_with_id(self, id_feats: torch.Tensor, lnd: torch.Tensor) -> torch.Tensor:
        """z_face from given identity features (e.g. the video average, (1, 512) or (N, 512): broadcast
        over the frames) and the per-frame landmarks of `lnd`."""
        return self.z_face(id_feats, self.lndnet(lnd))

    def z_face(self, id_feats: torch.Tensor, lnd_feats: torch.Tensor) -> torch.Tensor:
        """z_face of identity features (1 or N, 512) and landmark features (N, 102)."""
        if id_feats.shape[0] != lnd_feats.shape[0]:
            id_feats = id_feats.expand(lnd_feats.shape[0], -1)
        return self.linear(torch.cat([id_feats, lnd_feats], dim=1))

    def face_mask(self, x: torch.Tensor, for_video: bool = False) -> torch.Tensor:
        return self.bgnet(x, for_video=for_video)
