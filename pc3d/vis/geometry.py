"""Plain-array geometry for drawing: wireframe segments with a heading mark, colours.

Nothing here imports open3d; the overlays (`pc3d.vis.overlays`), the window
(`pc3d.vis.backend`) and the camera view (`pc3d.vis.renderer`) all draw what these functions
return, so a box looks the same in a window, in a PNG and on a camera image.

Box corners come from `pc3d.structures.Boxes3D.corners` (the one implementation, MMDetection3D
1.x order); the tables below only say which corners an edge joins. With the box's own axes (x
along its heading, y to its left for z-up boxes), corner ``i`` sits at the (x, y, z) "bits"
below, where bit 1 means the positive half of that axis::

    index  0  1  2  3  4  5  6  7
    x      0  0  0  0  1  1  1  1      <- corners 4..7 form the front face (the heading side)
    y      0  0  1  1  0  0  1  1
    z      0  1  1  0  0  1  1  0

For Camera boxes the axes are the camera box's own (x along the heading, y down, z = x cross y);
the front face is again corners 4..7. A test checks this table against `Boxes3D.corners`.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from pc3d.errors import FormatError, ShapeError
from pc3d.structures.box_mode import MODE_NAMES

# Bits of the eight corners, in MMDetection3D 1.x order (see the module docstring).
CORNER_BITS = np.array(
    [[0, 0, 0], [0, 0, 1], [0, 1, 1], [0, 1, 0], [1, 0, 0], [1, 0, 1], [1, 1, 1], [1, 1, 0]],
    dtype=np.float64,
)
# The 12 edges join corners whose bits differ in exactly one axis.
BOX_EDGES = np.array(
    [(i, j) for i in range(8) for j in range(i + 1, 8) if np.abs(CORNER_BITS[i] - CORNER_BITS[j]).sum() == 1],
    dtype=np.int64,
)
FRONT_FACE = np.array([4, 5, 6, 7])
# Heading mark: a cross on the front face (seen in side and perspective views) ...
FRONT_CROSS = np.array([[4, 6], [5, 7]], dtype=np.int64)
# ... plus a line from the box centre to the front face's centre (the one visible from above).
SEGMENTS_PER_BOX = len(BOX_EDGES) + len(FRONT_CROSS) + 1

MODES = MODE_NAMES

# Colours are RGB uint8. Every box colour has a channel at 0 or 255, while point colours keep all
# channels inside [POINT_MIN, POINT_MAX]: a box pixel can never be mistaken for a point pixel
# (the pixel tests rely on this, and it keeps boxes readable over dense points).
POINT_MIN, POINT_MAX = 40, 235
BACKGROUND = (14, 16, 22)

# Ground truth in greens/yellows/blues, predictions in reds/magentas/oranges, so the two read
# apart at a glance while each class keeps its own colour within a set.
GT_PALETTE = ((0, 255, 0), (255, 255, 0), (0, 255, 255), (0, 128, 255), (128, 255, 0), (0, 255, 128))
PRED_PALETTE = ((255, 0, 0), (255, 0, 255), (255, 128, 0), (255, 0, 128), (128, 0, 255), (255, 64, 64))
# Fixed slots for the common classes (KITTI, nuScenes, SUN RGB-D style names, compared lowercase)
# so a class keeps its colour from frame to frame; other names are hashed onto the palette.
CLASS_SLOTS = {
    "car": 0,
    "vehicle": 0,
    "pedestrian": 1,
    "person_sitting": 1,
    "cyclist": 2,
    "bicycle": 2,
    "truck": 3,
    "van": 4,
    "tram": 5,
}
# Colour of boxes without class names: the first slot of their set's palette.
UNLABELLED = ""

# Height / intensity ramp for points: dark slate -> steel blue -> pale ice. Kept inside
# [POINT_MIN, POINT_MAX] on every channel (see above).
_RAMP = np.array([[70, 84, 132], [66, 128, 196], [118, 190, 226], [226, 232, 235]], dtype=np.float64)
GREY_POINT = (120, 120, 128)
# Point classes (per-point labels, e.g. a segmentation): Tableau-like hues pulled inside
# [POINT_MIN, POINT_MAX] so they stay apart from box colours; class i takes entry i modulo the
# length, negative ids (ignored points) take GREY_POINT.
POINT_CLASS_PALETTE = np.array(
    [
        [52, 119, 180], [235, 127, 40], [44, 160, 44], [214, 40, 40], [148, 103, 189], [140, 86, 75],
        [227, 119, 194], [188, 189, 40], [40, 190, 207], [174, 199, 232], [235, 187, 120], [152, 223, 138],
    ],
    dtype=np.uint8,
)  # fmt: skip


def class_color(name: str, source: str = "gt") -> tuple[int, int, int]:
    """RGB colour of class `name` for `source` `"gt"` or `"pred"` (stable across calls and runs)."""
    palette = GT_PALETTE if source == "gt" else PRED_PALETTE
    key = name.strip().lower()
    slot = CLASS_SLOTS.get(key)
    if slot is None:
        # crc32, not hash(): Python salts str hashes per process, colours must not change.
        slot = 0 if key == UNLABELLED else zlib.crc32(key.encode()) % len(palette)
    return palette[slot]


def ramp_colors(values: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """`uint8[N, 3]` ramp colours of `values` `[N]`, scaled between `lo` and `hi`.

    Unset bounds are the 2nd and 98th percentiles of the finite values (a few outliers must not
    flatten the ramp). NaN and infinite values have no place on the ramp: they get the neutral
    `GREY_POINT`.
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    colors = np.tile(np.array(GREY_POINT, dtype=np.uint8), (values.size, 1))
    finite = np.isfinite(values)
    if not finite.any():
        return colors
    known = values[finite]
    if lo is None or hi is None:
        p_lo, p_hi = ramp_bounds(known)
        lo = p_lo if lo is None else lo
        hi = p_hi if hi is None else hi
    span = hi - lo if hi > lo else 1.0
    t = np.clip((known - lo) / span, 0.0, 1.0) * (len(_RAMP) - 1)
    i = np.minimum(t.astype(np.int64), len(_RAMP) - 2)
    f = (t - i)[:, None]
    rgb = _RAMP[i] * (1.0 - f) + _RAMP[i + 1] * f
    colors[finite] = np.clip(np.rint(rgb), POINT_MIN, POINT_MAX).astype(np.uint8)
    return colors


