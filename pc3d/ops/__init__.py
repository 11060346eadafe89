"""Vectorised ops on points and boxes, on any torch device (see `docs/ops.md`).

- voxelization: `hard_voxelize`, `dynamic_voxelize`, `voxel_scatter`
- rotated IoU: `box_iou_bev`, `box_iou_3d` (pairwise or `aligned=True`), `bev_intersection_area`
- NMS: `nms_2d`, `batched_nms_2d`, `nms_bev`, `batched_nms_bev`, `circle_nms`
- points in boxes: `points_in_boxes` (and the tensor kernels `points_in_boxes_first`/`_mask`)

Box arguments are `Boxes3D` structures of one system or `Tensor[N, 7+C]` read as LiDAR boxes.
"""

from pc3d.ops.iou_rotated import bev_intersection_area, box_iou_3d, box_iou_bev
from pc3d.ops.nms import batched_nms_2d, batched_nms_bev, box_iou_2d, circle_nms, nms_2d, nms_bev
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
