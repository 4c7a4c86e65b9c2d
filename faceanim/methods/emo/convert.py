"""`faceanim convert emo`: Hallo's `net.pth` (or its `pretrained_models` folder) and, optionally, the VAE as one
converted folder (`config.json` + `model.safetensors`) that `EMOPipeline.from_pretrained` reads alone (wav2vec2 and
the identity network stay separate files). Nothing in the inputs is executed (weights-only reading); the inputs'
SHA-256 go into the safetensors metadata and the report."""
from __future__ import annotations

import os
from pathlib import Path

from ...checkpoints import Conversion, check_conversion_paths
from .weights import hallo_layout, load_model, load_vae, resolve_checkpoint, save_converted


def convert_official(checkpoint: str | os.PathLike, output: str | os.PathLike, *, vae: str | os.PathLike | None = None,
                     preset_name: str | None = None) -> Conversion:
    net = resolve_checkpoint(checkpoint)
    vae = vae or hallo_layout(net).get("vae")
    paths = {"checkpoint": net}
    check_conversion_paths(paths, output)
    config, model = load_model(net, preset=preset_name)
    vae_model = load_vae(vae) if vae is not None else None
    components = ("checkpoint", "vae") if vae_model is not None else ("checkpoint",)
    conversion = Conversion.of(output, paths, components)
    metadata = conversion.metadata()
    if vae is not None:
        metadata["vae_folder"] = Path(vae).name
    save_converted(output, config, model.state_dict(), vae=vae_model, metadata=metadata)
    return conversion
