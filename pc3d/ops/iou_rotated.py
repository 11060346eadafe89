"""Exact IoU of rotated boxes: BEV (`box_iou_bev`) and 3D (`box_iou_3d`), pairwise or aligned.

The intersection areas come from `pc3d.ops.bev_area` (float64, exact). Pairwise IoU first
discards pairs whose circumscribed circles (and, in 3D, height ranges) do not overlap -- their
IoU is exactly 0 -- and computes only the remaining candidates, in chunks; when the grid finds
that most pairs are candidates (a pile of boxes) it computes all pairs in blocks of rows
instead, which saves listing and gathering a million pairs.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from pc3d.errors import FormatError, ShapeError
from pc3d.ops.bev_area import CUDA_CHUNK, bev_intersection_area, bev_iou_upper_bound, overlap_ratio
from pc3d.ops.checks import as_z_up_boxes, bev_view
from pc3d.ops.pairs import cross_grid_count, cross_pairs

# Pairwise IoU skips listing candidate pairs when the grid says at least this share of all
# pairs are near each other: then every pair is computed, in blocks of rows (no gathers).
_DENSE_SHARE = 0.5
_DENSE_BLOCK = 65_536


class _Boxes(NamedTuple):
    """One side of an IoU call, in float64."""

    bev: Tensor  # [N, 5] x, y, x_size, y_size, yaw
    size: Tensor  # [N] BEV area, or volume in 3D
    heights: Tensor | None  # [N, 2] bottom and top z in 3D, else None


def _sides(boxes: Tensor, three_d: bool) -> _Boxes:
    bev = bev_view(boxes)
    area = bev[:, 2] * bev[:, 3]
    if not three_d:
        return _Boxes(bev, area, None)
    bottom, height = boxes[:, 2].double(), boxes[:, 5].double()
    return _Boxes(bev, area * height, torch.stack([bottom, bottom + height], dim=1))


def _take(boxes: _Boxes, index: Tensor | slice) -> _Boxes:
    return _Boxes(
        boxes.bev[index], boxes.size[index], None if boxes.heights is None else boxes.heights[index]
    )


def _intersection(a: _Boxes, b: _Boxes) -> Tensor:
    """Aligned pairs `a[k]`, `b[k]`: BEV intersection area, times the height overlap in 3D."""
    inter = bev_intersection_area(a.bev, b.bev)
    if a.heights is not None and b.heights is not None:
        lo = torch.maximum(a.heights[:, 0], b.heights[:, 0])
        hi = torch.minimum(a.heights[:, 1], b.heights[:, 1])
        inter = inter * (hi - lo).clamp_(min=0.0)
    return inter


def _candidate_pairs(a: _Boxes, b: _Boxes, rad_a: Tensor, rad_b: Tensor) -> tuple[Tensor, Tensor]:
    """Index pairs `(i, j)` whose circumscribed circles (and height ranges) overlap."""
    i, j = cross_pairs(a.bev[:, :2], rad_a, b.bev[:, :2], rad_b)
    if a.heights is not None and b.heights is not None:
        za, zb = a.heights.index_select(0, i), b.heights.index_select(0, j)
        keep = (za[:, 0] <= zb[:, 1]) & (zb[:, 0] <= za[:, 1])
        i, j = i[keep], j[keep]
    return i, j


def _expand_rows(t: Tensor, m: int) -> Tensor:
    """Each row of `t` repeated `m` times in a row (a broadcast copy, no gather)."""
    return t.unsqueeze(1).expand(t.shape[0], m, *t.shape[1:]).reshape(t.shape[0] * m, *t.shape[1:])


def _tile(t: Tensor, k: int) -> Tensor:
    """`t` repeated `k` times along its first dimension."""
    return t.repeat(k, *([1] * (t.dim() - 1)))


def _all_pairs(a: _Boxes, b: _Boxes, mode: str) -> Tensor:
    """Every pair, a block of rows of a at a time, from broadcast copies (no index lists)."""
    n, m = a.bev.shape[0], b.bev.shape[0]
    step = max(1, (_DENSE_BLOCK if a.bev.device.type == "cpu" else CUDA_CHUNK) // m)
    blocks = []
    for s in range(0, n, step):
        rows = _take(a, slice(s, s + step))
        k = rows.bev.shape[0]
        heights_a = None if rows.heights is None else _expand_rows(rows.heights, m)
        heights_b = None if b.heights is None else _tile(b.heights, k)
        left = _Boxes(_expand_rows(rows.bev, m), _expand_rows(rows.size, m), heights_a)
        right = _Boxes(_tile(b.bev, k), _tile(b.size, k), heights_b)
        inter = _intersection(left, right).view(k, m)
        blocks.append(overlap_ratio(inter, rows.size[:, None], b.size[None, :], mode))
    return torch.cat(blocks)


def _pairwise(a: _Boxes, b: _Boxes, mode: str) -> Tensor:
    """`Tensor[N, M]` float64 ratios of all pairs, computing only pairs that can overlap."""
    n, m = a.bev.shape[0], b.bev.shape[0]
    out = torch.zeros(n, m, dtype=torch.float64, device=a.bev.device)
    if n == 0 or m == 0:
        return out
    rad_a = 0.5 * torch.hypot(a.bev[:, 2], a.bev[:, 3])
    rad_b = 0.5 * torch.hypot(b.bev[:, 2], b.bev[:, 3])
    if cross_grid_count(a.bev[:, :2], rad_a, b.bev[:, :2], rad_b) >= _DENSE_SHARE * n * m:
        # Nearly all pairs are candidates (a pile of boxes): computing them all is cheaper than
        # listing them. Pairs that do not overlap come out exactly 0 anyway.
        return _all_pairs(a, b, mode)
    i, j = _candidate_pairs(a, b, rad_a, rad_b)
    if i.numel():
        pa, pb = _take(a, i), _take(b, j)
        out[i, j] = overlap_ratio(_intersection(pa, pb), pa.size, pb.size, mode)
    return out


def _iou(a: object, b: object, aligned: bool, three_d: bool, mode: str) -> Tensor:
    if mode not in ("iou", "iof"):
        raise FormatError(f"mode must be 'iou' or 'iof', got {mode!r}")
    ta = as_z_up_boxes(a, "a", allow_bev=not three_d)
    tb = as_z_up_boxes(b, "b", allow_bev=not three_d).to(ta.device)
    dtype = torch.promote_types(ta.dtype, tb.dtype)
    side_a, side_b = _sides(ta, three_d), _sides(tb, three_d)
    if not aligned:
        return _pairwise(side_a, side_b, mode).to(dtype)
    if ta.shape[0] != tb.shape[0]:
        raise ShapeError(f"aligned IoU needs as many boxes in a as in b, got {ta.shape[0]} and {tb.shape[0]}")
    return overlap_ratio(_intersection(side_a, side_b), side_a.size, side_b.size, mode).to(dtype)


def box_iou_bev(a: Tensor, b: Tensor, aligned: bool = False, mode: str = "iou") -> Tensor:
    """IoU of rotated boxes in the bird's-eye view (their ground-plane rectangles).

    Args:
        a: `Tensor[N, 7+C]` z-up boxes (bottom centre `x, y, z`, sizes, yaw counter-clockwise
            about +z: the LiDAR and Depth layouts) or `Tensor[N, 5]` BEV boxes
            `x, y, x_size, y_size, yaw`. Box structures of any system:
            `Boxes3D.bev_overlaps(a, b)`.
        b: the same kind, `M` boxes (`M == N` when `aligned`).
        aligned: IoU of `a[k]` with `b[k]` instead of all pairs.
        mode: `"iou"`, or `"iof"` for the intersection over the area of the box of `a`.

    Returns:
        `Tensor[N, M]` (or `Tensor[N]` when aligned) in the boxes' dtype; 0 for disjoint boxes
        and for pairs of zero-area boxes.

    Raises:
        ShapeError: wrong shapes; FormatError: NaN/inf, negative sizes, an unknown mode, or a
            box structure instead of a tensor.
    """
    return _iou(a, b, aligned, three_d=False, mode=mode)


def box_iou_3d(a: Tensor, b: Tensor, aligned: bool = False, mode: str = "iou") -> Tensor:
    """3D IoU of rotated boxes: BEV intersection times height overlap over the union volume.

    Args:
        a: `Tensor[N, 7+C]` z-up boxes: bottom centre `x, y, z` (the box spans `z .. z +
            z_size`), sizes, yaw counter-clockwise about +z (LiDAR and Depth layouts). Box
            structures of any system: `Boxes3D.overlaps(a, b)`.
        b: the same kind, `M` boxes (`M == N` when `aligned`).
        aligned: IoU of `a[k]` with `b[k]` instead of all pairs.
        mode: `"iou"`, or `"iof"` for the intersection over the volume of the box of `a`.

    Returns:
        `Tensor[N, M]` (or `Tensor[N]` when aligned) in the boxes' dtype.

    Raises:
        ShapeError: wrong shapes; FormatError: NaN/inf, negative sizes, an unknown mode, or a
            box structure instead of a tensor.
    """
    return _iou(a, b, aligned, three_d=True, mode=mode)


__all__ = ["bev_intersection_area", "bev_iou_upper_bound", "box_iou_3d", "box_iou_bev", "overlap_ratio"]
