"""`BoxMode`: which coordinate system boxes and points live in (LiDAR, Camera or Depth).

::

    LiDAR                      Camera                     Depth
          up z                        z front                   up z
             ^   x front             /                             ^   y front
             |  /                   /                              |  /
             | /                   0 ------> x right               | /
    left y <-0                     |                               0 ------> x right
                                   v
                                 down y

The same enum names the system of points; MMDetection3D's `Box3DMode` and `Coord3DMode` map onto
it one to one: its member names (`LIDAR`, `CAM`, `DEPTH`) are members here too, and its integer
values (0, 1, 2) parse. This module imports no torch, so light commands can list the names.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pc3d.errors import FormatError


class BoxMode(StrEnum):
    """Coordinate system of boxes or points: `"lidar"`, `"camera"` or `"depth"`.

    `BoxMode.CAM` is `BoxMode.CAMERA` (MMDetection3D's member name). `BoxMode.parse` and the
    constructor accept, case-insensitively, each value and each member name (`"camera"`,
    `"cam"`, `"LiDAR"`, ...) and MMDetection3D's integers (`Box3DMode.LIDAR == 0`, `CAM == 1`,
    `DEPTH == 2`). Anything else raises `FormatError` listing the valid names.
    """

    LIDAR = "lidar"
    CAMERA = "camera"
    DEPTH = "depth"
    CAM = "camera"  # an alias: MMDetection3D's name of the camera system

    @classmethod
    def _missing_(cls, value: object) -> BoxMode:
        if isinstance(value, str):
            key = value.strip().lower()
            for name, member in cls.__members__.items():
                if key in (name.lower(), member.value):
                    return member
        elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(_MMDET3D_ORDER):
            return cls(_MMDET3D_ORDER[value])
        raise FormatError(f"unknown box mode {value!r}; valid modes are {', '.join(map(repr, MODE_NAMES))}")

    @classmethod
    def parse(cls, value: BoxMode | str | int) -> BoxMode:
        """`value` as a `BoxMode`: a member unchanged, a string or MMDetection3D int as above.

        Args:
            value: a member, a name (`"camera"`, `"cam"`, ...) or MMDetection3D's 0, 1 or 2.

        Raises:
            FormatError: naming the value and the valid modes.
        """
        if isinstance(value, cls):
            return value
        return cls(value) if isinstance(value, str) else cls._missing_(value)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The canonical names, `("lidar", "camera", "depth")` (aliases left out)."""
        return tuple(member.value for member in cls)

    @staticmethod
    def convert(
        data: Any,
        src: BoxMode | str | int,
        dst: BoxMode | str | int,
        rt_mat: Any = None,
        with_yaw: bool = True,
        correct_yaw: bool = True,
        is_point: bool = False,
    ) -> Any:
        """MMDetection3D's `Box3DMode.convert` / `Coord3DMode.convert`: boxes or points from `src` to `dst`.

        Args:
            data: a box or points structure (converted as what it is), or raw boxes (`[N, 7+C]`
                Tensor, ndarray or lists) -- raw points with `is_point=True`.
            src: the data's system.
            dst: the target system.
            rt_mat: matrix taking `src` to `dst` coordinates; None for the default permutation.
            with_yaw: for raw boxes: False marks axis-aligned boxes.
            correct_yaw: turn the headings by `rt_mat` (pc3d's default; MMDetection3D's is False).
            is_point: read raw data as points `[N, 3+C]`.

        Returns:
            The converted data, of the kind given (see `convert_boxes` / `convert_points`).
        """
        from pc3d.structures.base_box3d import Boxes3D
        from pc3d.structures.base_points import BasePoints
        from pc3d.structures.conversion import convert_boxes, convert_points

        src, dst = BoxMode.parse(src), BoxMode.parse(dst)
        if isinstance(data, BasePoints) or (is_point and not isinstance(data, Boxes3D)):
            return convert_points(data, src, dst, rt_mat)
        return convert_boxes(data, src, dst, rt_mat, with_yaw=with_yaw, correct_yaw=correct_yaw)

    @property
    def z_up(self) -> bool:
        """True for LiDAR and Depth (gravity along -z), False for Camera (gravity along +y)."""
        return self is not BoxMode.CAMERA


# MMDetection3D's integer values of `Box3DMode` / `Coord3DMode`: LIDAR = 0, CAM = 1, DEPTH = 2.
_MMDET3D_ORDER = ("lidar", "camera", "depth")

MODE_NAMES: tuple[str, ...] = BoxMode.names()
"""The canonical mode names `("lidar", "camera", "depth")`, for choices and messages."""
