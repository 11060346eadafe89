"""Sample data and the structure classes the structure tests share.

The three box kinds, the two point kinds every module builds and `BoxMode` are imported here once, so
each test module names them in one line.
"""

from __future__ import annotations

from pc3d.structures import BoxMode, CameraBoxes3D, CameraPoints, DepthBoxes3D, LiDARBoxes3D, LiDARPoints

__all__ = ["ROW", "BoxMode", "CameraBoxes3D", "CameraPoints", "DepthBoxes3D", "LiDARBoxes3D", "LiDARPoints"]

# One LiDAR box: x, y, z, dx, dy, dz, yaw (a list: the input kind most tests start from).
ROW = [1.0, 2.0, 3.0, 4.0, 2.0, 1.5, 0.3]
