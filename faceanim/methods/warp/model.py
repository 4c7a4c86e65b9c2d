"""The image engine of the `warp` method: deforms one source photo so that its 68 landmarks move to
target positions (piecewise-affine, backward mapped), keeping everything away from the face still.

All per-source work happens once, in `LandmarkWarper.__init__`: still anchor points around the face,
one triangulation of landmarks + anchors reused for every target, the region that may change, the
mouth's colours and teeth. `warp` is the per-frame work only, and it scales with the face, not the
image: the displacement field is computed at a working resolution where the face is about
`_WORK_FACE_PX` wide, smoothed, and only the region of interest is resampled at full resolution.
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np
from scipy import ndimage
from scipy.spatial import Delaunay

from ...errors import InputError
from ...face import as_landmarks, as_rgb_image, box_from_landmarks
from .mouth import INNER_LIPS, OUTER_LIPS, MouthInterior, mouth_frame, polygon_mask

RING_POINTS = 20
_WORK_FACE_PX = 160.0      # faces bigger than this get their displacement field computed downscaled
_SMOOTH_SIGMA = 0.015      # Gaussian on the displacement field (face sizes): hides piecewise-affine creases
_MAX_MOVE = 0.5            # a landmark may move at most this fraction of its distance to the still ring
_TOPOLOGY_GAP = 0.15       # inner lips are held this far apart (x mouth width) while triangulating
_LOWER_LIP = [55, 56, 57, 58, 59, 65, 66, 67]
_EYES = (list(range(36, 42)), list(range(42, 48)))
# Fold-overs: a triangle whose target area falls below this fraction of its source area gets its corners
# pulled back towards the source (halfway per step; the last steps all the way) until none is left.
# Triangles inside the mouth and eyes may close, and turn over by this much (x face size squared).
_MIN_AREA_RATIO = 0.01
_CLOSING_OVERLAP = 1e-4
_UNFOLD_STEPS, _UNFOLD_SNAPS = 12, 3
_MAX_REFINEMENTS = 6
_MIN_FACE_PX = 8.0
# The displacement is zero up to _TAPER_START working pixels inside the ring, then ramps to full over
# _TAPER_RAMP pixels: upsampling then cannot carry it outside the ring.
_TAPER_START, _TAPER_RAMP = 3.0, 6.0


def _checked_image(image: np.ndarray) -> np.ndarray:
    image = as_rgb_image(image, "warp source")
    if min(image.shape[:2]) < 8:
        raise InputError(None, f"warp source: image of {image.shape[1]}x{image.shape[0]} is too small")
    return np.array(image, order="C")  # our own copy: the caller may reuse its buffer


@dataclasses.dataclass(frozen=True)
class _Mesh:
    """A fixed triangulation: vertex v sits at `weights[v] @ landmarks + fixed[v]` (landmarks, points
    on lip edges between two landmarks, still anchors). Triangles are counter-clockwise (y down)."""

    weights: np.ndarray     # (V, 68)
    fixed: np.ndarray       # (V, 2)
    triangles: np.ndarray   # (T, 3) vertex indices

    def vertices(self, landmarks: np.ndarray) -> np.ndarray:
        return self.weights @ landmarks + self.fixed


def _signed_areas(corners: np.ndarray) -> np.ndarray:
    """Twice the signed area of triangles (T, 3, 2); positive for the orientation our meshes use."""
    ab, ac = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    return ab[:, 0] * ac[:, 1] - ab[:, 1] * ac[:, 0]


def _edges(triangles: np.ndarray) -> set[tuple[int, int]]:
    pairs = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    return set(map(tuple, np.sort(pairs, axis=1).tolist()))


def _conforming_mesh(topology: np.ndarray, anchors: np.ndarray, constraints: list[tuple[int, int]]) -> _Mesh:
    """Delaunay triangulation of landmarks (placed as `topology`) + anchors in which every constraint
    edge (lip lines, the ring) is a union of triangle edges: missing ones are split at their midpoint
    (a new vertex that moves with its two ends) and the points triangulated again."""
    weights = np.vstack([np.eye(68), np.zeros((len(anchors), 68))])
    fixed = np.vstack([np.zeros((68, 2)), anchors])
    for _ in range(_MAX_REFINEMENTS):
        points = weights @ topology + fixed
        triangles = Delaunay(points).simplices
        present = _edges(triangles)
        missing = [edge for edge in constraints if tuple(sorted(edge)) not in present]
        if not missing:
            break
        for a, b in missing:
            constraints.remove((a, b))
            middle = len(weights)
            weights = np.vstack([weights, (weights[a] + weights[b]) / 2])
            fixed = np.vstack([fixed, (fixed[a] + fixed[b]) / 2])
            constraints += [(a, middle), (middle, b)]
    points = weights @ topology + fixed
    backwards = _signed_areas(points[triangles]) < 0
    triangles[backwards] = triangles[backwards][:, ::-1]
    return _Mesh(weights, fixed, np.ascontiguousarray(triangles))


def _topology_points(landmarks: np.ndarray) -> np.ndarray:
    """The landmarks with the lower lip moved down just enough that the inner lips are apart, so that
    a closed source mouth still gets separate upper-lip, lower-lip and mouth-interior triangles."""
    frame = mouth_frame(landmarks)
    gaps = [frame.lower_t(s) - frame.upper_t(s) for s in frame.upper[1:4, 0]]
    drop = max(0.0, _TOPOLOGY_GAP * frame.width - min(gaps))
    points = landmarks.copy()
    points[_LOWER_LIP] += drop * frame.down
    return points


def _anchor_ring(landmarks: np.ndarray, distance: float) -> np.ndarray:
    """RING_POINTS points exactly `distance` pixels outside the landmarks' convex hull, all round it
    (in angular order): for each direction, the hull's extreme point in it, moved out along it."""
    angles = np.linspace(0.0, 2 * np.pi, RING_POINTS, endpoint=False)
    directions = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    extreme = landmarks[np.argmax(landmarks @ directions.T, axis=0)]
    return extreme + distance * directions


