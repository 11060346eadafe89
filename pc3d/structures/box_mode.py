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

The same enum names the system of points; MMDetection3D's `Box3DMode` and `Coord3DMode` values
map onto it one to one (its `CAM` is `BoxMode.CAMERA`).
"""

from __future__ import annotations

from enum import StrEnum

from pc3d.errors import FormatError

# Spellings accepted besides the canonical values (MMDetection3D calls the camera system CAM).
_ALIASES = {"cam": "camera"}


class BoxMode(StrEnum):
    """Coordinate system of boxes or points; accepts the strings `"lidar"`, `"camera"`, `"depth"`.

    `BoxMode("Camera")`, `BoxMode.parse("LIDAR")` and `BoxMode.parse(BoxMode.DEPTH)` all work,
    case-insensitively; `"cam"` is accepted as MMDetection3D's name for the camera system. Any
    other string raises `FormatError` listing the valid names.
    """

    LIDAR = "lidar"
    CAMERA = "camera"
    DEPTH = "depth"

    @classmethod
    def _missing_(cls, value: object) -> BoxMode:
        if isinstance(value, str):
            key = value.strip().lower()
            key = _ALIASES.get(key, key)
            for member in cls:
                if member.value == key:
                    return member
        valid = ", ".join(repr(m.value) for m in cls)
        raise FormatError(f"unknown box mode {value!r}; valid modes are {valid}")

    @classmethod
    def parse(cls, value: BoxMode | str) -> BoxMode:
        """`value` as a `BoxMode` (a member is returned unchanged, strings are matched as above)."""
        return value if isinstance(value, cls) else cls(value)

    @property
    def z_up(self) -> bool:
        """True for LiDAR and Depth (gravity along -z), False for Camera (gravity along +y)."""
        return self is not BoxMode.CAMERA
