"""Synthetic street scenes: a layout of labelled objects and distractors on a sloped ground.

A scene is laid out along a straight road (turned by a random angle about the sensor): moving and
parked cars in lanes, pedestrians on the pavements, cyclists at the kerbs, building walls behind
the pavements, poles at the kerb and bushes in front of the walls. Objects never overlap in the
bird's-eye view. Sizes follow the KITTI training statistics (car ~3.9 x 1.6 x 1.56 m, pedestrian
~0.8 x 0.6 x 1.73 m, cyclist ~1.76 x 0.6 x 1.73 m, each with spread).

Everything is in the LiDAR frame (x forward, y left, z up; the sensor at the origin), boxes are
``x, y, z, length, width, height, yaw`` with ``z`` the bottom centre (pc3d's LiDAR convention).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = ["CLASS_SIZES", "SEMANTIC_CLASSES", "SceneLayout", "SceneSettings", "sample_layout"]

#: Per-point semantic classes of a synthetic sweep (index = label id).
SEMANTIC_CLASSES = ("ground", "car", "pedestrian", "cyclist", "pole", "wall", "vegetation")
GROUND, CAR, PEDESTRIAN, CYCLIST, POLE, WALL, VEGETATION = range(len(SEMANTIC_CLASSES))

#: KITTI type -> (mean length, width, height), spread (std as a fraction of the mean).
CLASS_SIZES = {
    "Car": ((3.9, 1.6, 1.56), 0.08),
    "Pedestrian": ((0.8, 0.6, 1.73), 0.08),
    "Cyclist": ((1.76, 0.6, 1.73), 0.06),
}
_SEMANTIC_OF = {"Car": CAR, "Pedestrian": PEDESTRIAN, "Cyclist": CYCLIST}


@dataclass(frozen=True)
class SceneSettings:
    """What a scene holds.

    Attributes:
        cars, pedestrians, cyclists: ``(min, max)`` counts (inclusive) of each labelled class.
        poles, bushes: ``(min, max)`` counts of the distractors.
        max_distance: objects are placed up to this far ahead (metres).
        fov_deg: horizontal field of view (degrees, centred on +x) objects are placed in.
        sensor_height: height of the sensor above the ground at the origin (metres).
        slope_deg: standard deviation of the ground's tilt (degrees).
    """

    cars: tuple[int, int] = (4, 12)
    pedestrians: tuple[int, int] = (1, 6)
    cyclists: tuple[int, int] = (1, 4)
    poles: tuple[int, int] = (2, 8)
    bushes: tuple[int, int] = (1, 6)
    max_distance: float = 60.0
    fov_deg: float = 80.0
    sensor_height: float = 1.73
    slope_deg: float = 0.6


@dataclass
class SceneLayout:
    """The geometry of one scene (LiDAR frame).

    Attributes:
        ground: ``(gx, gy, g0)``: the ground is ``z = gx * x + gy * y + g0``.
        boxes: ``float64 [N, 7]`` labelled objects (bottom centre).
        types: ``str [N]`` their KITTI types.
        parts: ``float64 [P, 7]`` the solid boxes the sensor sees (a car is a body and a cabin,
            walls are long thin boxes), ``part_owner`` ``int64 [P]`` the labelled object of each
            part or -1, ``part_class`` ``int64 [P]`` its semantic class.
        poles: ``float64 [Q, 4]`` vertical cylinders ``x, y, radius, height`` standing on the
            ground.
        bushes: ``float64 [R, 6]`` ellipsoids ``x, y, z, rx, ry, rz``.
    """

    ground: tuple[float, float, float]
    boxes: np.ndarray
    types: np.ndarray
    parts: np.ndarray
    part_owner: np.ndarray
    part_class: np.ndarray
    poles: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    bushes: np.ndarray = field(default_factory=lambda: np.zeros((0, 6)))

    def ground_height(self, x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
        gx, gy, g0 = self.ground
        return np.asarray(gx * np.asarray(x) + gy * np.asarray(y) + g0)


class _Placer:
    """Keeps placed footprints apart: a candidate is rejected when its BEV disc meets another's."""

    def __init__(self) -> None:
        self.centres: list[tuple[float, float, float]] = []

    def free(self, x: float, y: float, radius: float) -> bool:
        if not self.centres:
            return True
        placed = np.asarray(self.centres)
        gap = np.hypot(placed[:, 0] - x, placed[:, 1] - y) - placed[:, 2] - radius
        return bool(gap.min() > 0.3)

    def add(self, x: float, y: float, radius: float) -> None:
        self.centres.append((x, y, radius))


