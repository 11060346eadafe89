"""KITTI object files: `calib/*.txt` (`calib`), `label_2/*.txt` (`labels`, the one label parser
of pc3d), projection of 3D boxes to the image (`projection`) and whole frames (`frame`).

Frames (KITTI's):
- LiDAR (Velodyne): x forward, y left, z up.
- Rectified camera 0 (`label_2` boxes live here): x right, y down, z forward.
  `lidar_to_cam = R0_rect @ Tr_velo_to_cam` maps LiDAR to it.
- Image 2 (left colour): pixels, `P2` projects rectified camera coordinates onto it.

Label boxes become `CameraBoxes3D` rows `x, y, z, l, h, w, rotation_y` (KITTI stores `h, w, l`;
MMDetection3D and pc3d order the sizes along the box's own x, y, z axes: length, height, width).
"""

from typing import TYPE_CHECKING

from pc3d.lazy import lazy_package

if TYPE_CHECKING:
    from pc3d.io.kitti.calib import KittiCalib, camera_to_lidar_boxes, lidar_to_camera_boxes, read_kitti_calib
    from pc3d.io.kitti.detections import DEFAULT_IMAGE_SIZE, detections_to_kitti_labels
    from pc3d.io.kitti.frame import KittiFrame, load_kitti_frame, read_png_size
    from pc3d.io.kitti.labels import (
        DONT_CARE,
        LABEL_FIELDS,
        KittiLabels,
        format_kitti_labels,
        parse_kitti_labels,
        read_kitti_labels,
        write_kitti_labels,
    )
    from pc3d.io.kitti.projection import ImageProjection, project_boxes_to_image, project_points_to_image

# Names load their module on first use: reading a calibration (`pc3d convert --calib`) imports
# no torch, which only the detections and frames need. Each tuple repeats its module's __all__ on
# purpose: `import pc3d.io.kitti` imports none of them.
_LAZY = {
    "pc3d.io.kitti.calib": (
        "KittiCalib",
        "camera_to_lidar_boxes",
        "lidar_to_camera_boxes",
        "read_kitti_calib",
    ),
    "pc3d.io.kitti.detections": ("DEFAULT_IMAGE_SIZE", "detections_to_kitti_labels"),
    "pc3d.io.kitti.frame": ("KittiFrame", "load_kitti_frame", "read_png_size"),
    "pc3d.io.kitti.labels": (
        "DONT_CARE",
        "LABEL_FIELDS",
        "KittiLabels",
        "format_kitti_labels",
        "parse_kitti_labels",
        "read_kitti_labels",
        "write_kitti_labels",
    ),
    "pc3d.io.kitti.projection": ("ImageProjection", "project_boxes_to_image", "project_points_to_image"),
}
__getattr__, __dir__ = lazy_package(__name__, _LAZY, globals())

# Written out, not derived from _LAZY as pc3d.io's is: a literal list marks the TYPE_CHECKING
# imports above as re-exports; tests/test_lazy.py checks that it names the table's names.
__all__ = [
    "DEFAULT_IMAGE_SIZE",
    "DONT_CARE",
    "LABEL_FIELDS",
    "ImageProjection",
    "KittiCalib",
    "KittiFrame",
    "KittiLabels",
    "camera_to_lidar_boxes",
    "detections_to_kitti_labels",
    "format_kitti_labels",
    "lidar_to_camera_boxes",
    "load_kitti_frame",
    "parse_kitti_labels",
    "project_boxes_to_image",
    "project_points_to_image",
    "read_kitti_calib",
    "read_kitti_labels",
    "read_png_size",
    "write_kitti_labels",
]
