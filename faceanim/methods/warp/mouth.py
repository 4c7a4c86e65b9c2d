"""The inside of an opening mouth for the landmark warp.

When a target mouth opens wider than the source's, warping would stretch the lips (or the source's
thin gap between them) into the hole. `MouthInterior` paints the hole instead: a dark, shaded cavity
inside the target inner-lip polygon (points 60-67) and, when the source shows teeth, the source's own
teeth, attached to the lip they hang from and never stretched with the opening.

Positions in a mouth are taken in the mouth's own frame: `s` runs along the line between the inner
corners (0 at point 60, 1 at point 64), `t` is the distance in pixels across it, positive towards the chin.
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from ...face import inner_mouth_opening
from ...face.masks import face_width

INNER_LIPS = list(range(60, 68))
OUTER_LIPS = list(range(48, 60))
UPPER_INNER = [60, 61, 62, 63, 64]   # inner edge of the upper lip, corner to corner
LOWER_INNER = [60, 67, 66, 65, 64]   # inner edge of the lower lip, corner to corner
# The painted interior fades in over this much extra opening (in face widths) beyond the source's:
# a talking mouth crosses the source's opening all the time, and a hard switch would flicker.
OPENING_RAMP = 0.02
# Teeth detection samples the source gap on a grid of rows (fractions of the gap) by columns.
_GAP_ROWS, _GAP_COLUMNS = 8, 24
_TEETH_ROW_SCORE = 0.35     # mean teeth-likeness that makes a row of the gap count as teeth
_MIN_TEETH_PIXELS = 12.0    # fewer teeth-like pixels than this is noise, not teeth
# The cavity: darkened lip colour at the lips, near black deep inside (multipliers of the lip colour).
_EDGE_SHADE, _DEEP_SHADE = 0.38, 0.07


@dataclasses.dataclass(frozen=True)
class MouthFrame:
    """A mouth's own axes: origin at inner corner 60, `axis` towards corner 64, `down` across."""

    origin: np.ndarray
    axis: np.ndarray
    down: np.ndarray
    width: float                 # distance between the inner corners, pixels
    upper: np.ndarray            # (5, 2) (s, t) of the upper inner lip, corner to corner
    lower: np.ndarray            # (5, 2) (s, t) of the lower inner lip, corner to corner

    def to_mouth(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(s, t) of image points (..., 2)."""
        offset = points - self.origin
        return offset @ self.axis / self.width, offset @ self.down

    def to_image(self, s: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Image points (..., 2) of mouth coordinates."""
        return self.origin + (s * self.width)[..., None] * self.axis + np.asarray(t)[..., None] * self.down

    def upper_t(self, s: np.ndarray) -> np.ndarray:
        return _along(self.upper, s)

    def lower_t(self, s: np.ndarray) -> np.ndarray:
        return _along(self.lower, s)


def _along(curve: np.ndarray, s: np.ndarray) -> np.ndarray:
    """t of a lip curve at positions s (linear between its points; s forced increasing for np.interp)."""
    return np.interp(s, np.maximum.accumulate(curve[:, 0]), curve[:, 1])


def mouth_frame(landmarks: np.ndarray) -> MouthFrame:
    """The mouth frame of 68 landmarks."""
    points = np.asarray(landmarks, dtype=np.float64)
    origin = points[60]
    span = points[64] - origin
    width = max(float(np.hypot(*span)), 1e-6)
    axis = span / width
    frame = MouthFrame(origin, axis, np.array([-axis[1], axis[0]]), width, np.empty((5, 2)), np.empty((5, 2)))
    upper = np.stack(frame.to_mouth(points[UPPER_INNER]), axis=1)
    lower = np.stack(frame.to_mouth(points[LOWER_INNER]), axis=1)
    return dataclasses.replace(frame, upper=upper, lower=lower)


def _integer_box(points: np.ndarray, margin: int, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), half-open, around points with a margin, clipped to an image of `shape`."""
    x0, y0 = np.floor(points.min(axis=0)).astype(int) - margin
    x1, y1 = np.ceil(points.max(axis=0)).astype(int) + margin + 1
    return max(x0, 0), max(y0, 0), min(x1, shape[1]), min(y1, shape[0])


def polygon_mask(polygon: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A uint8 0/1 mask (h, w) of a polygon (N, 2) in pixel coordinates, drawn with sub-pixel vertices."""
    mask = np.zeros(shape, dtype=np.uint8)
    cv2.fillPoly(mask, [np.rint(polygon * 256).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=8)
    return mask


def _teeth_likeness(lab: np.ndarray, lip_lab: np.ndarray) -> np.ndarray:
    """0..1 per pixel: teeth are clearly lighter and much less red than the lips around them."""
    lip_lightness, lip_red = float(lip_lab[0]), float(lip_lab[1])
    lightness_needed = lip_lightness + 0.3 * (100.0 - lip_lightness)
    redness_allowed = max(0.5 * lip_red, 8.0)
    light = 1.0 / (1.0 + np.exp(-(lab[..., 0] - lightness_needed) / 3.0))
    pale = 1.0 / (1.0 + np.exp(-(redness_allowed - lab[..., 1]) / 3.0))
    return (light * pale).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class TeethTexture:
    """Teeth as the source shows them, in the mouth frame of the lip they hang from.

    `rgba` is (rows, columns, 4) float32: RGB 0..255 and coverage 0..1; column j is at s = j / (columns - 1),
    row i is i source pixels away from the lip edge, towards the opening."""

    rgba: np.ndarray
    lip: str   # "upper" or "lower"


class MouthInterior:
    """Paints the inside of a target mouth that opens wider than the source's (see the module doc).

    All per-source work happens here, once: `opening` (the source's `inner_mouth_opening`), the lip
    colour the cavity is shaded from, and `teeth`, the textures of the teeth the source shows (none,
    the upper row, or both rows)."""

    def __init__(self, image: np.ndarray, landmarks: np.ndarray):
        self._points = np.asarray(landmarks, dtype=np.float64)
        self.opening = inner_mouth_opening(self._points)
        self._face_width = face_width(self._points)
        x0, y0, x1, y1 = _integer_box(self._points[OUTER_LIPS], 3, image.shape[:2])
        crop = np.ascontiguousarray(image[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)])
        self._crop_origin = np.array([x0, y0], dtype=np.float64)
        lab = cv2.cvtColor(crop.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB) if crop.size else crop
        lips = self._lip_ring(crop.shape[:2]) if crop.size else np.zeros(crop.shape[:2], bool)
        self.teeth: tuple[TeethTexture, ...] = ()
        if lips.any():
            lip_rgb = np.median(crop[lips], axis=0)
            self.teeth = self._find_teeth(crop, _teeth_likeness(lab, np.median(lab[lips], axis=0)))
        else:  # the mouth is off the image or degenerate: a generic lip colour and no teeth
            lip_rgb = np.array([150.0, 70.0, 70.0])
        self._edge_colour = (lip_rgb * _EDGE_SHADE).astype(np.float32)
        self._deep_colour = (lip_rgb * _DEEP_SHADE).astype(np.float32)

    @property
    def has_teeth(self) -> bool:
        """Whether the source shows teeth (and so will the painted mouth)."""
        return bool(self.teeth)

    def _lip_ring(self, shape: tuple[int, int]) -> np.ndarray:
        """Boolean mask (in the crop) of the lips: inside the outer lip line, outside the inner one."""
        outer = polygon_mask(self._points[OUTER_LIPS] - self._crop_origin, shape)
        inner = polygon_mask(self._points[INNER_LIPS] - self._crop_origin, shape)
        return (outer > 0) & (inner == 0)

    def strength(self, target: np.ndarray) -> float:
        """0..1: how much the painted interior replaces the warped one for a target (0: not open wider)."""
        extra = inner_mouth_opening(target) - self.opening
        return float(np.clip(extra / OPENING_RAMP, 0.0, 1.0))

    def _find_teeth(self, crop: np.ndarray, likeness: np.ndarray) -> tuple[TeethTexture, ...]:
        """Teeth seen between the source's lips: rows of the gap that look like teeth, counted from
        each lip. Teeth from lip to lip (a smile) are taken as the upper row alone."""
        frame = mouth_frame(self._points)
        s = np.linspace(0.08, 0.92, _GAP_COLUMNS)
        top, gap = frame.upper_t(s), frame.lower_t(s) - frame.upper_t(s)
        fractions = (np.arange(_GAP_ROWS) + 0.5) / _GAP_ROWS
        where = frame.to_image(np.broadcast_to(s, (_GAP_ROWS, _GAP_COLUMNS)), top + fractions[:, None] * gap)
        scores = _sample(likeness, where - self._crop_origin)
        open_columns = gap >= 1.5
        pixels_per_sample = gap / _GAP_ROWS * frame.width * (s[1] - s[0])
        if not open_columns.any() or (scores * pixels_per_sample)[:, open_columns].sum() < _MIN_TEETH_PIXELS:
            return ()
        teeth_rows = scores[:, open_columns].mean(axis=1) >= _TEETH_ROW_SCORE
        upper_rows, lower_rows = _run_from_edge(teeth_rows), _run_from_edge(teeth_rows[::-1])
        if upper_rows == _GAP_ROWS:
            lower_rows = 0
        return tuple(self._texture(crop, likeness, frame, lip, rows / _GAP_ROWS)
                     for lip, rows in (("upper", upper_rows), ("lower", lower_rows)) if rows >= 2)

    def _texture(self, crop: np.ndarray, likeness: np.ndarray, frame: MouthFrame, lip: str,
                 depth_fraction: float) -> TeethTexture:
        """The teeth hanging from one lip, sampled along it; coverage is the teeth-likeness, cut where
        the source's gap (times the part of it the teeth fill) ends."""
        columns = max(int(np.ceil(frame.width)), 8)
        s = np.linspace(0.0, 1.0, columns)
        top, bottom = frame.upper_t(s), frame.lower_t(s)
        visible = depth_fraction * np.maximum(bottom - top, 0.0)
        depth = np.arange(int(np.ceil(visible.max())) + 2, dtype=np.float64)[:, None]
        t = top + depth if lip == "upper" else bottom - depth
        where = frame.to_image(np.broadcast_to(s, t.shape), t) - self._crop_origin
        colour = _sample(crop.astype(np.float32), where)
        coverage = _sample(likeness, where) * np.clip(visible + 0.5 - depth, 0.0, 1.0)
        # Everything between the lip's landmark line and the teeth (lip edge, gums) hangs from the lip
        # too: coverage only falls off below the teeth, where the cavity shows.
        coverage = np.maximum.accumulate(coverage[::-1], axis=0)[::-1]
        return TeethTexture(np.dstack([colour, coverage]).astype(np.float32), lip)

    def paint(self, canvas: np.ndarray, target: np.ndarray, strength: float) -> None:
        """Paint the inside of the `target` mouth (landmarks in `canvas` pixels) into `canvas` (uint8
        RGB, changed in place), blended by `strength`. Nothing is drawn outside the inner-lip polygon."""
        if strength <= 0:
            return
        x0, y0, x1, y1 = _integer_box(target[INNER_LIPS], 2, canvas.shape[:2])
        if x1 - x0 < 2 or y1 - y0 < 2:
            return
        points = target - [x0, y0]
        shape = (y1 - y0, x1 - x0)
        mask = polygon_mask(points[INNER_LIPS], shape) & polygon_mask(_rounded(points[INNER_LIPS]), shape)
        if not mask.any():
            return
        # The soft edge lies inside the polygon: alpha is 0 on its outline and 1 a few pixels in
        # (fewer in a narrow opening, which would otherwise never get dark).
        gap = float(np.linalg.norm(target[66] - target[62]))
        feather = max(0.5, min(0.006 * face_width(target), 0.12 * gap))
        alpha = np.clip(2 * cv2.GaussianBlur(mask.astype(np.float32), (0, 0), feather) - 1, 0, 1) * mask
        frame = mouth_frame(points)
        grid = np.stack(np.meshgrid(np.arange(shape[1]), np.arange(shape[0])), axis=-1).astype(np.float64)
        s, t = frame.to_mouth(grid)
        colour = self._cavity(mask, frame, s, t)
        scale = face_width(target) / self._face_width
        for texture in self.teeth:
            depth = (t - frame.upper_t(s) if texture.lip == "upper" else frame.lower_t(s) - t) / scale
            teeth = cv2.remap(texture.rgba, (s * (texture.rgba.shape[1] - 1)).astype(np.float32),
                              depth.astype(np.float32), cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            colour += (teeth[..., :3] - colour) * teeth[..., 3:]
        region = canvas[y0:y1, x0:x1]
        blend = (alpha * strength)[..., None]
        region[...] = np.clip(region + (colour - region) * blend + 0.5, 0, 255).astype(np.uint8)

    def _cavity(self, mask: np.ndarray, frame: MouthFrame, s: np.ndarray, t: np.ndarray) -> np.ndarray:
        """The empty mouth: darkened lip colour at the lips going to near black deep inside, darker
        under the upper lip (its shadow) than above the lower one."""
        inward = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
        top, bottom = frame.upper_t(s), frame.lower_t(s)
        half_gap = max(float(np.max(frame.lower[:, 1] - frame.upper[:, 1])) / 2, 1.0)
        depth = np.clip(inward / (0.8 * half_gap), 0.0, 1.0)
        depth = depth * depth * (3 - 2 * depth)  # smoothstep
        down = np.clip((t - top) / np.maximum(bottom - top, 1.0), 0.0, 1.0)
        shade = (0.75 + 0.4 * down)[..., None]
        return (self._edge_colour + (self._deep_colour - self._edge_colour) * depth[..., None]) * shade


def _sample(image: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Bilinear samples of an image at points (..., 2) (x, y); edge pixels repeat outside."""
    where = np.asarray(where, dtype=np.float32)
    return cv2.remap(image, np.ascontiguousarray(where[..., 0]), np.ascontiguousarray(where[..., 1]),
                     cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _rounded(polygon: np.ndarray, iterations: int = 2) -> np.ndarray:
    """The polygon with its corners cut (Chaikin): a mouth opening is round, its 8 landmarks are not."""
    for _ in range(iterations):
        following = np.roll(polygon, -1, axis=0)
        polygon = np.stack([0.75 * polygon + 0.25 * following, 0.25 * polygon + 0.75 * following], axis=1)
        polygon = polygon.reshape(-1, 2)
    return polygon


def _run_from_edge(rows: np.ndarray, slack: int = 1) -> int:
    """How many rows from the start belong to a run of True that begins within the first `slack` + 1
    rows (the row right at a lip is often lip-coloured); 0 if there is none."""
    start = next((i for i in range(min(slack + 1, len(rows))) if rows[i]), None)
    if start is None:
        return 0
    end = start
    while end < len(rows) and rows[end]:
        end += 1
    return end
