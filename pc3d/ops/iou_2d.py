"""Axis-aligned 2D box geometry for `x1, y1, x2, y2` boxes (`x1 <= x2`, `y1 <= y2`).

Width is `x2 - x1` (continuous coordinates, no "+1" pixel convention). Pairwise functions take
`Tensor[N, 4]` and `Tensor[M, 4]` and return `Tensor[N, M]`; `aligned=True` takes two `Tensor[N, 4]`
and returns `Tensor[N]` for row-wise pairs. Leading batch dimensions are allowed
(`Tensor[..., N, 4]`). Degenerate boxes (zero area) get IoU 0 with everything; `eps` only guards
divisions by zero; with `eps=0` a zero union gives 0 exactly. `box_iou_2d` is the aligned IoU of
pairs in float64 that 2D NMS and the KITTI evaluation use.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from pc3d.errors import FormatError, ShapeError
from pc3d.ops.bev_area import overlap_ratio

__all__ = ["OverlapMode", "bbox_overlaps", "box_area", "box_iou", "box_iou_2d", "generalized_box_iou"]

OverlapMode = Literal["iou", "iof", "giou"]


def _check(boxes: Tensor, what: str) -> None:
    if not isinstance(boxes, Tensor):
        raise FormatError(f"{what} must be a tensor, got {type(boxes).__name__}")
    if boxes.dim() < 2 or boxes.shape[-1] != 4:
        raise ShapeError(f"{what} must have shape (..., N, 4) as x1, y1, x2, y2, got {tuple(boxes.shape)}")


def box_area(boxes: Tensor) -> Tensor:
    """`Tensor[..., N, 4]` -> `Tensor[..., N]` areas `(x2 - x1) * (y2 - y1)`."""
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def bbox_overlaps(
    boxes1: Tensor, boxes2: Tensor, mode: OverlapMode = "iou", aligned: bool = False, eps: float = 1e-6
) -> Tensor:
    """IoU, IoF (intersection over the area of `boxes1`) or GIoU of 2D boxes.

    Args:
        boxes1: `Tensor[..., N, 4]`.
        boxes2: `Tensor[..., M, 4]` (`M == N` when `aligned`).
        mode: `"iou"`, `"iof"` or `"giou"` (GIoU is in [-1, 1]).
        aligned: row-wise pairs instead of all pairs.
        eps: added to the denominators (a union or enclosing area of 0 then gives 0); with 0,
            IoU and IoF are exact ratios, 0 where the denominator is 0.

    Returns:
        `Tensor[..., N, M]`, or `Tensor[..., N]` when `aligned`.
    """
    _check(boxes1, "boxes1")
    _check(boxes2, "boxes2")
    if mode not in ("iou", "iof", "giou"):
        raise FormatError(f"mode must be 'iou', 'iof' or 'giou', got {mode!r}")
    if aligned and boxes1.shape[-2] != boxes2.shape[-2]:
        raise ShapeError(
            f"aligned overlaps need as many boxes on each side, got {boxes1.shape[-2]} and {boxes2.shape[-2]}"
        )
    area1 = box_area(boxes1)
    area2 = box_area(boxes2)
    if aligned:
        a, b = boxes1, boxes2
    else:
        a, b = boxes1[..., :, None, :], boxes2[..., None, :, :]
        area1 = area1[..., :, None]
        area2 = area2[..., None, :]
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    if eps == 0 and mode != "giou":
        return overlap_ratio(inter, area1, area2, mode)
    if mode == "iof":
        return inter / (area1 + eps)
    union = area1 + area2 - inter
    iou = inter / (union + eps)
    if mode == "iou":
        return iou
    enclose_wh = (torch.maximum(a[..., 2:], b[..., 2:]) - torch.minimum(a[..., :2], b[..., :2])).clamp(min=0)
    enclose = enclose_wh[..., 0] * enclose_wh[..., 1]
    return iou - (enclose - union) / (enclose + eps)


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise IoU: `Tensor[N, 4]`, `Tensor[M, 4]` -> `Tensor[N, M]`."""
    return bbox_overlaps(boxes1, boxes2, "iou")


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise GIoU (Rezatofighi et al., 2019): `Tensor[N, 4]`, `Tensor[M, 4]` -> `Tensor[N, M]` in [-1, 1]."""
    return bbox_overlaps(boxes1, boxes2, "giou")


def box_iou_2d(a: Tensor, b: Tensor, mode: str = "iou") -> Tensor:
    """IoU of aligned pairs of boxes `Tensor[P, 4]` -> `Tensor[P]`, exactly, in float64.

    Args:
        a: `Tensor[P, 4]`.
        b: `Tensor[P, 4]`.
        mode: `"iou"`, or `"iof"` for the intersection over the area of the box of `a`
            (KITTI's DontCare test).

    Returns:
        `Tensor[P]` float64; a pair whose union (or `a`'s area, for IoF) is 0 gives 0.

    Raises:
        FormatError: an unknown mode.
    """
    if mode not in ("iou", "iof"):
        raise FormatError(f"mode must be 'iou' or 'iof', got {mode!r}")
    return bbox_overlaps(a.double(), b.double(), mode, aligned=True, eps=0.0)  # type: ignore[arg-type]
