"""Vectorised tensor-in/tensor-out kernels on points and boxes, on any torch device.

- voxelization: `hard_voxelize`, `dynamic_voxelize`, `voxel_scatter`
- rotated IoU: `box_iou_bev`, `box_iou_3d` (pairwise or `aligned=True`, IoU or IoF),
  `bev_intersection_area`, `box_iou_2d`; `boxes_overlap_bev` (do they overlap at all?)
- NMS: `nms_2d`, `batched_nms_2d`, `nms_bev`, `batched_nms_bev`, `circle_nms`
- points in boxes: `points_in_boxes` (checked) and the kernels `points_in_boxes_first`/`_mask`
- input checks shared with `pc3d.structures`: `pc3d.ops.checks` (`check_finite`, ...)

Box arguments are z-up box tensors `Tensor[N, 7+C]`: bottom centre `x, y, z`, sizes
`x_size, y_size, z_size`, yaw counter-clockwise about +z (0 along +x) -- the LiDAR and Depth
layouts. This package never imports `pc3d.structures`: box structures of every system (Camera
included) call these kernels through their own methods (`Boxes3D.overlaps`, `bev_overlaps`,
`points_in_boxes_part`, `nms_bev`). See `docs/ops.md`.
"""

from pc3d.ops.bev_area import bev_intersection_area
from pc3d.ops.bev_overlap import boxes_overlap_bev
from pc3d.ops.iou_2d import box_iou_2d
from pc3d.ops.iou_rotated import box_iou_3d, box_iou_bev
from pc3d.ops.nms import batched_nms_2d, batched_nms_bev, circle_nms, nms_2d, nms_bev
from pc3d.ops.points_in_boxes import points_in_boxes, points_in_boxes_first, points_in_boxes_mask
from pc3d.ops.voxelize import (
    HardVoxels,
    ScatteredVoxels,
    dynamic_voxelize,
    hard_voxelize,
    spconv_available,
    voxel_grid,
    voxel_scatter,
)

__all__ = [
    "HardVoxels",
    "ScatteredVoxels",
    "batched_nms_2d",
    "batched_nms_bev",
    "bev_intersection_area",
    "box_iou_2d",
    "box_iou_3d",
    "box_iou_bev",
    "boxes_overlap_bev",
    "circle_nms",
    "dynamic_voxelize",
    "hard_voxelize",
    "nms_2d",
    "nms_bev",
    "points_in_boxes",
    "points_in_boxes_first",
    "points_in_boxes_mask",
    "spconv_available",
    "voxel_grid",
    "voxel_scatter",
]