def _size(rng: np.random.Generator, kind: str) -> np.ndarray:
    mean, spread = CLASS_SIZES[kind]
    return np.asarray(mean) * np.clip(rng.normal(1.0, spread, 3), 0.8, 1.2)


def _parts_of(kind: str, box: np.ndarray) -> list[tuple[np.ndarray, int]]:
    """The solid boxes that make up a labelled object (in its own box's pose)."""
    x, y, z, length, width, height, yaw = box
    forward = np.array([math.cos(yaw), math.sin(yaw)])

    def part(dx: float, size_x: float, size_y: float, z0: float, size_z: float) -> np.ndarray:
        cx, cy = np.array([x, y]) + dx * forward
        return np.array([cx, cy, z + z0, size_x, size_y, size_z, yaw])

    semantic = _SEMANTIC_OF[kind]
    if kind == "Car":
        # Body up to ~55 % of the height on wheels, a cabin above it set back towards the rear
        # (a longer bonnet than boot), so that the front and the back of a car differ.
        return [
            (part(0.0, length, width, 0.15 * height, 0.45 * height), semantic),
            (part(0.0, 0.8 * length, 0.92 * width, 0.02 * height, 0.13 * height), semantic),
            (part(-0.12 * length, 0.55 * length, 0.88 * width, 0.6 * height, 0.4 * height), semantic),
        ]
    if kind == "Pedestrian":
        return [
            (part(0.0, 0.45 * length, 0.7 * width, 0.0, 0.5 * height), semantic),
            (part(0.0, 0.55 * length, width, 0.5 * height, 0.38 * height), semantic),
            (part(0.0, 0.3 * length, 0.35 * width, 0.88 * height, 0.12 * height), semantic),
        ]
    # Cyclist: the bicycle (thin, wheel-high) and the rider above its middle.
    return [
        (part(0.0, length, 0.15 * width, 0.0, 0.55 * height), semantic),
        (part(-0.05 * length, 0.4 * length, width, 0.45 * height, 0.55 * height), semantic),
    ]


def sample_layout(rng: np.random.Generator, settings: SceneSettings) -> SceneLayout:
    """A random scene (see the module docstring); deterministic for a given ``rng`` state.

    The steps draw from ``rng`` in a fixed order (ground, road, labelled objects, then walls,
    poles and bushes), so a seed always gives the same scene.

    Args:
        rng: the random source; it is advanced.
        settings: what the scene holds.

    Returns:
        The scene's ground, labelled boxes, solid parts and distractors.
    """
    ground = _sample_ground(rng, settings)
    road = _sample_road(rng)
    layout = SceneLayout(
        ground,
        np.zeros((0, 7)),
        np.zeros(0, dtype="<U10"),
        np.zeros((0, 7)),
        np.zeros(0, np.int64),
        np.zeros(0, np.int64),
    )
    placer = _Placer()
    _place_objects(layout, rng, settings, road, placer)
    _add_parts(layout, rng, road, placer, settings)
    return layout


