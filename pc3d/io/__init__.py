"""Reading and writing pc3d's inputs and outputs.

- `pc3d.io.points`: point clouds (`.bin`, `.npy`, `.pcd`, `.ply`): `read_point_file`,
  `write_point_file`, `load_points` / `save_points` (points structures), the NaN policy. The
  formats themselves: `pc3d.io.point_formats` (one module each).
- `pc3d.io.boxes`: box files (JSON, CSV/TXT, `.npy`, KITTI labels): `read_box_file`,
  `write_box_file`, `load_boxes` / `save_boxes`; `BoxFile` and its checks in `pc3d.io.box_file`,
  the formats in `pc3d.io.box_json` and `pc3d.io.box_table`.
- `pc3d.io.file_kinds`: whether a file holds points or boxes (`.npy` included): `file_kind`.
- `pc3d.io.kitti`: KITTI calibration, labels (pc3d's one `label_2` parser), projection of boxes
  to the image, whole frames.
- `pc3d.io.atomic`: atomic file writes (`atomic_write`, `atomic_write_bytes`, `atomic_write_text`).
- `pc3d.io.jsonio`: JSON output, non-finite numbers as ``null`` (`dumps`, `write_json`).
- `pc3d.io.values`: checks shared by the readers (`is_number`, `first_non_finite`).
"""

from pc3d.lazy import lazy_package

# Attributes load their module on first use, so that `pc3d.io.atomic` and `pc3d.io.jsonio`
# (used by light commands and the config layer) do not pull in numpy and torch. The tuples repeat
# names of the submodules' __all__ (pc3d.io.boxes', pc3d.io.kitti's) on purpose: listed here,
# `import pc3d.io` imports no submodule; tests/io resolves every name listed.
_LAZY = {
    "pc3d.io.atomic": ("atomic_write", "atomic_write_bytes", "atomic_write_text"),
    "pc3d.io.boxes": (
        "BOX_EXTENSIONS",
        "BoxFile",
        "box_columns",
        "load_boxes",
        "looks_like_kitti_labels",
        "read_box_file",
        "resolve_mode",
        "save_boxes",
        "write_box_file",
    ),
    "pc3d.io.file_kinds": ("FILE_KINDS", "file_kind"),
    "pc3d.io.jsonio": ("dumps", "to_jsonable", "write_json"),
    "pc3d.io.kitti": (
        "ImageProjection",
        "KittiCalib",
        "KittiFrame",
        "KittiLabels",
        "camera_to_lidar_boxes",
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
    ),
    "pc3d.io.points": (
        "NAN_POLICIES",
        "POINT_EXTENSIONS",
        "NonFinitePointsWarning",
        "PointCloudData",
        "load_points",
        "points_from_data",
        "read_point_file",
        "save_points",
        "write_point_file",
    ),
}
__getattr__, __dir__ = lazy_package(__name__, _LAZY, globals())


__all__ = sorted(name for names in _LAZY.values() for name in names)
