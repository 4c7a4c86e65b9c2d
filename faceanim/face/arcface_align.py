"""The face crop that the ArcFace IR-SE50 identity network of pSp / e4e / Diffusion Video Autoencoders sees.

Those projects work on FFHQ-aligned 256x256 faces and, before the network, keep rows 35:223 and columns
32:220 of them (a 188x188 window round the inner face that drops most hair and background; pSp's
IDLoss.extract_feats and DVA's IDnet.forward), then average-pool that window to 112x112 (adaptive average
pooling, done in `faceanim.metrics.identity`). This module makes the 188x188 window from any frame and
its 68 dlib landmarks, aligning with `ffhq_align` (the NVlabs FFHQ rule, one similarity warp).
"""
from __future__ import annotations

import numpy as np

from .crop import ffhq_align

ALIGNED_SIZE = 256
CROP_ROWS = slice(35, 223)
CROP_COLUMNS = slice(32, 220)
CROP_SIZE = 188


def arcface_crop(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The (188, 188, 3) uint8 inner-face window of the FFHQ-aligned 256x256 crop of the face at `landmarks`."""
    aligned, _ = ffhq_align(image, landmarks, ALIGNED_SIZE)
    return np.ascontiguousarray(aligned[CROP_ROWS, CROP_COLUMNS])
