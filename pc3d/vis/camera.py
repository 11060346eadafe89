"""Fixed pinhole cameras for the `bev`, `front` and `orbit` views, computed from the scene extent.

A view is a function of the points and boxes only (robust percentiles, no randomness, no window
state), so the same input always renders the same picture, and a test can project a 3D point with
`Camera.project` and know which pixel it lands on.

The frame's axes decide the views: "forward" and "up" are +x/+z for LiDAR, +y/+z for Depth and
+z/-y for Camera. `left` is up x forward.

- `bev`: looking straight down, forward to the right of the image and left to the top. A narrow
  field of view (10 degrees) from high above keeps the scale within about 1% over the height of a
  street scene, so the picture reads like a metric map.
- `front`: behind and above the scene centre, looking forward and 20 degrees down.
- `orbit`: a three-quarter view from behind-left, 35 degrees down, the whole scene in the frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pc3d.errors import FormatError, ShapeError

VIEWS = ("bev", "front", "orbit")

_FORWARD = {"lidar": (1.0, 0.0, 0.0), "depth": (0.0, 1.0, 0.0), "camera": (0.0, 0.0, 1.0)}
_UP = {"lidar": (0.0, 0.0, 1.0), "depth": (0.0, 0.0, 1.0), "camera": (0.0, -1.0, 0.0)}

# Vertical fields of view (degrees). Open3D's legacy viewer accepts 5 < fov <= 90 for a
# perspective camera (5 exactly switches it to orthographic).
_FOV = {"bev": 10.0, "front": 50.0, "orbit": 45.0}
# The scene extent is the 2nd..98th percentile of the points (one stray return must not shrink
# everything), grown to hold every box, plus this margin on each side.
_PERCENTILES = (2.0, 98.0)
_MARGIN = 0.04
_MIN_HALF_EXTENT = 2.0  # metres; a single point or one box still gets a readable view
# Framing the boxes: their extent grows by this fraction plus these metres on each side, so the
# road around them stays in the picture.
_BOX_MARGIN = 0.05
_BOX_MARGIN_M = 3.0


@dataclass(frozen=True)
class Camera:
    """A pinhole camera in OpenCV convention (x right, y down, z along the optical axis).

    `intrinsic` is `float64[3, 3]` with the principal point at the image centre
    (`width / 2 - 0.5`, `height / 2 - 0.5`, the only one Open3D's legacy viewer accepts) and
    `fx == fy`; `extrinsic` is `float64[4, 4]` taking world (cloud-frame) points to camera
    coordinates. `z_near`/`z_far` are the clipping distances used when rendering.
    """

    width: int
    height: int
    intrinsic: np.ndarray
    extrinsic: np.ndarray
    z_near: float
    z_far: float

    def project(self, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates `float64[N, 2]` (column, row; pixel centres at integers) and depth `[N]`."""
        xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
        cam = xyz @ self.extrinsic[:3, :3].T + self.extrinsic[:3, 3]
        depth = cam[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = (cam @ self.intrinsic.T)[:, :2] / depth[:, None]
        return uv, depth

    @property
    def eye(self) -> np.ndarray:
        """Camera centre `float64[3]` in world coordinates."""
        rot, t = self.extrinsic[:3, :3], self.extrinsic[:3, 3]
        return -rot.T @ t


@dataclass(frozen=True)
class Region:
    """Scene extent in the frame's (forward, left, up) coordinates, metres."""

    forward: tuple[float, float]
    left: tuple[float, float]
    up: tuple[float, float]


def frame_axes(mode: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit (forward, left, up) vectors of frame `mode` (`lidar`, `camera` or `depth`)."""
    if mode not in _FORWARD:
        raise FormatError(f"unknown coordinate system {mode!r}; valid ones are lidar, camera, depth")
    forward, up = np.array(_FORWARD[mode]), np.array(_UP[mode])
    return forward, np.cross(up, forward), up


def scene_region(
    points: np.ndarray, corners: np.ndarray | None = None, mode: str = "lidar", forward_only: bool = False
) -> Region:
    """The extent to frame: robust percentiles of `points` `[N, 3+]`, grown to hold `corners` `[M, 8, 3]`.

    `forward_only` drops points behind the sensor from the extent (they are still drawn when they
    fall inside the view); KITTI labels only cover the camera's field of view in front.
    """
    fwd, left, up = frame_axes(mode)
    axes = np.stack([fwd, left, up], axis=1)  # world -> (forward, left, up)
    pts = np.asarray(points, dtype=np.float64)[:, :3] @ axes
    if forward_only:
        pts = pts[pts[:, 0] >= 0.0]
    box_pts = (
        np.zeros((0, 3)) if corners is None else np.asarray(corners, dtype=np.float64).reshape(-1, 3) @ axes
    )
    if len(pts) == 0 and len(box_pts) == 0:
        raise ShapeError("nothing to frame: the point cloud is empty and there are no boxes")
    lo = np.full(3, np.inf)
    hi = np.full(3, -np.inf)
    if len(pts):
        lo, hi = np.percentile(pts, _PERCENTILES, axis=0)
    if len(box_pts):
        lo, hi = np.minimum(lo, box_pts.min(axis=0)), np.maximum(hi, box_pts.max(axis=0))
    centre, half = (lo + hi) / 2.0, (hi - lo) / 2.0
    half = np.maximum(half * (1.0 + _MARGIN), _MIN_HALF_EXTENT)
    lo, hi = centre - half, centre + half
    return Region((lo[0], hi[0]), (lo[1], hi[1]), (lo[2], hi[2]))


def boxes_region(corners: np.ndarray, points: np.ndarray | None = None, mode: str = "lidar") -> Region:
    """The extent that frames the boxes: their corners `[M, 8, 3]` plus a margin, on the ground plane.

    The forward and left extents hold every box plus 5% of their extent and 3 m on each side; the
    vertical extent (which places the camera) also holds the robust height range of `points`.

    Raises:
        ShapeError: no boxes.
    """
    fwd, left, up = frame_axes(mode)
    axes = np.stack([fwd, left, up], axis=1)
    box_pts = np.asarray(corners, dtype=np.float64).reshape(-1, 3) @ axes
    if len(box_pts) == 0:
        raise ShapeError("nothing to frame: there are no boxes")
    lo, hi = box_pts.min(axis=0), box_pts.max(axis=0)
    grow = (hi[:2] - lo[:2]) * _BOX_MARGIN + _BOX_MARGIN_M
    lo[:2], hi[:2] = lo[:2] - grow, hi[:2] + grow
    if points is not None and len(points):
        heights = np.asarray(points, dtype=np.float64)[:, :3] @ up
        p_lo, p_hi = np.percentile(heights, _PERCENTILES)
        lo[2], hi[2] = min(lo[2], p_lo), max(hi[2], p_hi)
    return Region((lo[0], hi[0]), (lo[1], hi[1]), (lo[2], hi[2]))


def reframe(
    region: Region,
    extent: tuple[float, float, float, float] | None = None,
    center: tuple[float, float] | None = None,
    zoom: float = 1.0,
) -> Region:
    """`region` with its ground-plane extent replaced, moved and scaled (its vertical extent kept).

    Args:
        region: the extent to start from.
        extent: `(f0, l0, f1, l1)`: the forward and left ranges, metres (LiDAR: x0, y0, x1, y1).
        center: `(f, l)`: the point the view centres on, metres.
        zoom: above 1 shows a smaller area (larger objects), below 1 a larger one.

    Returns:
        The new region.

    Raises:
        FormatError: an empty or non-finite extent, a non-finite centre, or a zoom that is not
            a positive finite number.
    """
    fwd, lft = region.forward, region.left
    if extent is not None:
        f0, l0, f1, l1 = (float(v) for v in extent)
        if not np.isfinite([f0, l0, f1, l1]).all() or f1 <= f0 or l1 <= l0:
            raise FormatError(
                f"range {extent}: expected finite X0 Y0 X1 Y1 with X0 < X1 and Y0 < Y1 (metres)"
            )
        fwd, lft = (f0, f1), (l0, l1)
    if not (np.isfinite(zoom) and zoom > 0):
        raise FormatError(f"zoom {zoom}: expected a positive number (2 shows half the width)")
    mid = np.array([sum(fwd) / 2.0, sum(lft) / 2.0])
    if center is not None:
        mid = np.asarray(center, dtype=np.float64).reshape(-1)
        if mid.shape != (2,) or not np.isfinite(mid).all():
            raise FormatError(f"center {center}: expected two finite numbers X Y (metres)")
    half_f, half_l = (fwd[1] - fwd[0]) / (2.0 * zoom), (lft[1] - lft[0]) / (2.0 * zoom)
    f_mid, l_mid = float(mid[0]), float(mid[1])
    return Region((f_mid - half_f, f_mid + half_f), (l_mid - half_l, l_mid + half_l), region.up)


def _intrinsic(width: int, height: int, fov_deg: float) -> np.ndarray:
    f = height / (2.0 * np.tan(np.radians(fov_deg) / 2.0))
    return np.array([[f, 0.0, width / 2.0 - 0.5], [0.0, f, height / 2.0 - 0.5], [0.0, 0.0, 1.0]])


def _extrinsic(eye: np.ndarray, right: np.ndarray, down: np.ndarray, ahead: np.ndarray) -> np.ndarray:
    rot = np.stack([right, down, ahead])
    ext = np.eye(4)
    ext[:3, :3] = rot
    ext[:3, 3] = -rot @ eye
    return ext


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def view_camera(view: str, region: Region, size: tuple[int, int], mode: str = "lidar") -> Camera:
    """The camera of `view` (`bev`, `front`, `orbit`) framing `region` in an image of `size` (W, H)."""
    if view not in VIEWS:
        raise FormatError(f"unknown view {view!r}; valid views are {', '.join(VIEWS)}")
    width, height = int(size[0]), int(size[1])
    if width < 16 or height < 16:
        raise FormatError(f"image size {width}x{height} is too small (at least 16x16)")
    fwd, left, up = frame_axes(mode)
    f_mid, l_mid, u_mid = (sum(r) / 2.0 for r in (region.forward, region.left, region.up))
    f_half, l_half = (region.forward[1] - region.forward[0]) / 2.0, (region.left[1] - region.left[0]) / 2.0
    u_low, u_high = region.up
    fov = _FOV[view]
    tan_half = np.tan(np.radians(fov) / 2.0)
    aspect = width / height
    centre = f_mid * fwd + l_mid * left
    if view == "bev":
        # Forward runs along the image's width, left along its height; fit both at ground level.
        half_h = max(l_half, f_half / aspect)
        dist = half_h / tan_half
        eye = centre + (u_low + dist) * up
        ext = _extrinsic(eye, right=fwd, down=-left, ahead=-up)
        near = max(0.1, dist - (u_high - u_low) - 10.0)
        far = dist + 10.0
        return Camera(width, height, _intrinsic(width, height, fov), ext, near, far)
    if view == "front":
        # Look at the middle of the scene from behind, 20 degrees down; fit its width at that depth.
        elev = np.radians(20.0)
        ahead = _unit(np.cos(elev) * fwd - np.sin(elev) * up)
        dist = max(l_half / (tan_half * aspect), f_half * 0.6)
        target = centre + u_low * up
    else:
        # Orbit: from behind-left at 45 degrees azimuth, 35 degrees down; fit the whole extent.
        elev, azim = np.radians(35.0), np.radians(45.0)
        horiz = np.cos(azim) * fwd - np.sin(azim) * left
        ahead = _unit(np.cos(elev) * horiz - np.sin(elev) * up)
        radius = np.sqrt(f_half**2 + l_half**2 + ((u_high - u_low) / 2.0) ** 2)
        dist = radius / min(tan_half, tan_half * aspect)
        target = centre + u_mid * up
    eye = target - dist * ahead
    right = _unit(np.cross(ahead, up))
    down = np.cross(ahead, right)
    reach = 2.0 * np.sqrt(f_half**2 + l_half**2 + (u_high - u_low) ** 2)
    ext = _extrinsic(eye, right=right, down=down, ahead=ahead)
    return Camera(width, height, _intrinsic(width, height, fov), ext, 0.1, dist + reach + 10.0)
