"""A spinning multi-beam LiDAR cast into a :class:`~pc3d.data.synthetic.scene.SceneLayout`.

Each of ``rings`` beams (elevations spread like a 64-beam Velodyne HDL-64E: +2° to -24.8°) fires
at every azimuth step across the field of view; a ray returns its nearest hit among the ground
plane, the solid boxes, the pole cylinders and the bush ellipsoids, up to ``max_range``. So every
object casts a shadow (nothing behind it returns), far objects get few points (the rings spread
with distance), and rays that hit nothing return nothing. Range noise (Gaussian, along the ray),
random drop-outs and an intensity per material (attenuated with range) complete the sweep.

All intersections are vectorised over rays x primitives; a sweep of ~25k rays and ~60
primitives takes a few tens of milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pc3d.data.synthetic.scene import GROUND, POLE, VEGETATION, SceneLayout

__all__ = ["LidarSensor", "Sweep", "cast_rays"]

# Base reflectivity per semantic class (ground, car, pedestrian, cyclist, pole, wall, vegetation).
_REFLECTIVITY = np.array([0.18, 0.55, 0.35, 0.4, 0.5, 0.3, 0.22])


@dataclass(frozen=True)
class LidarSensor:
    """The beam pattern and noise of the simulated sensor.

    Attributes:
        rings: number of beams (rows of the sweep).
        elevation_deg: ``(top, bottom)`` elevation of the first and last beam, degrees.
        azimuth_step_deg: angle between two firings of a beam, degrees.
        fov_deg: horizontal field of view swept, centred on +x, degrees.
        max_range: rays longer than this return nothing (metres).
        range_noise: standard deviation of the range error (metres).
        dropout: probability that a return is lost.
    """

    rings: int = 64
    elevation_deg: tuple[float, float] = (2.0, -24.8)
    azimuth_step_deg: float = 0.2
    fov_deg: float = 90.0
    max_range: float = 80.0
    range_noise: float = 0.02
    dropout: float = 0.03

    def directions(self) -> tuple[np.ndarray, np.ndarray]:
        """Unit ray directions ``float64 [R, 3]`` and the ring of each ray ``int64 [R]``."""
        elevation = np.radians(np.linspace(self.elevation_deg[0], self.elevation_deg[1], self.rings))
        count = int(round(self.fov_deg / self.azimuth_step_deg)) + 1
        azimuth = np.radians(np.linspace(-self.fov_deg / 2, self.fov_deg / 2, count))
        el, az = np.meshgrid(elevation, azimuth, indexing="ij")
        dirs = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1)
        rings = np.broadcast_to(np.arange(self.rings)[:, None], el.shape)
        return dirs.reshape(-1, 3), rings.reshape(-1)

    def azimuths(self) -> np.ndarray:
        """Azimuth of each firing column, radians, increasing (``float64 [A]``)."""
        count = int(round(self.fov_deg / self.azimuth_step_deg)) + 1
        return np.radians(np.linspace(-self.fov_deg / 2, self.fov_deg / 2, count))


@dataclass
class Sweep:
    """The returns of one sweep.

    Attributes:
        points: ``float32 [N, 4]`` x, y, z, intensity (in [0, 1]).
        semantic: ``int64 [N]`` semantic class of each point (``SEMANTIC_CLASSES``).
        owner: ``int64 [N]`` labelled object each point lies on, -1 for background.
        ring: ``int64 [N]`` beam of each point.
        visible_fraction: ``float64 [M]`` per labelled object, the share of the rays that would
            hit it if it stood alone that do hit it first (1 = unoccluded).
        alone_hits: ``int64 [M]`` rays that would hit each labelled object if it stood alone.
    """

    points: np.ndarray
    semantic: np.ndarray
    owner: np.ndarray
    ring: np.ndarray
    visible_fraction: np.ndarray
    alone_hits: np.ndarray


def _hit_boxes(dirs: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Entry distance ``[R, K]`` of rays from the origin into oriented boxes (inf on a miss)."""
    if boxes.shape[0] == 0:
        return np.full((dirs.shape[0], 0), np.inf)
    cos_y, sin_y = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
    centre = boxes[:, :3] + np.stack([np.zeros_like(cos_y), np.zeros_like(cos_y), boxes[:, 5] / 2], axis=1)
    half = boxes[:, 3:6] / 2
    # Ray origin (the sensor, 0) and direction in each box's frame.
    ox = -(centre[:, 0] * cos_y + centre[:, 1] * sin_y)
    oy = centre[:, 0] * sin_y - centre[:, 1] * cos_y
    oz = -centre[:, 2]
    dx = dirs[:, :1] * cos_y + dirs[:, 1:2] * sin_y
    dy = -dirs[:, :1] * sin_y + dirs[:, 1:2] * cos_y
    dz = np.broadcast_to(dirs[:, 2:3], dx.shape)
    t_near = np.zeros(dx.shape)
    t_far = np.full(dx.shape, np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        for o, d, h in ((ox, dx, half[:, 0]), (oy, dy, half[:, 1]), (oz, dz, half[:, 2])):
            t1, t2 = (-h - o) / d, (h - o) / d
            lo, hi = np.minimum(t1, t2), np.maximum(t1, t2)
            # A ray parallel to a slab misses unless its origin lies between the planes.
            parallel = d == 0
            inside = np.abs(o) <= h
            lo = np.where(parallel, np.where(inside, -np.inf, np.inf), lo)
            hi = np.where(parallel, np.where(inside, np.inf, -np.inf), hi)
            t_near, t_far = np.maximum(t_near, lo), np.minimum(t_far, hi)
    return np.where((t_near <= t_far) & (t_near > 0), t_near, np.inf)


def _azimuth_windows(boxes: np.ndarray, azimuth: np.ndarray) -> np.ndarray:
    """Per box, the ``[first, last)`` azimuth columns whose rays can meet it: the angular
    extent of its bird's-eye rectangle seen from the sensor (exact: a convex polygon that does
    not hold the origin spans the angles between its extreme corners)."""
    cos_y, sin_y = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
    sx = np.array([0.5, 0.5, -0.5, -0.5])[None] * boxes[:, 3:4]
    sy = np.array([0.5, -0.5, -0.5, 0.5])[None] * boxes[:, 4:5]
    cx = boxes[:, :1] + sx * cos_y[:, None] - sy * sin_y[:, None]
    cy = boxes[:, 1:2] + sx * sin_y[:, None] + sy * cos_y[:, None]
    angles = np.arctan2(cy, cx)
    lo, hi = angles.min(axis=1), angles.max(axis=1)
    # A rectangle behind the sensor straddles the +-pi cut: it is outside a forward sweep.
    behind = (hi - lo) > np.pi
    first = np.searchsorted(azimuth, lo, side="left")
    last = np.searchsorted(azimuth, hi, side="right")
    return np.stack([np.where(behind, 0, first), np.where(behind, 0, last)], axis=1)


def _hit_boxes_in_sweep(dirs: np.ndarray, azimuth: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """:func:`_hit_boxes` for a sweep ``dirs [rings, A, 3]`` with column azimuths ``azimuth
    [A]``: each box is tested only against the rays of its azimuth window. Returns ``[R, K]``."""
    rings, columns = dirs.shape[:2]
    out = np.full((rings, columns, boxes.shape[0]), np.inf)
    for k, (first, last) in enumerate(_azimuth_windows(boxes, azimuth)):  # one pass per box
        if last > first:
            window = dirs[:, first:last].reshape(-1, 3)
            out[:, first:last, k] = _hit_boxes(window, boxes[k : k + 1]).reshape(rings, last - first)
    return out.reshape(rings * columns, -1)


def _hit_poles(dirs: np.ndarray, poles: np.ndarray, layout: SceneLayout) -> np.ndarray:
    if poles.shape[0] == 0:
        return np.full((dirs.shape[0], 0), np.inf)
    cx, cy, radius, height = poles.T
    a = dirs[:, :1] ** 2 + dirs[:, 1:2] ** 2
    b = -2 * (dirs[:, :1] * cx + dirs[:, 1:2] * cy)
    c = cx**2 + cy**2 - radius**2
    disc = b**2 - 4 * a * c
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (-b - np.sqrt(disc)) / (2 * a)
    base = layout.ground_height(cx, cy)
    z = t * dirs[:, 2:3]
    ok = (disc >= 0) & (t > 0) & (z >= base) & (z <= base + height)
    return np.where(ok, t, np.inf)


def _hit_ellipsoids(dirs: np.ndarray, bushes: np.ndarray) -> np.ndarray:
    if bushes.shape[0] == 0:
        return np.full((dirs.shape[0], 0), np.inf)
    centre, radii = bushes[:, :3], bushes[:, 3:]
    o = -centre / radii  # [K, 3]
    d = dirs[:, None, :] / radii  # [R, K, 3]
    a = (d**2).sum(-1)
    b = 2 * (d * o).sum(-1)
    c = (o**2).sum(-1) - 1
    disc = b**2 - 4 * a * c
    with np.errstate(invalid="ignore"):
        t = (-b - np.sqrt(disc)) / (2 * a)
    return np.where((disc >= 0) & (t > 0), t, np.inf)


def _hit_ground(dirs: np.ndarray, layout: SceneLayout) -> np.ndarray:
    gx, gy, g0 = layout.ground
    denom = dirs[:, 2] - gx * dirs[:, 0] - gy * dirs[:, 1]
    with np.errstate(divide="ignore"):
        t = g0 / denom
    return np.where((denom < 0) & (t > 0), t, np.inf)


def cast_rays(layout: SceneLayout, sensor: LidarSensor, rng: np.random.Generator) -> Sweep:
    """Fire every ray of ``sensor`` into ``layout`` (see the module docstring)."""
    dirs, rings = sensor.directions()
    azimuth = sensor.azimuths()
    t_parts = _hit_boxes_in_sweep(dirs.reshape(sensor.rings, azimuth.shape[0], 3), azimuth, layout.parts)
    candidates = np.concatenate(
        [
            _hit_ground(dirs, layout)[:, None],
            t_parts,
            _hit_poles(dirs, layout.poles, layout),
            _hit_ellipsoids(dirs, layout.bushes),
        ],
        axis=1,
    )
    semantic_of = np.concatenate(
        [
            [GROUND],
            layout.part_class,
            np.full(layout.poles.shape[0], POLE),
            np.full(layout.bushes.shape[0], VEGETATION),
        ]
    ).astype(np.int64)
    owner_of = np.concatenate(
        [[-1], layout.part_owner, np.full(layout.poles.shape[0] + layout.bushes.shape[0], -1)]
    ).astype(np.int64)
    nearest = candidates.argmin(axis=1)
    t = candidates[np.arange(dirs.shape[0]), nearest]
    returned = np.isfinite(t) & (t <= sensor.max_range) & (rng.random(t.shape[0]) >= sensor.dropout)
    # Occlusion: how many rays would hit each object alone, and how many hit it first.
    num_objects = layout.boxes.shape[0]
    alone = np.zeros(num_objects, dtype=np.int64)
    labelled = layout.part_owner >= 0
    if num_objects and labelled.any():
        # The parts of one object are consecutive columns (see SceneLayout.parts).
        owners = layout.part_owner[labelled]
        starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
        per_object = np.minimum.reduceat(t_parts[:, labelled], starts, axis=1)
        alone[owners[starts]] = (per_object <= sensor.max_range).sum(axis=0)
    owner = owner_of[nearest][returned]
    first = np.bincount(owner[owner >= 0], minlength=num_objects)
    with np.errstate(invalid="ignore", divide="ignore"):
        visible_fraction = np.where(alone > 0, first / np.maximum(alone, 1), 0.0)
    t, dirs, semantic = t[returned], dirs[returned], semantic_of[nearest][returned]
    distance = t + rng.normal(0.0, sensor.range_noise, t.shape[0])
    xyz = dirs * distance[:, None]
    intensity = _REFLECTIVITY[semantic] * np.exp(-distance / 120.0) + rng.normal(0.0, 0.03, t.shape[0])
    points = np.concatenate([xyz, np.clip(intensity, 0.0, 1.0)[:, None]], axis=1).astype(np.float32)
    return Sweep(points, semantic, owner, rings[returned], visible_fraction, alone)


def ring_elevations(sensor: LidarSensor) -> np.ndarray:
    """Elevation of each ring in radians (``float64 [rings]``), top first."""
    return np.radians(np.linspace(sensor.elevation_deg[0], sensor.elevation_deg[1], sensor.rings))


def elevation_of(points: np.ndarray) -> np.ndarray:
    """Elevation angle of points seen from the sensor (radians)."""
    return np.arctan2(points[:, 2], np.hypot(points[:, 0], points[:, 1]))


def azimuth_of(points: np.ndarray) -> np.ndarray:
    """Azimuth of points seen from the sensor (radians, 0 along +x, counter-clockwise)."""
    return np.arctan2(points[:, 1], points[:, 0])
