"""Tiny random-weight files in the layouts EMO's users have, written by the tests: Hallo's `pretrained_models`
folder (hallo/net.pth, sd-vae-ft-mse/, stable-diffusion-v1-5/{unet,vae}/, motion_module/mm_sd_v15_v2.ckpt,
wav2vec/wav2vec2-base-960h/, face_analysis/models/w600k_r50.onnx).

The model is EMO's/Hallo's architecture at small widths (32/64/64/64, 4 heads as the SD config states, 8 motion
heads as Hallo's unet.yaml) for 128 px crops (the SD UNet's sample_size 16). Every parameter is random, the
zero-initialised ones included, so that every condition reaches the output."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from faceanim.methods.emo.config import EMOConfig, tiny
from faceanim.methods.emo.model import EMOModel
from faceanim.methods.emo.reference import reference_unet_config

WAV2VEC = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=37,
               conv_dim=(16,) * 7, conv_stride=(5, 2, 2, 2, 2, 2, 2), conv_kernel=(10, 3, 3, 3, 3, 2, 2),
               num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
VAE = dict(block_out_channels=[32, 32, 64, 64], layers_per_block=1, latent_channels=4, norm_num_groups=32,
           down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4, sample_size=128)


def native_config(design: str = "hallo") -> EMOConfig:
    # 8 motion heads as Hallo's configs/unet/unet.yaml: head counts are not in a net.pth's shapes
    config = tiny(design).replace(motion_heads=8, audio_blocks=3, audio_channels=32)
    return config.replace(clip_length=16) if design == "hallo" else config.replace(clip_length=8)


def randomised(module: torch.nn.Module, seed: int, scale: float = 0.05) -> torch.nn.Module:
    """Every parameter redrawn around its initial value (norm gains near 1), so none stays zero."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator) * scale
            if name.endswith("weight") and parameter.ndim == 1:      # norms: keep the gain near 1
                parameter.copy_(1 + noise)
            else:
                parameter.copy_(noise * 4 if parameter.ndim > 1 else noise)
    return module.eval()


def write_wav2vec(folder: Path) -> Path:
    import transformers

    torch.manual_seed(0)
    transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(**WAV2VEC)).save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor().save_pretrained(folder)
    return folder


def write_vae(folder: Path, seed: int = 3):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    vae = AutoencoderKL(**VAE)
    vae.save_pretrained(folder, safe_serialization=True)
    return vae


def write_sd_unet(folder: Path, config: EMOConfig, state: dict) -> Path:
    """An SD-1.5 `unet/` folder whose UNet is the model's ReferenceNet (output head added)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    settings = {**reference_unet_config(config), "_class_name": "UNet2DConditionModel"}
    settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.items()}
    (folder / "config.json").write_text(json.dumps(settings))
    tensors = {k: v.contiguous() for k, v in state.items()}
    width = config.block_out_channels[0]
    tensors.update({"conv_norm_out.weight": torch.ones(width), "conv_norm_out.bias": torch.zeros(width),
                    "conv_out.weight": torch.zeros(config.out_channels, width, 3, 3),
                    "conv_out.bias": torch.zeros(config.out_channels)})
    save_file(tensors, str(folder / "diffusion_pytorch_model.safetensors"))
    return folder


def write_hallo_layout(root: Path, design: str = "hallo", seed: int = 1) -> dict[str, Path]:
    """Hallo's pretrained_models folder; returns the paths of its parts and the model written."""
    from tests.face.onnx_graphs import GraphBuilder, write_onnx

    root.mkdir(parents=True, exist_ok=True)
    config = native_config(design)
    torch.manual_seed(seed)
    model = randomised(EMOModel(config), seed)
    (root / "hallo").mkdir(exist_ok=True)
    torch.save(model.state_dict(), root / "hallo" / "net.pth")
    write_vae(root / "sd-vae-ft-mse")
    sd = root / "stable-diffusion-v1-5"
    write_sd_unet(sd / "unet", config, model.reference_unet.state_dict())
    write_vae(sd / "vae")
    (root / "motion_module").mkdir(exist_ok=True)
    motion = {k: v for k, v in model.denoising_unet.state_dict().items() if ".motion_modules." in k}
    torch.save(motion, root / "motion_module" / "mm_sd_v15_v2.ckpt")
    write_wav2vec(root / "wav2vec" / "wav2vec2-base-960h")
    onnx_dir = root / "face_analysis" / "models"
    onnx_dir.mkdir(parents=True, exist_ok=True)
    write_onnx(onnx_dir / "w600k_r50.onnx", GraphBuilder(seed, folded=True).build([1, 1, 1, 1]))
    return {"root": root, "net": root / "hallo" / "net.pth", "vae": root / "sd-vae-ft-mse", "base_model": sd,
            "motion_module": root / "motion_module" / "mm_sd_v15_v2.ckpt",
            "wav2vec2": root / "wav2vec" / "wav2vec2-base-960h", "face_analysis": onnx_dir / "w600k_r50.onnx",
            "model": model, "config": config}