def ramp_bounds(values: np.ndarray) -> tuple[float, float]:
    """The values `ramp_colors` maps to the ends of its ramp: the 2nd and 98th percentiles of the
    finite `values` (`(nan, nan)` when there are none)."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    known = values[np.isfinite(values)]
    if known.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.percentile(known, [2.0, 98.0])
    return float(lo), float(hi)


def point_class_colors(labels: np.ndarray) -> np.ndarray:
    """`uint8[N, 3]` colours of per-point class ids `labels` `[N]` (`POINT_CLASS_PALETTE`; < 0: grey)."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    colors = POINT_CLASS_PALETTE[np.mod(labels, len(POINT_CLASS_PALETTE))]
    colors[labels < 0] = GREY_POINT
    return colors


def check_boxes(boxes: object, what: str = "boxes") -> np.ndarray:
    """`boxes` as `float64[M, 7+C]` (an empty 1-D input becomes `(0, 7)`).

    Raises:
        ShapeError: not `[M, 7+]` (naming `what`).
        FormatError: not numeric, NaN/inf in the first 7 columns, or a negative size (naming the box).
    """
    try:
        arr = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise FormatError(f"{what}: not a numeric array ({err})") from None
    if arr.ndim == 1 and arr.size == 0:
        arr = arr.reshape(0, 7)
    if arr.ndim != 2 or arr.shape[1] < 7:
        raise ShapeError(
            f"{what}: expected shape (M, 7+) (x, y, z, x_size, y_size, z_size, yaw), got {arr.shape}"
        )
    bad = ~np.isfinite(arr[:, :7]).all(axis=1)
    if bad.any():
        raise FormatError(f"{what}: box {int(np.argmax(bad))} holds NaN or infinite values")
    if (arr[:, 3:6] < 0).any():
        raise FormatError(f"{what}: box {int(np.argmax((arr[:, 3:6] < 0).any(axis=1)))} has a negative size")
    return arr


