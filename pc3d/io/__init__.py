"""Reading and writing pc3d's inputs and outputs.

- `pc3d.io.points`: point clouds (`.bin`, `.npy`, `.pcd`, `.ply`): `read_point_file`,
  `write_point_file`, `load_points` / `save_points` (points structures).
- `pc3d.io.kitti`: KITTI calibration and labels, frames, projection of boxes to the image.
- `pc3d.io.boxes`: box files (JSON, CSV/TXT, `.npy`): `read_box_file`, `write_box_file`,
  `load_boxes` / `save_boxes`.
- `pc3d.io.atomic`: atomic file writes (`atomic_write`, `atomic_write_bytes`, `atomic_write_text`).
- `pc3d.io.jsonio`: JSON output, non-finite numbers as ``null`` (`dumps`, `write_json`).
"""

import importlib
from typing import Any

# Attributes load their module on first use, so that `pc3d.io.atomic` and `pc3d.io.jsonio`
# (used by light commands and the config layer) do not pull in numpy and torch.
_LAZY = {
    "pc3d.io.boxes": (
        "BOX_EXTENSIONS",
        "BoxFile",
        "load_boxes",
        "looks_like_kitti_labels",
        "read_box_file",
        "save_boxes",
        "write_box_file",
    ),
    "pc3d.io.kitti": (
        "ImageProjection",
        "KittiCalib",
        "KittiFrame",
        "KittiLabels",
        "camera_to_lidar_boxes",
        "lidar_to_camera_boxes",
        "load_kitti_frame",
        "project_boxes_to_image",
        "project_points_to_image",
        "read_kitti_calib",
        "read_kitti_labels",
        "write_kitti_labels",
    ),
    "pc3d.io.points": (
        "POINT_EXTENSIONS",
        "NonFinitePointsWarning",
        "PointCloudData",
        "load_points",
        "read_point_file",
        "save_points",
        "write_point_file",
    ),
}
_MODULE_OF = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'pc3d.io' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "BOX_EXTENSIONS",
    "POINT_EXTENSIONS",
    "BoxFile",
    "ImageProjection",
    "KittiCalib",
    "KittiFrame",
    "KittiLabels",
    "NonFinitePointsWarning",
    "PointCloudData",
    "camera_to_lidar_boxes",
    "lidar_to_camera_boxes",
    "load_boxes",
    "looks_like_kitti_labels",
    "load_kitti_frame",
    "load_points",
    "project_boxes_to_image",
    "project_points_to_image",
    "read_box_file",
    "read_kitti_calib",
    "read_kitti_labels",
    "read_point_file",
    "save_boxes",
    "save_points",
    "write_box_file",
    "write_kitti_labels",
    "write_point_file",
]
