"""DVA's command-line options (registry hook; imports nothing heavy)."""
from __future__ import annotations

import argparse


def add_options(add, command: str) -> None:
    if command in ("edit", "convert"):
        add("--classifier", help="the attribute classifier: diffusion_video_autoencoder_cls/last.ckpt as released "
                                 "(or set FACEANIM_DVA_CLASSIFIER; a converted folder may hold it)")
        add("--identity-stats", help="identity statistics latent.pkl for the z-normalised edit (default: those "
                                     "stored with the classifier, or in a converted folder)")
        add("--weights", choices=("ema", "model"),
            help="which weights of a Lightning checkpoint: ema (default, as the official editing) or model")
    if command == "edit":
        add("--attribute", help="a classifier attribute to edit, e.g. Eyeglasses (see --list-attributes)")
        add("--list-attributes", action="store_true", help="list the classifier's attributes and exit")
        add("--scale", type=float, help="edit strength, + or - (default 0.3 for an attribute, 1.0 for a text "
                                        "edit: the official scripts' defaults)")
        add("--normalize", action=argparse.BooleanOptionalAction,
            help="edit in the z-normalised identity space (default on, as the official script)")
        add("--text-from", help="text edit: the neutral description, e.g. 'face'")
        add("--text-to", help="text edit: the target description, e.g. 'face with a beard'")
        add("--clip", help="a CLIP model folder in the transformers layout, e.g. clip-vit-base-patch16 "
                           "(or set FACEANIM_CLIP)")
        add("--clip-iterations", type=int, help="text edit: optimisation steps of the identity code (default 2000, "
                                                         "as the official script)")
        add("--clip-lr", type=float, help="text edit: Adam learning rate (official 0.002)")
        add("--clip-loss-w", type=float, help="text edit: weight of the directional CLIP loss (official 3)")
        add("--id-loss-w", type=float, help="text edit: weight of the identity loss (official 5)")
        add("--l1-loss-w", type=float, help="text edit: weight of the masked L1 loss (official 5)")
        add("--n-train-step", type=int, help="text edit: DDIM steps of the optimised decoding path (official 5)")
        add("--steps", type=int, help="DDIM steps of the inversion and of the decoding (default 100; "
                                      "1000 as released; see the README's measurement)")
    if command == "train":
        add("--init", help="start from a DVA checkpoint or converted folder (its frozen nets included)")
        add("--idnet", help="ArcFace model_ir_se50.pth (training from scratch)")
        add("--lndnet", help="mobilenet_224_model_best_gdconv_external.pth.tar (training from scratch)")
        add("--bgnet", help="BiSeNet 79999_iter.pth (training from scratch)")
        add("--identity-stats", action="store_true",
            help="compute the identity statistics (latent.pkl) over the whole dataset instead of training")
        add("--identity-stats-file", help="classifier stage: the latent.pkl to z-normalise with (default: "
                                          "computed over the labelled faces)")
