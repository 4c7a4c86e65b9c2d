"""`faceanim convert diffused_heads`: the released `crema_script.pt` (or a Lightning `.ckpt`, or a state
dict) and, optionally, `audio_encoder.pt` as one converted folder (`config.json` + `model.safetensors`)
that `DiffusedHeadsPipeline.from_pretrained` loads alone. Neither archive's code is run: their tensors
are read (`faceanim.jit_archive`). The folder is written atomically; the inputs' SHA-256 go into the
safetensors metadata and the report."""
from __future__ import annotations

import os

from ...checkpoints import Conversion, check_conversion_paths
from .weights import load_model, save_converted


def convert_official(checkpoint: str | os.PathLike, output: str | os.PathLike, *,
                     audio_encoder: str | os.PathLike | None = None) -> Conversion:
    from .audio_encoder import load_audio_encoder

    paths = {"checkpoint": checkpoint, **({"audio_encoder": audio_encoder} if audio_encoder else {})}
    check_conversion_paths(paths, output)
    config, unet, _ = load_model(checkpoint)
    audio = None
    if audio_encoder is not None:
        encoder = load_audio_encoder(audio_encoder)
        audio = (encoder.config, encoder.state_dict())
    conversion = Conversion.of(output, paths, tuple(paths))
    save_converted(output, config, unet.state_dict(), audio_encoder=audio, metadata=conversion.metadata())
    return conversion