def wireframe_segments(corners: np.ndarray) -> np.ndarray:
    """Segments `float64[M, SEGMENTS_PER_BOX, 2, 3]`: 12 edges, front-face cross, heading line."""
    corners = np.asarray(corners, dtype=np.float64)
    if corners.ndim != 3 or corners.shape[1:] != (8, 3):
        raise ShapeError(f"corners: expected shape (M, 8, 3), got {corners.shape}")
    edges = corners[:, BOX_EDGES]  # [M, 12, 2, 3]
    cross = corners[:, FRONT_CROSS]  # [M, 2, 2, 3]
    centre = corners.mean(axis=1)
    front = corners[:, FRONT_FACE].mean(axis=1)
    heading = np.stack([centre, front], axis=1)[:, None]  # [M, 1, 2, 3]
    return np.concatenate([edges, cross, heading], axis=1)


def _bev_tables(vertical: int) -> tuple[np.ndarray, np.ndarray]:
    """For the box axis `vertical` (2: z-up boxes, 1: camera boxes): each corner's partner on the
    other horizontal face, and the outline edges of the face at bit 0, going round it."""
    flip = CORNER_BITS.copy()
    flip[:, vertical] = 1 - flip[:, vertical]
    partner = np.array([int(np.flatnonzero((CORNER_BITS == f).all(axis=1))[0]) for f in flip])
    a, b = [axis for axis in range(3) if axis != vertical]
    ring = []
    for bits in ((0, 0), (1, 0), (1, 1), (0, 1)):
        want = np.zeros(3)
        want[a], want[b] = bits
        ring.append(int(np.flatnonzero((CORNER_BITS == want).all(axis=1))[0]))
    return partner, np.array([[ring[i], ring[(i + 1) % 4]] for i in range(4)], dtype=np.int64)


_BEV_TABLES = {mode: _bev_tables(1 if mode == "camera" else 2) for mode in MODES}
BEV_SEGMENTS_PER_BOX = 5


def bev_segments(corners: np.ndarray, mode: str = "lidar") -> np.ndarray:
    """Top-view outline `float64[M, 5, 2, 3]`: the footprint at mid-height and the heading line.

    Seen from above, the top and bottom faces of a box coincide only in an orthographic view;
    in the (narrow) perspective BEV they sit a pixel or two apart, so a full wireframe would draw
    every edge twice. One outline at mid-height, plus the centre -> front-face line, reads clean.
    `corners` `[M, 8, 3]` are in `mode`'s corner order (see the module docstring).
    """
    corners = np.asarray(corners, dtype=np.float64)
    if corners.ndim != 3 or corners.shape[1:] != (8, 3):
        raise ShapeError(f"corners: expected shape (M, 8, 3), got {corners.shape}")
    if mode not in _BEV_TABLES:
        raise FormatError(f"unknown box mode {mode!r}; valid modes are {', '.join(MODES)}")
    partner, ring = _BEV_TABLES[mode]
    mid = (corners + corners[:, partner]) / 2.0  # [M, 8, 3], each corner moved to mid-height
    outline = mid[:, ring]  # [M, 4, 2, 3]
    centre = corners.mean(axis=1)
    front = corners[:, FRONT_FACE].mean(axis=1)
    heading = np.stack([centre, front], axis=1)[:, None]
    return np.concatenate([outline, heading], axis=1)


def box_colors(labels: Sequence[str], source: str) -> np.ndarray:
    """`uint8[M, 3]` class colours of boxes with class names `labels` from `source` gt/pred."""
    if len(labels) == 0:
        return np.zeros((0, 3), dtype=np.uint8)
    # One palette lookup per distinct class, then a gather: no per-box Python work.
    names, index = np.unique(np.asarray(labels, dtype=str), return_inverse=True)
    table = np.array([class_color(str(name), source) for name in names], dtype=np.uint8)
    return table[index.reshape(-1)]
