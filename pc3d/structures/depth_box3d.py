"""`DepthBoxes3D`: boxes in the Depth system (x right, y forward, z up)."""

from __future__ import annotations

from pc3d.structures.base_box3d import Boxes3D
from pc3d.structures.box_mode import BoxMode


class DepthBoxes3D(Boxes3D):
    """3D boxes in Depth coordinates (indoor scans), MMDetection3D 1.x convention.

    ::

        up z    y front (yaw = pi/2)
           ^   ^
           |  /
           | /
           0 ------> x right (yaw = 0)

    Row: `x, y, z` bottom centre (relative origin (0.5, 0.5, 0)), `x_size, y_size, z_size` along
    the box's own x, y, z before rotation, `yaw` about +z, 0 along +x, counter-clockwise seen from
    above. `bev` is `(x, y, x_size, y_size, yaw)`; `flip("horizontal")` negates x,
    `flip("vertical")` negates y.

    `corners` (`[N, 8, 3]`) in MMDetection3D's order; seen from above for yaw 0, "k (m)" is
    bottom corner k with top corner m right above it::

                          +y (front)
                           ^
                 3 (2) +---|---+ 7 (6)
                       |   |   |
                       |   o------> +x (heading)
                       |       |
                 0 (1) +-------+ 4 (5)
    """

    mode = BoxMode.DEPTH
    yaw_axis = 2
    up_sign = 1.0
    default_origin = (0.5, 0.5, 0.0)
    bev_axes = (0, 1)
    bev_yaw_sign = 1.0
    flip_axes = {"horizontal": 0, "vertical": 1}