@dataclass(frozen=True)
class _Road:
    """The straight road a scene is laid out along.

    Attributes:
        yaw: its direction, turned from the sensor's +x (radians).
        offset: lateral offset of its centre line from the sensor (metres).
        half_width: half its width (metres); the pavements start there.
    """

    yaw: float
    offset: float
    half_width: float

    def to_world(self, along: float, across: float) -> tuple[float, float]:
        """LiDAR ``x, y`` of a point ``along`` the road and ``across`` from its centre line."""
        cos_r, sin_r = math.cos(self.yaw), math.sin(self.yaw)
        return (
            along * cos_r - (across + self.offset) * sin_r,
            along * sin_r + (across + self.offset) * cos_r,
        )


def _sample_ground(rng: np.random.Generator, settings: SceneSettings) -> tuple[float, float, float]:
    """The ground plane ``(gx, gy, g0)``: a small random tilt, the sensor about its height above it."""
    slope = math.radians(settings.slope_deg)
    return (
        float(rng.normal(0.0, slope)),
        float(rng.normal(0.0, slope)),
        -settings.sensor_height + float(rng.normal(0, 0.03)),
    )


def _sample_road(rng: np.random.Generator) -> _Road:
    """The road's direction, lateral offset and half width, drawn in that order."""
    road_yaw = float(rng.uniform(-0.35, 0.35))
    road_offset = float(rng.uniform(-3.0, 3.0))
    half_road = float(rng.uniform(4.0, 7.5))
    return _Road(road_yaw, road_offset, half_road)


def _visible(settings: SceneSettings, x: float, y: float, margin: float) -> bool:
    """Whether a footprint of radius ``margin`` at ``x, y`` lies in the range and field of view."""
    half_fov = math.radians(settings.fov_deg) / 2
    return 3.0 < x < settings.max_distance and abs(math.atan2(y, x)) < half_fov - margin / max(x, 1.0)


def _object_plans(
    rng: np.random.Generator, settings: SceneSettings, half_road: float
) -> tuple[tuple[str, tuple[int, int], Callable[[], float]], ...]:
    """Each labelled class, its count range and a draw of its distance across the road.

    Cars drive in the lanes, pedestrians walk on the pavements, cyclists ride at the kerbs.
    """
    return (
        (
            "Car",
            settings.cars,
            lambda: float(rng.choice([-1, 1])) * rng.uniform(0.3, 1.0) * (half_road + 1.0),
        ),
        (
            "Pedestrian",
            settings.pedestrians,
            lambda: float(rng.choice([-1, 1])) * rng.uniform(half_road + 0.8, half_road + 4.0),
        ),
        (
            "Cyclist",
            settings.cyclists,
            lambda: float(rng.choice([-1, 1])) * rng.uniform(half_road - 1.5, half_road + 0.5),
        ),
    )


def _find_spot(
    rng: np.random.Generator,
    settings: SceneSettings,
    road: _Road,
    placer: _Placer,
    across_of: Callable[[], float],
    radius: float,
) -> tuple[float, float] | None:
    """A visible, free ``x, y`` for a footprint of ``radius``; None after 20 rejected draws."""
    for _attempt in range(20):
        along = float(rng.uniform(4.0, settings.max_distance))
        x, y = road.to_world(along, across_of())
        if _visible(settings, x, y, radius) and placer.free(x, y, radius):
            return x, y
    return None


def _heading(rng: np.random.Generator, kind: str, road_yaw: float) -> float:
    """An object's yaw: pedestrians face anywhere; vehicles mostly follow the road either way."""
    if kind == "Pedestrian":
        return float(rng.uniform(-math.pi, math.pi))
    heading = road_yaw + float(rng.choice([0.0, math.pi])) + float(rng.normal(0.0, 0.12))
    if rng.uniform() < 0.15:
        heading = float(rng.uniform(-math.pi, math.pi))
    return heading


