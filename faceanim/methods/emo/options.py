"""EMO's command-line options (registry hook; imports nothing heavy)."""
from __future__ import annotations


def add_options(add, command: str) -> None:
    if command in ("talk", "convert"):
        add("--vae", help="the VAE: sd-vae-ft-mse, or an SD-1.5 folder (its vae/) (or set FACEANIM_EMO_VAE; a Hallo "
                          "pretrained_models folder or a converted folder supplies it)")
        add("--preset", dest="preset_name", metavar="NAME",
            help="the settings a bare net.pth is read with: hallo (Hallo's release, default) or emo (the paper's "
                 "design, as `faceanim train emo` makes it)")
    if command == "talk":
        add("--wav2vec2", help="a wav2vec2 model folder (HF layout, wav2vec2-base-960h for Hallo; or set "
                               "FACEANIM_WAV2VEC2)")
        add("--face-analysis", dest="face_analysis",
            help="insightface's recognition model w600k_r50.onnx (buffalo_l), for models with an identity "
                 "embedding (or set FACEANIM_EMO_FACE_ANALYSIS)")
        add("--steps", type=int, help="DDIM steps per clip (default 40)")
        add("--guidance", type=float, help="classifier-free guidance scale (default 3.5; <= 1: none)")
        add("--seed", type=int, help="generator seed (default 42, as Hallo)")
        add("--pose-weight", dest="pose_weight", type=float,
            help="weight of the audio attention on the background/pose region (default 1.0)")
        add("--face-weight", dest="face_weight", type=float, help="... on the face region (default 1.0)")
        add("--lip-weight", dest="lip_weight", type=float, help="... on the lips (default 1.0)")
        add("--face-expand-ratio", dest="face_expand_ratio", type=float,
            help="growth of the face box that the face locator and the masks see (default 1.2)")
        add("--face-region", dest="face_region",
            help="the face region x0,y0,x1,y1 as fractions of the 512x512 crop (instead of the detected box)")
        add("--head-speed", dest="head_speed", type=float,
            help="EMO speed control: head rotation in degrees per frame (models with speed layers)")
        add("--head-speed-curve", dest="head_speed_curve",
            help="EMO speed control per frame: a text file of degrees-per-frame values (the last one holds)")
        add("--clip-length", dest="clip_length", type=int, help="frames per clip (default: the model's)")
        add("--motion-frames", dest="motion_frames", type=int,
            help="frames of the previous clip each clip continues from (default: the model's)")
        add("--color-match", dest="color_match", action="store_true", default=None,
            help="anchor the colour: shift every frame's mean face colour back to the photo's (long videos)")
        add("--reanchor-every", dest="reanchor_every", type=int,
            help="restart the motion frames from the photo every N clips (long videos; default 0: never)")
        add("--crop-expand", dest="crop_expand", type=float,
            help="crop side over face-box side (default 2.4)")
