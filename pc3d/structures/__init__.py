"""3D boxes and point clouds in the LiDAR, Camera and Depth systems, with exact conversions.

Conventions are MMDetection3D 1.x's (see `docs/structures.md`): boxes are float32
`Tensor[N, 7+C]` rows `x, y, z, x_size, y_size, z_size, yaw, extras...` with `(x, y, z)` the
bottom centre; points are `Tensor[N, 3+C]` with named extra columns.

    from pc3d.structures import CameraBoxes3D, BoxMode
    cam = CameraBoxes3D([[1.84, 1.47, 8.41, 1.2, 1.89, 0.48, 0.01]])   # KITTI l, h, w
    lidar = cam.convert_to(BoxMode.LIDAR, rt_mat=cam_to_velo)           # 4x4 calibration
    inside = lidar.points_in_boxes_part(points)                         # LongTensor, -1 = none
    iou = LiDARBoxes3D.overlaps(lidar, other)                           # (N, M) exact 3D IoU

Names load their module on first use, so `pc3d.structures.box_mode` (`BoxMode`, `MODE_NAMES`)
imports without torch.
"""

from typing import TYPE_CHECKING

from pc3d.lazy import lazy_package

if TYPE_CHECKING:
    from pc3d.structures.angles import limit_period
    from pc3d.structures.base_box3d import Boxes3D, box_class
    from pc3d.structures.base_points import BasePoints
    from pc3d.structures.box_mode import MODE_NAMES, BoxMode
    from pc3d.structures.cam_box3d import CameraBoxes3D
    from pc3d.structures.conversion import convert_boxes, convert_points
    from pc3d.structures.coord_transform import default_rt_mat
    from pc3d.structures.depth_box3d import DepthBoxes3D
    from pc3d.structures.detections import Detections3D
    from pc3d.structures.lidar_box3d import LiDARBoxes3D
    from pc3d.structures.points import CameraPoints, DepthPoints, LiDARPoints, points_class

_LAZY = {
    "pc3d.structures.base_box3d": ("Boxes3D", "box_class"),
    "pc3d.structures.base_points": ("BasePoints",),
    "pc3d.structures.box_mode": ("BoxMode", "MODE_NAMES"),
    "pc3d.structures.cam_box3d": ("CameraBoxes3D",),
    "pc3d.structures.conversion": ("convert_boxes", "convert_points"),
    "pc3d.structures.coord_transform": ("default_rt_mat",),
    "pc3d.structures.depth_box3d": ("DepthBoxes3D",),
    "pc3d.structures.detections": ("Detections3D",),
    "pc3d.structures.lidar_box3d": ("LiDARBoxes3D",),
    "pc3d.structures.points": ("CameraPoints", "DepthPoints", "LiDARPoints", "points_class"),
    "pc3d.structures.angles": ("limit_period",),
}
__getattr__, __dir__ = lazy_package(__name__, _LAZY, globals())

# A literal list, as pc3d.io.kitti's: it marks the TYPE_CHECKING imports as re-exports;
# tests/test_lazy.py checks that it names the table's names.
__all__ = [
    "MODE_NAMES",
    "BasePoints",
    "BoxMode",
    "Boxes3D",
    "CameraBoxes3D",
    "CameraPoints",
    "DepthBoxes3D",
    "Detections3D",
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
