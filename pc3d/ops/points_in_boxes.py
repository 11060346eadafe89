"""Which points lie inside which boxes, for z-up boxes (LiDAR and Depth systems).

Boxes are `Tensor[M, 7+C]`: bottom centre `x, y, z`, sizes `x_size, y_size, z_size` along the
box's own axes, and `yaw` counter-clockwise about +z (yaw 0 along +x). A point is inside when its
offset, rotated into the box frame, satisfies `|u| <= x_size/2`, `|v| <= y_size/2` and
`0 <= w <= z_size` (closed faces).

Speed: a scan has ~10^5 points and boxes cover a small part of it, so instead of testing all
N x M pairs the points are bucketed on a BEV grid (one sort), each box looks up the grid cells
under its BEV bounding rectangle, and only those candidate pairs get the exact test -- the same
arithmetic as the dense test, so the result is identical.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from pc3d.errors import FormatError
from pc3d.ops.checks import as_points_xyz, as_z_up_boxes
from pc3d.ops.pairs import expand_ranges, range_chunks

# Candidate (point, box) pairs tested at a time.
_PAIR_BUDGET = 4_000_000
# Grid cells per axis at most (keeps keys small for far-away outliers).
_MAX_CELLS = 4096
# Widening of each box's bounding rectangle, so rounding can never drop a point on a face.
_MARGIN = 1e-3


def _prepare(points: Tensor, boxes: Tensor) -> tuple[Tensor, Tensor]:
    points = points.to(boxes.dtype) if points.is_floating_point() else points.float()
    return points, boxes.to(device=points.device, dtype=points.dtype)


def _inside(points: Tensor, boxes: Tensor, cos: Tensor, sin: Tensor, p: Tensor, b: Tensor) -> Tensor:
    """Exact closed test of candidate pairs (point `p[k]` of `Tensor[N, 3]`, box `b[k]`) -> `BoolTensor[K]`."""
    box = boxes.index_select(0, b)
    offset = points.index_select(0, p) - box[:, :3]
    c, s = cos.index_select(0, b), sin.index_select(0, b)
    u = offset[:, 0] * c + offset[:, 1] * s
    v = -offset[:, 0] * s + offset[:, 1] * c
    w = offset[:, 2]
    return (u.abs() <= box[:, 3] / 2) & (v.abs() <= box[:, 4] / 2) & (w >= 0) & (w <= box[:, 5])


class _Grid(NamedTuple):
    lo: Tensor  # [2] lower corner
    cell: float  # cell width
    cells: int  # cells per axis
    sorted_key: Tensor  # [N] cell keys of the points, sorted (-1 for non-finite points)
    order: Tensor  # [N] point index of each sorted key


def _point_grid(xy: Tensor, finite: Tensor, half_x: Tensor, half_y: Tensor, usable: Tensor) -> _Grid:
    """Bucket the points on a square BEV grid sized to the boxes (one sort of the cell keys)."""
    # Bounds of the finite points, one contiguous column at a time (a column reduction is far
    # cheaper than reducing an (N, 2) tensor along dim 0).
    finite_xy = xy if bool(finite.all()) else xy[finite]
    columns = (finite_xy[:, 0].contiguous(), finite_xy[:, 1].contiguous())
    lo = torch.stack([c.min() for c in columns])
    hi = torch.stack([c.max() for c in columns])
    extent = float((hi - lo).max().item())
    # Cells a quarter of a typical box: candidates then cover little more than each rectangle.
    typical = float(torch.maximum(half_x, half_y)[usable].median().item()) / 2
    cell = min(max(typical, extent / _MAX_CELLS, 1e-6), max(extent, 1e-6))
    cells = int(extent / cell) + 2
    pc = torch.floor((xy - lo) / cell).clamp_(0, cells - 1)
    key = torch.where(finite, pc[:, 0].long() * cells + pc[:, 1].long(), -1)
    sorted_key, order = torch.sort(key)
    return _Grid(lo, cell, cells, sorted_key, order)


def _box_cell_ranges(
    grid: _Grid, boxes: Tensor, half_x: Tensor, half_y: Tensor, usable: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """For each (box, grid column under its rectangle): the box, and the range of sorted points.

    Returns `box_of_col`, `first`, `counts` (`LongTensor[K]` each): points
    `grid.order[first[k] : first[k] + counts[k]]` lie in the cells of that column under the box.
    """

    def cell_of(value: Tensor, low: Tensor, top: int) -> Tensor:
        index = torch.floor((value - low) / grid.cell).clamp_(-1, top + 1)
        return torch.where(usable, index, 0.0).long()

    # Cell range of each box's rectangle, clipped to the grid (empty when entirely outside).
    top = grid.cells
    x0 = cell_of(boxes[:, 0] - half_x, grid.lo[0], top).clamp_(min=0)
    x1 = cell_of(boxes[:, 0] + half_x, grid.lo[0], top).clamp_(max=top - 1)
    y0 = cell_of(boxes[:, 1] - half_y, grid.lo[1], top).clamp_(min=0)
    y1 = cell_of(boxes[:, 1] + half_y, grid.lo[1], top).clamp_(max=top - 1)
    span = (x1 - x0 + 1).clamp_(min=0) * (y1 >= y0) * usable
    box_of_col, within = expand_ranges(span)
    col = x0.index_select(0, box_of_col) + within
    first = torch.searchsorted(grid.sorted_key, col * top + y0.index_select(0, box_of_col), side="left")
    last = torch.searchsorted(grid.sorted_key, col * top + y1.index_select(0, box_of_col), side="right")
    return box_of_col, first, last - first


def _inside_pairs(points: Tensor, boxes: Tensor) -> tuple[Tensor, Tensor]:
    """All `(point, box)` index pairs with the point inside the box, in no particular order."""
    xyz = points[:, :3].contiguous()
    cos, sin = torch.cos(boxes[:, 6]), torch.sin(boxes[:, 6])
    # BEV bounding rectangle of each box, slightly widened.
    half_x = (cos.abs() * boxes[:, 3] + sin.abs() * boxes[:, 4]) / 2 + _MARGIN
    half_y = (sin.abs() * boxes[:, 3] + cos.abs() * boxes[:, 4]) / 2 + _MARGIN
    # A box with NaN/inf position or yaw, or NaN size, holds no point (as in the dense test).
    usable = torch.isfinite(boxes[:, [0, 1, 6]]).all(dim=1) & ~torch.isnan(half_x) & ~torch.isnan(half_y)
    finite = torch.isfinite(xyz[:, :2]).all(dim=1)
    empty = torch.zeros(0, dtype=torch.long, device=points.device)
    if not bool(finite.any()) or not bool(usable.any()):
        return empty, empty
    grid = _point_grid(xyz[:, :2], finite, half_x, half_y, usable)
    box_of_col, first, counts = _box_cell_ranges(grid, boxes, half_x, half_y, usable)
    found_p, found_b = [empty], [empty]
    for start, stop in range_chunks(counts, _PAIR_BUDGET):
        run, offset = expand_ranges(counts[start:stop])
        run = run + start
        p = grid.order.index_select(0, first.index_select(0, run) + offset)
        b = box_of_col.index_select(0, run)
        hit = _inside(xyz, boxes, cos, sin, p, b)
        found_p.append(p[hit])
        found_b.append(b[hit])
    return torch.cat(found_p), torch.cat(found_b)


def points_in_boxes_mask(points: Tensor, boxes: Tensor) -> Tensor:
    """`BoolTensor[N, M]`: entry (i, j) is True when point i lies in box j.

    Args:
        points: `Tensor[N, 3+C]`, only the first three columns are read.
        boxes: `Tensor[M, 7+C]` z-up bottom-centre boxes (LiDAR or Depth convention).
    """
    points, boxes = _prepare(points, boxes)
    mask = torch.zeros(points.shape[0], boxes.shape[0], dtype=torch.bool, device=points.device)
    if points.shape[0] == 0 or boxes.shape[0] == 0:
        return mask
    p, b = _inside_pairs(points, boxes)
    mask[p, b] = True
    return mask


def points_in_boxes_first(points: Tensor, boxes: Tensor) -> Tensor:
    """`LongTensor[N]`: index of the first box holding each point, or -1 for none.

    Args:
        points: `Tensor[N, 3+C]`, only the first three columns are read.
        boxes: `Tensor[M, 7+C]` z-up bottom-centre boxes (LiDAR or Depth convention).
    """
    points, boxes = _prepare(points, boxes)
    num_boxes = boxes.shape[0]
    out = torch.full((points.shape[0],), num_boxes, dtype=torch.long, device=points.device)
    if points.shape[0] == 0 or num_boxes == 0:
        return out.fill_(-1)
    p, b = _inside_pairs(points, boxes)
    out.scatter_reduce_(0, p, b, reduce="amin")
    return out.masked_fill_(out == num_boxes, -1)


def points_in_boxes(points: Tensor, boxes: Tensor, mode: str = "first") -> Tensor:
    """Which z-up box holds each point, with checked inputs.

    Args:
        points: `Tensor[N, 3+C]` (x, y, z first) in the boxes' system; NaN coordinates are an
            error, infinite ones are outside every box.
        boxes: `Tensor[M, 7+C]` z-up bottom-centre boxes (LiDAR or Depth layout: yaw
            counter-clockwise about +z). Camera boxes: `CameraBoxes3D.points_in_boxes_part`.
        mode: `"first"` -> `LongTensor[N]`, the lowest index of a box holding the point (-1 for
            none); `"all"` -> `BoolTensor[N, M]`, entry (i, j) True when point i is in box j.

    Returns:
        `LongTensor[N]` or `BoolTensor[N, M]` on the boxes' device. Faces are closed.

    Raises:
        FormatError: an unknown mode, NaN points, NaN/inf boxes or negative sizes, or a
            structure instead of a tensor.
        ShapeError: points not `(N, 3+C)` or boxes not `(M, 7+C)`.
    """
    if mode not in ("first", "all"):
        raise FormatError(f"mode must be 'first' or 'all', got {mode!r}")
    box_tensor = as_z_up_boxes(boxes, "boxes")
    xyz = as_points_xyz(points).to(box_tensor.device)
    if mode == "first":
        return points_in_boxes_first(xyz, box_tensor)
    return points_in_boxes_mask(xyz, box_tensor)
