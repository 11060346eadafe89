"""The structure-aware entry points to `pc3d.ops`: points in boxes, overlaps (IoU) and NMS.

`pc3d.ops` computes on z-up box tensors only. These methods of `Boxes3D` check that both sides
are in one system, view Camera data in z-up axes (`coord_transform.z_up_tensor`, an exact axis
permutation, so the numbers are the same as in camera axes) and call the kernels. Names and
signatures are MMDetection3D's (`points_in_boxes_part`, `points_in_boxes_all`, `overlaps`,
`height_overlaps`); `bev_overlaps` and `nms_bev` are pc3d's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
from torch import Tensor

from pc3d.errors import FormatError, ShapeError
from pc3d.ops.iou_rotated import box_iou_3d, box_iou_bev
from pc3d.ops.nms import batched_nms_bev, nms_bev
from pc3d.ops.points_in_boxes import points_in_boxes_first, points_in_boxes_mask
from pc3d.structures.base_points import BasePoints
from pc3d.structures.box_mode import BoxMode
from pc3d.structures.coord_transform import z_up_tensor
from pc3d.structures.utils import as_float_tensor

if TYPE_CHECKING:
    from pc3d.structures.base_box3d import Boxes3D

PointsLike = Tensor | np.ndarray | BasePoints


def _same_system(boxes1: object, boxes2: object) -> None:
    """Both must be box structures of one class (one system)."""
    from pc3d.structures.base_box3d import Boxes3D

    if not isinstance(boxes1, Boxes3D) or not isinstance(boxes2, Boxes3D):
        name, bad = ("boxes1", boxes1) if not isinstance(boxes1, Boxes3D) else ("boxes2", boxes2)
        raise FormatError(
            f"{name} must be a Boxes3D structure, got {type(bad).__name__}; for z-up box tensors "
            "use pc3d.ops.box_iou_3d / box_iou_bev"
        )
    if type(boxes1) is not type(boxes2):
        raise FormatError(
            f"boxes are in different systems ({boxes1.mode.value} and {boxes2.mode.value}); "
            f"convert one with .convert_to({boxes1.mode.value!r}) first"
        )


class BoxOpsMixin:
    """Points in boxes, overlaps and NMS of `Boxes3D` (see the module docstring)."""

    tensor: Tensor
    mode: ClassVar[BoxMode]
    yaw_axis: ClassVar[int]
    up_sign: ClassVar[float]

    if TYPE_CHECKING:

        def _check_points_mode(self, points: BasePoints) -> None: ...

    # ------------------------------------------------------------------------ points in boxes
    def _points_xyz(self, points: PointsLike) -> Tensor:
        """`Tensor[M, 3]` coordinates of `points` (same system) on the boxes' device."""
        if isinstance(points, BasePoints):
            self._check_points_mode(points)
            return points.tensor[:, :3].to(self.tensor.device)
        xyz = as_float_tensor(points, "points", device=self.tensor.device)
        if xyz.dim() == 3 and xyz.shape[0] == 1:  # MMDetection3D's (1, M, 3) batch of one
            xyz = xyz[0]
        if xyz.dim() != 2 or xyz.shape[1] < 3:
            raise ShapeError(f"points must have shape (M, 3+C) or (1, M, 3+C), got {tuple(xyz.shape)}")
        return xyz[:, :3]

    def _z_up_boxes(self, boxes_override: Tensor | None) -> Tensor:
        boxes = (
            self.tensor
            if boxes_override is None
            else as_float_tensor(boxes_override, "boxes_override", device=self.tensor.device)
        )
        if boxes.dim() != 2 or boxes.shape[1] < 7:
            raise ShapeError(f"boxes_override must have shape (N, 7+C), got {tuple(boxes.shape)}")
        return z_up_tensor(boxes[:, :7], self.mode)

    def points_in_boxes_part(self, points: PointsLike, boxes_override: Tensor | None = None) -> Tensor:
        """Index of the first box holding each point.

        Args:
            points: `BasePoints` of the boxes' system, or `Tensor`/`ndarray` `[M, 3+C]` (or
                MMDetection3D's `[1, M, 3+C]`) in that system.
            boxes_override: `Tensor[N, 7+C]` boxes in this class's system to test instead of
                these boxes.

        Returns:
            `LongTensor[M]`: the lowest index of a box holding each point, -1 for none. Faces
            are closed.

        Raises:
            FormatError: points of another system.
            ShapeError: points not `(M, 3+C)`.
        """
        return points_in_boxes_first(
            z_up_tensor(self._points_xyz(points), self.mode, "points"), self._z_up_boxes(boxes_override)
        )

    def points_in_boxes_all(self, points: PointsLike, boxes_override: Tensor | None = None) -> Tensor:
        """Every box holding each point.

        Args:
            points: as in `points_in_boxes_part`.
            boxes_override: as in `points_in_boxes_part`.

        Returns:
            `BoolTensor[M, N]`: entry (i, j) is True when point i lies in box j.
        """
        return points_in_boxes_mask(
            z_up_tensor(self._points_xyz(points), self.mode, "points"), self._z_up_boxes(boxes_override)
        )

    # MMDetection3D's older names (deprecated there, plain aliases here).
    points_in_boxes = points_in_boxes_part
    points_in_boxes_batch = points_in_boxes_all

    # ----------------------------------------------------------------------------- overlaps
    @classmethod
    def height_overlaps(cls, boxes1: Boxes3D, boxes2: Boxes3D) -> Tensor:
        """`Tensor[N, M]`: length of the overlap of the vertical extents of each pair (>= 0).

        Args:
            boxes1: N boxes.
            boxes2: M boxes of the same class (system).

        Raises:
            FormatError: not box structures of one system.
        """
        _same_system(boxes1, boxes2)
        # Vertical extents measured upward (Camera's y points down).
        low1 = boxes1.up_sign * boxes1.bottom_height
        low2 = boxes2.up_sign * boxes2.bottom_height
        top = torch.minimum((low1 + boxes1.height)[:, None], (low2 + boxes2.height)[None, :])
        return (top - torch.maximum(low1[:, None], low2[None, :])).clamp(min=0)

    @classmethod
    def overlaps(cls, boxes1: Boxes3D, boxes2: Boxes3D, mode: str = "iou") -> Tensor:
        """3D IoU (or IoF) of every pair of rotated boxes, exact.

        Args:
            boxes1: N boxes.
            boxes2: M boxes of the same class (system).
            mode: `"iou"`, or `"iof"` (intersection over the volume of the box of `boxes1`).

        Returns:
            `Tensor[N, M]` in the boxes' dtype; 0 for pairs of empty boxes.

        Raises:
            FormatError: not box structures of one system, or an unknown mode.
        """
        _same_system(boxes1, boxes2)
        return box_iou_3d(boxes1._z_up_boxes(None), boxes2._z_up_boxes(None), mode=mode)

    # Same docstring shape as overlaps: the BEV variant documents its own plane and area instead of volume.
    @classmethod
    def bev_overlaps(cls, boxes1: Boxes3D, boxes2: Boxes3D, mode: str = "iou") -> Tensor:
        """IoU (or IoF) of the BEV rectangles of every pair (Camera: the x-z plane), exact.

        Args:
            boxes1: N boxes.
            boxes2: M boxes of the same class (system).
            mode: `"iou"`, or `"iof"` (intersection over the area of the box of `boxes1`).

        Returns:
            `Tensor[N, M]` in the boxes' dtype.

        Raises:
            FormatError: not box structures of one system, or an unknown mode.
        """
        _same_system(boxes1, boxes2)
        return box_iou_bev(boxes1._z_up_boxes(None), boxes2._z_up_boxes(None), mode=mode)

    # ---------------------------------------------------------------------------------- NMS
    def nms_bev(
        self,
        scores: Tensor,
        iou_threshold: float,
        score_threshold: float | None = None,
        pre_max: int | None = None,
        post_max: int | None = None,
        labels: Tensor | None = None,
    ) -> Tensor:
        """Greedy NMS of these boxes by their exact BEV IoU (`pc3d.ops.nms_bev`).

        Args:
            scores: `Tensor[N]`.
            iou_threshold: a box is suppressed by a kept box when their IoU is `> iou_threshold`.
            score_threshold: only boxes with `score > score_threshold` take part.
            pre_max: only the `pre_max` best-scored boxes take part.
            post_max: at most this many boxes are returned.
            labels: `LongTensor[N]`: boxes with different labels never suppress each other.

        Returns:
            `LongTensor[K]`: indices of the kept boxes, highest score first.
        """
        boxes = self._z_up_boxes(None)
        if labels is None:
            return nms_bev(boxes, scores, iou_threshold, score_threshold, pre_max, post_max)
        return batched_nms_bev(boxes, scores, labels, iou_threshold, score_threshold, pre_max, post_max)
