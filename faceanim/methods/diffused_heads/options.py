"""Diffused Heads' command-line options (registry hook; imports nothing heavy)."""
from __future__ import annotations


def add_options(add, command: str) -> None:
    if command in ("talk", "convert"):
        add("--audio-encoder", help="the speech encoder: audio_encoder.pt as released, or ours (or set "
                                    "FACEANIM_DIFFUSED_HEADS_AUDIO_ENCODER; a converted folder may hold it)")
    if command == "talk":
        add("--steps", type=int, help="DDPM steps per frame (default 100, as released; fewer = faster, respaced)")
        add("--seed", type=int, help="noise seed (default 0: the official stream of torch.manual_seed(0) on a CPU)")
        add("--stabilize", action="store_true", default=None,
            help="put the identity frame back into the motion frames every --segment-len frames (less drift)")
        add("--segment-len", type=int, help="frames between stabilisations (default 15)")
        add("--background", choices=("keep", "green"),
            help="'green' replaces the photo's background around the head by flat green, as the CREMA "
                 "training clips had (default keep)")
        add("--run-audio-archive", dest="run_audio_archive", action="store_true", default=None,
            help="RUN the TorchScript speech encoder file itself instead of reading its tensors: this executes "
                 "code from the file; only for files you trust")
    if command == "train":
        add("--init", help="start from a converted folder, crema_script.pt or a Lightning .ckpt")
        add("--audio-encoder", help="the SDA speech encoder, when the config's audio features are 'sda'")
        add("--wav2vec2", help="a wav2vec2 model folder (HF layout), when the audio features are 'wav2vec2'")
