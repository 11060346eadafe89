"""3D boxes and point clouds in the LiDAR, Camera and Depth systems, with exact conversions.

Conventions are MMDetection3D 1.x's (see `docs/structures.md`): boxes are float32
`Tensor[N, 7+C]` rows `x, y, z, x_size, y_size, z_size, yaw, extras...` with `(x, y, z)` the
bottom centre; points are `Tensor[N, 3+C]` with named extra columns.

    from pc3d.structures import CameraBoxes3D, BoxMode
    cam = CameraBoxes3D([[1.84, 1.47, 8.41, 1.2, 1.89, 0.48, 0.01]])   # KITTI l, h, w
    lidar = cam.convert_to(BoxMode.LIDAR, rt_mat=cam_to_velo)           # 4x4 calibration
    inside = lidar.points_in_boxes(points)                              # LongTensor, -1 = none
"""

from pc3d.structures.base_box3d import Boxes3D, box_class
from pc3d.structures.box_mode import BoxMode
from pc3d.structures.cam_box3d import CameraBoxes3D
from pc3d.structures.conversion import convert_boxes, convert_points
from pc3d.structures.coord_transform import default_rt_mat
from pc3d.structures.depth_box3d import DepthBoxes3D
from pc3d.structures.lidar_box3d import LiDARBoxes3D
from pc3d.structures.points import BasePoints, CameraPoints, DepthPoints, LiDARPoints, points_class
from pc3d.structures.utils import limit_period

__all__ = [
    "BasePoints",
    "BoxMode",
    "Boxes3D",
    "CameraBoxes3D",
    "CameraPoints",
    "DepthBoxes3D",
    "DepthPoints",
    "LiDARBoxes3D",
    "LiDARPoints",
    "box_class",
    "convert_boxes",
    "convert_points",
    "default_rt_mat",
    "limit_period",
    "points_class",
]
