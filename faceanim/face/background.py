"""A flat background behind the head of a face crop, from its 68 landmarks alone (no segmentation).

Diffused Heads' released CREMA model was trained on CREMA-D clips, all on a green background; its
README suggests aligning a custom identity frame with face-processor (our "sda" crop) and replacing the
background with green. We have no person-segmentation network, so the head region here is geometric,
built in the face's own frame (its "up" is perpendicular to the eye line, its unit sizes are the jaw
width `face_width` and the brows-to-chin height):

- the face: `masks.face_outline`, the convex hull of the jaw line and the brows, the brows raised by
  `forehead` x brows-to-chin height;
- the cranium: an egg centred between the jaw ends at the height of the brows, `head_width` x jaw width
  across, reaching `head_top` x brows-to-chin height above the brows (the upper forehead, the top of the
  skull and close-cut hair) and 0.6 x that height below them (temples and ears, tapering into the jaw);
- the neck: a band `neck_width` x jaw width wide, centred under the chin, from the middle of the jaw
  down to `neck` x brows-to-chin height below the chin.

Everything in the union (grown by one pixel) keeps its pixels exactly; outside it the crop fades to `color` over `feather` x
jaw width (a smoothstep of the distance to the region), so the edge is soft and lies in the background,
never inside the head. What it does not do: follow the real silhouette. Hair that stands out from the
skull, long hair, ears that stick out, hats and glasses' arms beyond the egg are painted over;
background between the egg and a narrow head or in the gaps beside the neck is kept; the
shoulders and clothes are replaced except where the neck band covers them; a strongly turned head
(profile) makes the egg too narrow on one side. It suits frontal faces, as CREMA's are.

Colour: the sources (the Diffused Heads README and training code, face-processor, the CREMA-D
repository) do not give the green of CREMA-D's backdrop, so the default is the pure chroma green
(0, 255, 0); pass `color` to match a measured backdrop (a real green screen under studio light is a
darker, less saturated green).
"""
from __future__ import annotations

import cv2
import numpy as np

from ..errors import InputError
from ._image import as_landmarks, as_rgb_image
from .landmarks import eye_axis
from .masks import BROWS, face_outline, face_width

CHROMA_GREEN = (0, 255, 0)

_SHIFT = 8  # fixed-point bits for sub-pixel polygon drawing
_GROW = 1.0  # pixels: the drawn region is grown by this much, so no pixel the outline touches is lost
_HEAD_BELOW = 0.6  # the cranium's lower half reaches this x brows-to-chin height below the brows


def head_region(landmarks: np.ndarray, *, forehead: float = 0.3, head_width: float = 1.2, head_top: float = 0.85,
                neck: float = 0.6, neck_width: float = 0.65) -> list[np.ndarray]:
    """The convex polygons (each (N, 2), in the landmarks' pixel coordinates) whose union is the head
    region described in the module docstring: the face outline, the cranium ellipse and the neck band."""
    points = as_landmarks(landmarks)
    if min(forehead, head_width, head_top, neck, neck_width) < 0:
        raise InputError(None, "head_region: all sizes must be >= 0")
    across = eye_axis(points)
    up = np.array([across[1], -across[0]])
    width = face_width(points)
    chin = points[8]
    brows = points[BROWS].mean(axis=0)
    height = max(float(np.dot(brows - chin, up)), 0.0)  # brows to chin, along the face's up
    jaw_mid = (points[0] + points[16]) / 2
    polygons = [face_outline(points, forehead)]

    # The cranium: an egg of two half ellipses on the brow line, `head_top` up and _HEAD_BELOW down (to
    # about the nose's tip, so that its sides taper into the jaw line past the temples and the ears).
    center = jaw_mid + up * float(np.dot(brows - jaw_mid, up))
    half_across = head_width * width / 2
    if half_across > 0 and height > 0:
        angles = np.linspace(0.0, 2 * np.pi, 97)[:-1]
        reach = np.where(np.sin(angles) >= 0, head_top, _HEAD_BELOW) * height
        egg = center + np.outer(np.cos(angles) * half_across, across) + np.outer(np.sin(angles) * reach, up)
        polygons.append(egg)

    # The neck: from the level of the middle of the jaw (points 4 and 12, inside the face outline) down.
    if neck > 0 and neck_width > 0:
        foot = chin - up * neck * height
        top = chin + up * float(np.dot((points[4] + points[12]) / 2 - chin, up))
        half = across * neck_width * width / 2
        polygons.append(np.stack([top - half, top + half, foot + half, foot - half]))
    return polygons


def head_mask(landmarks: np.ndarray, shape: tuple[int, int], *, feather: float = 0.06, **region) -> np.ndarray:
    """A float32 (h, w) mask: exactly 1 on the head region (`head_region`, keywords passed on; drawn
    and grown by one pixel), falling to 0 over `feather` x jaw width outside it (smoothstep of the
    distance to the region)."""
    if feather < 0:
        raise InputError(None, f"head_mask: feather must be >= 0, got {feather}")
    height, width = int(shape[0]), int(shape[1])
    inside = np.zeros((height, width), dtype=np.uint8)
    for polygon in head_region(landmarks, **region):
        fixed = np.rint(np.asarray(polygon) * (1 << _SHIFT)).astype(np.int32)
        cv2.fillConvexPoly(inside, fixed, 1, lineType=cv2.LINE_8, shift=_SHIFT)
    if inside.all() or not inside.any():
        return inside.astype(np.float32)
    # Distance to the region, less the one-pixel growth that keeps rasterisation from cutting into it.
    distance = cv2.distanceTransform(1 - inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE) - _GROW
    ramp = feather * face_width(landmarks)
    if ramp <= 0:
        return (distance <= 0).astype(np.float32)
    t = np.clip(distance / ramp, 0.0, 1.0)
    return (1.0 - t * t * (3.0 - 2.0 * t)).astype(np.float32)


def replace_background(crop: np.ndarray, landmarks: np.ndarray, color: tuple[int, int, int] = CHROMA_GREEN, *,
                       feather: float = 0.06, **region) -> np.ndarray:
    """A copy of the uint8 (h, w, 3) `crop` with everything outside the head (estimated from the 68
    `landmarks`, in crop pixels) turned into the flat `color`, with a soft edge of `feather` x jaw width
    that lies outside the head region. Pixels inside the region are returned unchanged. Keywords of
    `head_region` (forehead, head_width, head_top, neck, neck_width) adjust the region."""
    crop = as_rgb_image(crop, "crop")
    fill = np.asarray(color, dtype=np.float32).reshape(-1)
    if fill.shape != (3,) or not ((fill >= 0) & (fill <= 255)).all():
        raise InputError(None, f"replace_background: color must be three values in 0-255, got {color!r}")
    alpha = head_mask(landmarks, crop.shape[:2], feather=feather, **region)[..., None]
    blended = crop.astype(np.float32) * alpha + fill * (1.0 - alpha)
    out = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    keep = alpha[..., 0] >= 1.0
    out[keep] = crop[keep]
    return out
