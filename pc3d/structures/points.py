"""Point clouds in the LiDAR, Camera and Depth systems: `LiDARPoints`, `CameraPoints`,
`DepthPoints` (all behaviour is `BasePoints`'; each class names its axes)."""

from __future__ import annotations

from pc3d.structures.base_points import AttributeDims, BasePoints
from pc3d.structures.box_mode import BoxMode


class LiDARPoints(BasePoints):
    """Points in the LiDAR system: x forward, y left, z up.

    `rotate(angle)` turns about +z counter-clockwise; `flip("horizontal")` negates y,
    `flip("vertical")` negates x; `bev` is (x, y).
    """

    mode = BoxMode.LIDAR
    rotation_axis = 2
    bev_axes = (0, 1)
    flip_axes = {"horizontal": 1, "vertical": 0}


class CameraPoints(BasePoints):
    """Points in the Camera system: x right, y down, z forward.

    `rotate(angle)` turns about y (+x toward -z for a positive angle, like the camera yaw);
    `flip("horizontal")` negates x, `flip("vertical")` negates z; `bev` is (x, z).
    """

    mode = BoxMode.CAMERA
    rotation_axis = 1
    bev_axes = (0, 2)
    flip_axes = {"horizontal": 0, "vertical": 2}


# Same shape as LiDARPoints: each system states its own axes as class attributes (a table, not code).
class DepthPoints(BasePoints):
    """Points in the Depth system: x right, y forward, z up.

    `rotate(angle)` turns about +z counter-clockwise; `flip("horizontal")` negates x,
    `flip("vertical")` negates y; `bev` is (x, y).
    """

    mode = BoxMode.DEPTH
    rotation_axis = 2
    bev_axes = (0, 1)
    flip_axes = {"horizontal": 0, "vertical": 1}


_POINTS_CLASSES: dict[BoxMode, type[BasePoints]] = {
    BoxMode.LIDAR: LiDARPoints,
    BoxMode.CAMERA: CameraPoints,
    BoxMode.DEPTH: DepthPoints,
}


def points_class(mode: BoxMode | str) -> type[BasePoints]:
    """The points class of `mode` (`"lidar"` -> `LiDARPoints`, ...).

    Args:
        mode: a `BoxMode` or any spelling `BoxMode.parse` accepts.

    Raises:
        FormatError: an unknown mode.
    """
    return _POINTS_CLASSES[BoxMode.parse(mode)]


__all__ = ["AttributeDims", "BasePoints", "CameraPoints", "DepthPoints", "LiDARPoints", "points_class"]