def _frame_box(ring: np.ndarray, landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(x0, y0, x1, y1) of the still frame: the ring's box, cut to the image (grown to hold the landmarks)."""
    low = np.minimum([0.0, 0.0], landmarks.min(axis=0) - 1)
    high = np.maximum([shape[1] - 1.0, shape[0] - 1.0], landmarks.max(axis=0) + 1)
    return np.concatenate([np.maximum(ring.min(axis=0), low), np.minimum(ring.max(axis=0), high)])


def _frame_anchors(ring: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, int]:
    """(anchors, how many of them are ring points): the ring clipped into the box, near-duplicates
    merged, in angular order; then the box's corners and edge midpoints that lie outside that ring."""
    x0, y0, x1, y1 = box
    ring = np.clip(ring, [x0, y0], [x1, y1])
    ring = ring[np.r_[True, np.linalg.norm(np.diff(ring, axis=0), axis=1) > 0.5]]
    if len(ring) > 1 and np.linalg.norm(ring[0] - ring[-1]) <= 0.5:
        ring = ring[:-1]
    xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
    border = np.array([[x0, y0], [xm, y0], [x1, y0], [x1, ym], [x1, y1], [xm, y1], [x0, y1], [x0, ym]])
    contour = ring.astype(np.float32).reshape(-1, 1, 2)
    outside = [cv2.pointPolygonTest(contour, (float(x), float(y)), True) < -0.5 for x, y in border]
    return np.vstack([ring, border[outside]]), len(ring)


def _pixel_box(box: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """The pixels (x0, y0, x1, y1), half-open, of a box in an image of `shape`; InputError if none."""
    x0, y0 = max(int(np.floor(box[0])), 0), max(int(np.floor(box[1])), 0)
    x1, y1 = min(int(np.ceil(box[2])) + 1, shape[1]), min(int(np.ceil(box[3])) + 1, shape[0])
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise InputError(None, "warp source landmarks: the face lies outside the image")
    return x0, y0, x1, y1


def _outline_edges() -> list[tuple[int, int]]:
    """The lip lines and eye outlines as landmark index pairs (closed polygons)."""
    return [(points[i], points[(i + 1) % len(points)]) for points in (INNER_LIPS, OUTER_LIPS, *_EYES)
            for i in range(len(points))]


def _backward_affines(target: np.ndarray, source: np.ndarray) -> np.ndarray:
    """(T, 2, 3): per triangle, the affine map from target to source corners minus the identity, so that
    `affine @ (x, y, 1)` is the displacement to sample from. Degenerate targets get zeros."""
    design = np.concatenate([target, np.ones(target.shape[:2] + (1,))], axis=2)  # rows (x, y, 1)
    usable = np.abs(np.linalg.det(design)) > 1e-9
    design[~usable] = np.eye(3)
    solution = np.linalg.solve(design, source)  # (T, 3, 2): design @ solution = source
    affines = solution.transpose(0, 2, 1) - np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    affines[~usable] = 0.0
    return affines


def _shift_fraction(rest: np.ndarray, shift: np.ndarray, limits: np.ndarray, steps: int = 20) -> float:
    """The largest fraction of `shift` (of 1/steps, 2/steps, ...) that takes no more points (68, 2) past
    their move limits than `rest` alone does."""
    fractions = np.linspace(1.0, 0.0, steps + 1)
    moves = rest[None] + fractions[:, None, None] * shift
    over = (np.linalg.norm(moves, axis=2) > limits[None] + 1e-9).sum(axis=1)
    return float(fractions[np.argmax(over <= over[-1])])


def _inside(polygon: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Which points lie strictly inside a polygon."""
    contour = polygon.astype(np.float32).reshape(-1, 1, 2)
    return np.array([cv2.pointPolygonTest(contour, (float(x), float(y)), False) > 0 for x, y in points])


class LandmarkWarper:
    """Deforms one source image so that its landmarks move to target landmarks (piecewise-affine).

    `region` is how far beyond the landmarks (in face sizes) the image may move: a ring of still anchor
    points sits there, and every pixel outside it is returned bit-exactly. With `render_mouth`, a target
    mouth that opens wider than the source's gets a painted interior (cavity, and the source's teeth if
    it shows them) instead of stretched lips.
    """

    def __init__(self, image: np.ndarray, landmarks: np.ndarray, *, region: float = 0.7,
                 render_mouth: bool = True):
        self._image = _checked_image(image)
        self._landmarks = as_landmarks(landmarks, "warp source landmarks")
        if not (np.isfinite(region) and region > 0):
            raise InputError(None, f"warp: region must be a positive number of face sizes, got {region}")
        face_size = box_from_landmarks(self._landmarks).width
        if face_size < _MIN_FACE_PX or np.ptp(self._landmarks, axis=0).min() < 1:
            raise InputError(None, f"warp source landmarks: a face of {face_size:.1f} px is too small to warp")
        ring = _anchor_ring(self._landmarks, region * face_size)
        box = _frame_box(ring, self._landmarks, self._image.shape[:2])
        anchors, ring_count = _frame_anchors(ring, box)
        self._roi = _pixel_box(box, self._image.shape[:2])
        self._origin = np.array(self._roi[:2], dtype=np.float64)
        ring_edges = [(68 + i, 68 + (i + 1) % ring_count) for i in range(ring_count)]
        topology = _topology_points(self._landmarks)
        self._mesh = _conforming_mesh(topology, anchors, _outline_edges() + ring_edges)
        self._source_vertices = self._mesh.vertices(self._landmarks) - self._origin
        self._source_corners = self._source_vertices[self._mesh.triangles]
        self._classify_triangles(topology, face_size)
        ring_contour = anchors[:ring_count]
        self._move_limits = _MAX_MOVE * np.maximum(
            [cv2.pointPolygonTest(ring_contour.astype(np.float32).reshape(-1, 1, 2), (float(x), float(y)), True)
             for x, y in self._landmarks], 0.0)
        self._mouth = MouthInterior(self._image, self._landmarks) if render_mouth else None
        self._prepare_grids(face_size, ring_contour - self._origin)

    @property
    def roi(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1), half-open: `warp` changes no pixel outside image[y0:y1, x0:x1]."""
        return self._roi

    @property
    def has_teeth(self) -> bool:
        """Whether the source shows teeth (painted into mouths that open wider than the source's)."""
        return self._mouth is not None and self._mouth.has_teeth

    def _classify_triangles(self, topology: np.ndarray, face_size: float) -> None:
        """Which triangles can move (touch a landmark), which fill the inside of the mouth, and the
        smallest (twice signed) area each may shrink to before it counts as folded: 1% of its source
        area; the insides of mouth and eyes may close to nothing (and overlap a little) instead."""
        mesh = self._mesh
        self._moving = (np.abs(mesh.weights).sum(axis=1) > 0)[mesh.triangles].any(axis=1)
        centroids = mesh.vertices(topology)[mesh.triangles].mean(axis=1)
        in_mouth = _inside(topology[INNER_LIPS], centroids)
        closing = in_mouth | _inside(topology[_EYES[0]], centroids) | _inside(topology[_EYES[1]], centroids)
        self._in_mouth = np.append(in_mouth, False)  # indexed by label; the last label is "stays still"
        areas = _signed_areas(self._source_corners)
        limits = np.where(closing, np.minimum(areas, 0) - _CLOSING_OVERLAP * face_size ** 2, _MIN_AREA_RATIO * areas)
        limits[~self._moving | (~closing & (areas <= 1e-3))] = -np.inf  # still, or a sliver already
        self._fold_limits = limits

    def _prepare_grids(self, face_size: float, ring: np.ndarray) -> None:
        """Pixel grids of the ROI at full and at working resolution, and the taper that makes the
        displacement exactly zero on and outside the ring."""
        x0, y0, x1, y1 = self._roi
        height, width = y1 - y0, x1 - x0
        scale = min(1.0, _WORK_FACE_PX / face_size)
        work_size = (max(2, round(width * scale)), max(2, round(height * scale)))
        self._work_scale = np.array([work_size[0] / width, work_size[1] / height])
        # Working pixel centres in ROI pixel coordinates, as cv2.resize places them (half-pixel centres).
        columns = (np.arange(work_size[0]) + 0.5) / self._work_scale[0] - 0.5
        rows = (np.arange(work_size[1]) + 0.5) / self._work_scale[1] - 0.5
        self._work_x, self._work_y = [grid.astype(np.float32) for grid in np.meshgrid(columns, rows)]
        self._full_x, self._full_y = np.meshgrid(np.arange(x0, x1, dtype=np.float32),
                                                 np.arange(y0, y1, dtype=np.float32))
        # Zero within _TAPER_START working pixels of the ring, so that the upsampled field is exactly
        # zero outside it (and the remap returns those pixels bit-exactly); then a ramp up to one.
        inside = cv2.distanceTransform(polygon_mask(self._to_work(ring), work_size[::-1]), cv2.DIST_L2, 5)
        self._taper = np.clip((inside - _TAPER_START) / _TAPER_RAMP, 0.0, 1.0).astype(np.float32)
        self._sigma = _SMOOTH_SIGMA * face_size * float(self._work_scale.mean())

    def _to_work(self, points: np.ndarray) -> np.ndarray:
        """ROI pixel coordinates -> working-resolution pixel coordinates."""
        return (points + 0.5) * self._work_scale - 0.5

    def warp(self, target: np.ndarray) -> np.ndarray:
        """The source deformed so that its landmarks sit at `target` (68, 2): a new (H, W, 3) frame.

        Landmarks are held back from moving further than half their distance to the still ring, and
        from folding the face over itself (then they stop where the fold would begin)."""
        vertices = self._placed_vertices(target)
        target = vertices[:68] + self._origin
        strength = self._mouth.strength(target) if self._mouth is not None else 0.0
        map_x, map_y = self._displacement(vertices, target, strength)
        if map_x.shape != self._full_x.shape:
            size = self._full_x.shape[::-1]
            map_x = cv2.resize(map_x, size, interpolation=cv2.INTER_LINEAR)
            map_y = cv2.resize(map_y, size, interpolation=cv2.INTER_LINEAR)
        map_x += self._full_x
        map_y += self._full_y
        warped = cv2.remap(self._image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if strength > 0:
            self._mouth.paint(warped, target - self._origin, strength)
        frame = self._image.copy()
        x0, y0, x1, y1 = self._roi
        frame[y0:y1, x0:x1] = warped
        return frame

    def placed_landmarks(self, target: np.ndarray) -> np.ndarray:
        """(68, 2): where `warp(target)` actually puts the landmarks, after the move limits and unfolding."""
        return self._placed_vertices(target)[:68] + self._origin

    def _placed_vertices(self, target: np.ndarray) -> np.ndarray:
        target = self._clamped(as_landmarks(target, "warp target landmarks"))
        return self._unfolded(self._mesh.vertices(target) - self._origin)

    def _clamped(self, target: np.ndarray) -> np.ndarray:
        """The target with each landmark's move cut to its limit (it may not reach the still ring).

        The face's common shift is cut first, as a whole: cutting it point by point near an image border
        (where the still ring is close) would pin one side of the face while the other moves, squashing it."""
        move = target - self._landmarks
        shift = move.mean(axis=0)
        move = move - shift + _shift_fraction(move - shift, shift, self._move_limits) * shift
        length = np.linalg.norm(move, axis=1)
        shrink = np.minimum(1.0, self._move_limits / np.maximum(length, 1e-9))
        return self._landmarks + move * shrink[:, None]

    def _displacement(self, vertices: np.ndarray, target: np.ndarray,
                      strength: float) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) float32 planes at working resolution: where each output pixel samples the source,
        minus the pixel's own position, for mesh vertices at `vertices` (ROI pixels)."""
        corners = vertices[self._mesh.triangles]
        affines = _backward_affines(corners, self._source_corners)
        # Only triangles that kept their orientation are drawn; folded ones are covered by the rest
        # (the still boundary winds once round every pixel), so they leave no holes.
        drawn = self._moving & (_signed_areas(corners) > 1e-6)
        labels = self._rasterised(corners, drawn)
        table = np.vstack([affines.reshape(-1, 6), np.zeros((1, 6))]).T.astype(np.float32)
        # Inside a triangle the displacement is a blend of its corners': anything beyond theirs is a
        # rasterisation overshoot of a sliver triangle.
        moves = (self._source_corners - corners)[drawn].reshape(-1, 2)
        low, high = np.minimum(moves.min(axis=0, initial=0), 0), np.maximum(moves.max(axis=0, initial=0), 0)
        planes = []
        for axis in (0, 1):
            plane = np.take(table[3 * axis], labels) * self._work_x
            plane += np.take(table[3 * axis + 1], labels) * self._work_y
            plane += np.take(table[3 * axis + 2], labels)
            planes.append(np.clip(plane, low[axis], high[axis], out=plane))
        if strength > 0:
            self._fill_mouth_hole(planes, labels, strength)
        planes = self._smoothed(planes, target)
        for plane in planes:
            plane *= self._taper
        return planes[0], planes[1]

    def _unfolded(self, vertices: np.ndarray) -> np.ndarray:
        """Target vertices (ROI pixels) with fold-overs undone: the corners of triangles that flipped or
        collapsed are pulled back towards their source positions (where every triangle is upright)."""
        source = self._source_vertices
        for step in range(_UNFOLD_STEPS):
            areas = _signed_areas(vertices[self._mesh.triangles])
            folded = areas < self._fold_limits
            if not folded.any():
                break
            corners = np.unique(self._mesh.triangles[folded])
            pull = 1.0 if step >= _UNFOLD_STEPS - _UNFOLD_SNAPS else 0.5
            vertices[corners] += pull * (source[corners] - vertices[corners])
        return vertices

    def _rasterised(self, corners: np.ndarray, drawn: np.ndarray) -> np.ndarray:
        """Label image at working resolution: which triangle covers each pixel (the last label,
        len(triangles), for the still part). Small triangles are drawn first so that the edges of
        large ones win where two touch."""
        count = len(corners)
        labels = np.full(self._work_x.shape, count, dtype=np.int32)
        fixed_point = np.rint(self._to_work(corners) * 16).astype(np.int32)
        areas = _signed_areas(corners)
        for index in np.flatnonzero(drawn)[np.argsort(areas[drawn])]:
            cv2.fillConvexPoly(labels, fixed_point[index], int(index), lineType=cv2.LINE_8, shift=4)
        return labels

    def _fill_mouth_hole(self, planes: list[np.ndarray], labels: np.ndarray, strength: float) -> None:
        """Where the target opens wider than the source, stop sampling the source's mouth interior:
        each pixel of the interior triangles takes (by `strength`) the source position of the nearest
        lip pixel, so the lips' own edge colour extends under the painted cavity's soft edge."""
        hole = self._in_mouth[labels]
        rows, columns = np.nonzero(hole)
        if rows.size == 0:
            return
        r0, c0 = max(rows.min() - 2, 0), max(columns.min() - 2, 0)
        r1, c1 = rows.max() + 3, columns.max() + 3
        inside = hole[r0:r1, c0:c1]
        if inside.all():
            return
        near = tuple(ndimage.distance_transform_edt(inside, return_distances=False, return_indices=True))
        for plane, grid in zip(planes, (self._work_x, self._work_y)):
            region, positions = plane[r0:r1, c0:c1], grid[r0:r1, c0:c1]
            wanted = region[near] + positions[near] - positions  # the nearest lip pixel's source position
            region[inside] += strength * (wanted[inside] - region[inside])

    def _smoothed(self, planes: list[np.ndarray], target: np.ndarray) -> list[np.ndarray]:
        """A Gaussian on the displacement field hides the creases of piecewise-affine warps; on the lips
        and eyes the raw field is kept so that their edges stay where the landmarks put them (a blurred
        field would not fully close a blink or a mouth)."""
        if self._sigma < 0.3:
            return planes
        keep = np.zeros(planes[0].shape, dtype=np.uint8)
        for outline in (OUTER_LIPS, *_EYES):
            keep |= polygon_mask(self._to_work(target[outline] - self._origin), keep.shape)
        keep = np.minimum(2 * cv2.GaussianBlur(keep.astype(np.float32), (0, 0), self._sigma), 1.0)
        smoothed = []
        for plane in planes:
            blurred = cv2.GaussianBlur(plane, (0, 0), self._sigma)
            smoothed.append(blurred + (plane - blurred) * keep)
        return smoothed