def _place_objects(
    layout: SceneLayout,
    rng: np.random.Generator,
    settings: SceneSettings,
    road: _Road,
    placer: _Placer,
) -> None:
    """Fill ``layout.boxes`` and ``layout.types`` with the labelled objects that found a free spot."""
    boxes: list[np.ndarray] = []
    types: list[str] = []
    for kind, (low, high), across_of in _object_plans(rng, settings, road.half_width):
        for _ in range(int(rng.integers(low, high + 1))):
            size = _size(rng, kind)
            radius = 0.5 * math.hypot(size[0], size[1])
            spot = _find_spot(rng, settings, road, placer, across_of, radius)
            if spot is None:
                continue
            x, y = spot
            heading = _heading(rng, kind, road.yaw)
            z = layout.ground_height(np.float64(x), np.float64(y))
            boxes.append(np.array([x, y, float(z), *size, math.atan2(math.sin(heading), math.cos(heading))]))
            types.append(kind)
            placer.add(x, y, radius)
    layout.boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    layout.types = np.asarray(types, dtype="<U10")


def _add_parts(
    layout: SceneLayout,
    rng: np.random.Generator,
    road: _Road,
    placer: _Placer,
    settings: SceneSettings,
) -> None:
    """Fill the layout's solid parts (of its objects, then walls), poles and bushes."""
    to_world, road_yaw, half_road = road.to_world, road.yaw, road.half_width
    parts: list[np.ndarray] = []
    owners: list[int] = []
    classes: list[int] = []
    for index, (kind, box) in enumerate(zip(layout.types, layout.boxes)):
        for part, semantic in _parts_of(str(kind), box):
            parts.append(part)
            owners.append(index)
            classes.append(semantic)
    # Building walls behind both pavements, in segments with gaps.
    for side in (-1.0, 1.0):
        along = float(rng.uniform(-5.0, 8.0))
        while along < settings.max_distance + 20:
            length = float(rng.uniform(8.0, 30.0))
            across = side * (half_road + float(rng.uniform(5.0, 9.0)))
            x, y = to_world(along + length / 2, across)
            z = float(layout.ground_height(np.float64(x), np.float64(y)))
            parts.append(np.array([x, y, z - 0.2, length, 0.4, float(rng.uniform(3.0, 9.0)), road_yaw]))
            owners.append(-1)
            classes.append(WALL)
            along += length + float(rng.uniform(2.0, 12.0))
    poles = []
    for _ in range(int(rng.integers(settings.poles[0], settings.poles[1] + 1))):
        x, y = to_world(
            float(rng.uniform(3.0, settings.max_distance)),
            float(rng.choice([-1, 1])) * (half_road + float(rng.uniform(0.3, 1.0))),
        )
        radius = float(rng.uniform(0.06, 0.18))
        if placer.free(x, y, radius):
            poles.append([x, y, radius, float(rng.uniform(2.5, 7.0))])
            placer.add(x, y, radius)
    bushes = []
    for _ in range(int(rng.integers(settings.bushes[0], settings.bushes[1] + 1))):
        x, y = to_world(
            float(rng.uniform(3.0, settings.max_distance)),
            float(rng.choice([-1, 1])) * (half_road + float(rng.uniform(3.0, 5.0))),
        )
        rx, ry, rz = (float(v) for v in rng.uniform([0.5, 0.5, 0.4], [1.5, 1.5, 1.0]))
        if placer.free(x, y, max(rx, ry)):
            z = float(layout.ground_height(np.float64(x), np.float64(y)))
            bushes.append([x, y, z + 0.6 * rz, rx, ry, rz])
            placer.add(x, y, max(rx, ry))
    layout.parts = np.asarray(parts, dtype=np.float64).reshape(-1, 7)
    layout.part_owner = np.asarray(owners, dtype=np.int64)
    layout.part_class = np.asarray(classes, dtype=np.int64)
    layout.poles = np.asarray(poles, dtype=np.float64).reshape(-1, 4)
    layout.bushes = np.asarray(bushes, dtype=np.float64).reshape(-1, 6)
