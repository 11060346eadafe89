"""`DepthBoxes3D`: boxes in the Depth system (x right, y forward, z up)."""

from __future__ import annotations

import torch
from torch import Tensor

from pc3d.structures.base_box3d import Boxes3D
from pc3d.structures.box_mode import BoxMode

# Directions (in the box frame, times half the sizes) of the centres of the 6 faces and of the
# 12 edges, in MMDetection3D's order.
_FACE_DIRECTIONS = ((0, 0, 1), (0, 0, -1), (0, 1, 0), (0, -1, 0), (1, 0, 0), (-1, 0, 0))
_EDGE_DIRECTIONS = (
    (1, 0, 1),
    (-1, 0, 1),
    (0, 1, 1),
    (0, -1, 1),
    (1, 0, -1),
    (-1, 0, -1),
    (0, 1, -1),
    (0, -1, -1),
    (1, 1, 0),
    (1, -1, 0),
    (-1, 1, 0),
    (-1, -1, 0),
)


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

    # LiDARBoxes3D's attributes but flip_axes, on purpose: each system states its conventions in
    # full (a table, not code).
    mode = BoxMode.DEPTH
    yaw_axis = 2
    up_sign = 1.0
    default_origin = (0.5, 0.5, 0.0)
    bev_axes = (0, 1)
    bev_yaw_sign = 1.0
    flip_axes = {"horizontal": 0, "vertical": 1}

    def get_surface_line_center(self) -> tuple[Tensor, Tensor]:
        """Centres of the 6 faces and of the 12 edges of each box (H3DNet's geometric targets).

        Returns:
            `(surface_center Tensor[N * 6, 3], line_center Tensor[N * 12, 3])`, box-major (rows
            `6 * i ... 6 * i + 5` belong to box i), each face and edge in MMDetection3D's order.
        """
        centre = self.gravity_center[:, None, :]  # [N, 1, 3]
        half = self.dims[:, None, :] / 2
        cos, sin = torch.cos(self.yaw)[:, None], torch.sin(self.yaw)[:, None]

        def centres(directions: tuple[tuple[int, int, int], ...]) -> Tensor:
            offset = half * self.tensor.new_tensor(directions)  # [N, K, 3] in the box frame
            turned = torch.stack(
                [
                    offset[..., 0] * cos - offset[..., 1] * sin,
                    offset[..., 0] * sin + offset[..., 1] * cos,
                    offset[..., 2],
                ],
                dim=-1,
            )
            return (centre + turned).reshape(-1, 3)

        return centres(_FACE_DIRECTIONS), centres(_EDGE_DIRECTIONS)
