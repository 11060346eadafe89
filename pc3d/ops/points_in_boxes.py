"""Which points lie inside which boxes, for z-up boxes (LiDAR and Depth systems).

Boxes are `Tensor[M, 7+C]`: bottom centre `x, y, z`, sizes `x_size, y_size, z_size` along the
box's own axes, and `yaw` counter-clockwise about +z (yaw 0 along +x). A point is inside when its
offset, rotated into the box frame, satisfies `|u| <= x_size/2`, `|v| <= y_size/2` and
`0 <= w <= z_size` (closed faces).
"""

from __future__ import annotations

import torch
from torch import Tensor

# Points handled per chunk so that the (chunk, M) intermediates stay near 64 MB.
_CHUNK_ELEMENTS = 16_000_000


def _inside_mask(points: Tensor, boxes: Tensor) -> Tensor:
    offset = points[:, None, :3] - boxes[None, :, :3]  # [N, M, 3]
    cos, sin = torch.cos(boxes[:, 6]), torch.sin(boxes[:, 6])
    u = offset[..., 0] * cos + offset[..., 1] * sin
    v = -offset[..., 0] * sin + offset[..., 1] * cos
    w = offset[..., 2]
    return (
        (u.abs() <= boxes[:, 3] / 2)
        & (v.abs() <= boxes[:, 4] / 2)
        & (w >= 0)
        & (w <= boxes[:, 5])
    )


def _chunks(num_points: int, num_boxes: int) -> tuple[range, int]:
    step = max(1, _CHUNK_ELEMENTS // max(1, num_boxes))
    return range(0, num_points, step), step


def points_in_boxes_mask(points: Tensor, boxes: Tensor) -> Tensor:
    """`BoolTensor[N, M]`: entry (i, j) is True when point i lies in box j.

    Args:
        points: `Tensor[N, 3+C]`, only the first three columns are read.
        boxes: `Tensor[M, 7+C]` z-up bottom-centre boxes (LiDAR or Depth convention).
    """
    points = points.to(boxes.dtype) if points.is_floating_point() else points.float()
    boxes = boxes.to(points.dtype)
    starts, step = _chunks(points.shape[0], boxes.shape[0])
    if points.shape[0] == 0 or boxes.shape[0] == 0:
        return torch.zeros(points.shape[0], boxes.shape[0], dtype=torch.bool, device=points.device)
    return torch.cat([_inside_mask(points[s : s + step], boxes) for s in starts])


def points_in_boxes_first(points: Tensor, boxes: Tensor) -> Tensor:
    """`LongTensor[N]`: index of the first box holding each point, or -1 for none."""
    out = torch.full((points.shape[0],), -1, dtype=torch.long, device=points.device)
    if points.shape[0] == 0 or boxes.shape[0] == 0:
        return out
    starts, step = _chunks(points.shape[0], boxes.shape[0])
    for s in starts:
        mask = _inside_mask(points[s : s + step].to(boxes.dtype), boxes)
        hit = mask.any(dim=1)
        first = mask.to(torch.uint8).argmax(dim=1)
        out[s : s + step] = torch.where(hit, first, out[s : s + step])
    return out
