"""Diffused Heads (Stypułkowski et al., WACV 2024): a talking head generated frame by frame by a DDPM that
sees the identity frame, the two previous frames and a window of speech embeddings.
Names are imported on first use (`faceanim.lazy`), so the CLI can read `options` without torch."""
from ...lazy import lazy_exports

__all__ = ["DiffusedHeadsConfig", "UNetConfig", "DiffusedHeadsUNet", "DiffusedHeadsPipeline", "load_unet",
           "SDAAudioEncoder", "AudioEncoderConfig", "load_audio_encoder", "encode_speech"]
__getattr__, __dir__ = lazy_exports(__name__, {
    "DiffusedHeadsConfig": ".config", "UNetConfig": ".config", "DiffusedHeadsUNet": ".model",
    "DiffusedHeadsPipeline": ".pipeline", "load_unet": ".weights", "SDAAudioEncoder": ".audio_encoder",
    "AudioEncoderConfig": ".audio_encoder", "load_audio_encoder": ".audio_encoder", "encode_speech": ".audio_encoder"})
