"""`LiDARBoxes3D`: boxes in the LiDAR system (x forward, y left, z up)."""

from __future__ import annotations

from pc3d.structures.base_box3d import Boxes3D
from pc3d.structures.box_mode import BoxMode


class LiDARBoxes3D(Boxes3D):
    """3D boxes in LiDAR coordinates, MMDetection3D 1.x convention.

    ::

                           up z    x front (yaw = 0)
                              ^   ^
                              |  /
                              | /
        (yaw = pi/2) left y <-0

    Row: `x, y, z` bottom centre (relative origin (0.5, 0.5, 0)), `x_size, y_size, z_size` =
    length, width, height, `yaw` about +z, 0 along +x, increasing counter-clockwise seen from
    above (toward +y). `bev` is `(x, y, x_size, y_size, yaw)`; `flip("horizontal")` negates y,
    `flip("vertical")` negates x.

    `corners` (`[N, 8, 3]`) in MMDetection3D's order; seen from above for yaw 0, "k (m)" is
    bottom corner k with top corner m right above it::

                         +x (front, heading)
                          ^
                 7 (6) +--|--+ 4 (5)
                       |  |  |
                +y <------o  |          o: bottom centre
                       |     |
                 3 (2) +-----+ 0 (1)

    Bottom corners: 0 rear-right, 3 rear-left, 4 front-right, 7 front-left (rear/front along
    the heading, right/left across it); the top corners 1, 2, 5, 6 lie above 0, 3, 4, 7.
    """

    mode = BoxMode.LIDAR
    yaw_axis = 2
    up_sign = 1.0
    default_origin = (0.5, 0.5, 0.0)
    bev_axes = (0, 1)
    bev_yaw_sign = 1.0
    flip_axes = {"horizontal": 1, "vertical": 0}
    size_names = ("x_size (length)", "y_size (width)", "z_size (height)")
