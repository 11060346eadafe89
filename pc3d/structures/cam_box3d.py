"""`CameraBoxes3D`: boxes in the Camera system (x right, y down, z forward)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from pc3d.structures.base_box3d import Boxes3D
from pc3d.structures.box_mode import BoxMode


class CameraBoxes3D(Boxes3D):
    """3D boxes in (rectified) camera coordinates, MMDetection3D 1.x and KITTI convention.

    ::

                z front (yaw = -pi/2)
               /
              /
             0 ------> x right (yaw = 0)
             |
             |
             v
        down y

    Row: `x, y, z` bottom centre (relative origin (0.5, 1.0, 0.5): the bottom face has the
    largest y), `x_size, y_size, z_size` = length, height, width (KITTI's l, h, w), `yaw` about
    y, 0 along +x and *decreasing* from +x toward +z (KITTI's `rotation_y`). Heights grow toward
    -y: `top_height = bottom_height - height`. `bev` is `(x, z, x_size, z_size, -yaw)`;
    `flip("horizontal")` negates x, `flip("vertical")` negates z.

    `corners` (`[N, 8, 3]`) in MMDetection3D's order; seen from above (from -y) for yaw 0,
    "k (m)" is top corner k with bottom corner m right below it::

                          +z (forward)
                           ^
                 1 (2) +---|---+ 5 (6)
                       |   |   |
                       |   o------> +x (heading)
                       |       |
                 0 (3) +-------+ 4 (7)

    so corners 0, 1, 4, 5 are on top (smallest y) and 2, 3, 6, 7 on the bottom face.
    """

    mode = BoxMode.CAMERA
    yaw_axis = 1
    up_sign = -1.0
    default_origin = (0.5, 1.0, 0.5)
    bev_axes = (0, 2)
    bev_yaw_sign = -1.0
    flip_axes = {"horizontal": 0, "vertical": 2}
    size_names = ("x_size (length)", "y_size (height)", "z_size (width)")

    @property
    def local_yaw(self) -> Tensor:
        """`Tensor[N]`: the observation angle (KITTI's `alpha`), `yaw - atan2(x, z)` of the
        gravity centre, in `[-pi, pi]` (monocular detectors regress it)."""
        centre = self.gravity_center
        local = self.yaw - torch.atan2(centre[:, 0], centre[:, 2])
        # One turn at most, as MMDetection3D (enough for yaws in [-pi, pi]).
        local = torch.where(local > math.pi, local - 2 * math.pi, local)
        return torch.where(local < -math.pi, local + 2 * math.pi, local)
