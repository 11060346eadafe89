"""Sample data the structure tests share."""

from __future__ import annotations

# One LiDAR box: x, y, z, dx, dy, dz, yaw (a list: the input kind most tests start from).
ROW = [1.0, 2.0, 3.0, 4.0, 2.0, 1.5, 0.3]
