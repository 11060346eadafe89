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

from typing import Any

import torch
from torch import Tensor

from pc3d.errors import FormatError, ShapeError
from pc3d.ops._inputs import as_z_up_boxes, box_mode_of

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


def _expand(counts: Tensor) -> tuple[Tensor, Tensor]:
    owner = torch.repeat_interleave(torch.arange(counts.numel(), device=counts.device), counts)
    starts = torch.cumsum(counts, 0) - counts
    return owner, torch.arange(owner.numel(), device=counts.device) - starts.index_select(0, owner)


def _inside_pairs(points: Tensor, boxes: Tensor) -> tuple[Tensor, Tensor]:
    """All `(point, box)` index pairs with the point inside the box, in no particular order."""
    device = points.device
    xyz = points[:, :3].contiguous()
    xy = xyz[:, :2]
    cos, sin = torch.cos(boxes[:, 6]), torch.sin(boxes[:, 6])
    # BEV bounding rectangle of each box, slightly widened.
    half_x = (cos.abs() * boxes[:, 3] + sin.abs() * boxes[:, 4]) / 2 + _MARGIN
    half_y = (sin.abs() * boxes[:, 3] + cos.abs() * boxes[:, 4]) / 2 + _MARGIN
    # A box with NaN/inf position or yaw, or NaN size, holds no point (as in the dense test).
    usable = torch.isfinite(boxes[:, [0, 1, 6]]).all(dim=1) & ~torch.isnan(half_x) & ~torch.isnan(half_y)
    finite = torch.isfinite(xy).all(dim=1)
    if not bool(finite.any()) or not bool(usable.any()):
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return empty, empty
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
    ncx = int(extent / cell) + 2
    ncy = ncx
    pc = torch.floor((xy - lo) / cell).clamp_(0, ncx - 1)
    key = torch.where(finite, pc[:, 0].long() * ncy + pc[:, 1].long(), -1)
    sorted_key, order = torch.sort(key)
    # Cell range of each box's rectangle, clipped to the grid (empty when entirely outside).

    def cell_of(value: Tensor, low: Tensor, top: int) -> Tensor:
        index = torch.floor((value - low) / cell).clamp_(-1, top + 1)
        return torch.where(usable, index, 0.0).long()

    x0 = cell_of(boxes[:, 0] - half_x, lo[0], ncx).clamp_(min=0)
    x1 = cell_of(boxes[:, 0] + half_x, lo[0], ncx).clamp_(max=ncx - 1)
    y0 = cell_of(boxes[:, 1] - half_y, lo[1], ncy).clamp_(min=0)
    y1 = cell_of(boxes[:, 1] + half_y, lo[1], ncy).clamp_(max=ncy - 1)
    span = (x1 - x0 + 1).clamp_(min=0) * (y1 >= y0) * usable
    box_of_col, within = _expand(span)
    col = x0.index_select(0, box_of_col) + within
    first = torch.searchsorted(sorted_key, col * ncy + y0.index_select(0, box_of_col), side="left")
    last = torch.searchsorted(sorted_key, col * ncy + y1.index_select(0, box_of_col), side="right")
    counts = last - first
    found_p, found_b = [], []
    ends = torch.cumsum(counts, 0)
    start = 0
    while start < counts.numel():
        base = int(ends[start - 1].item()) if start else 0
        stop = int(torch.searchsorted(ends, torch.tensor([base + _PAIR_BUDGET], device=device), right=True).item())
        stop = max(stop, start + 1)
        run, offset = _expand(counts[start:stop])
        run = run + start
        p = order.index_select(0, first.index_select(0, run) + offset)
        b = box_of_col.index_select(0, run)
        hit = _inside(xyz, boxes, cos, sin, p, b)
        found_p.append(p[hit])
        found_b.append(b[hit])
        start = stop
    if not found_p:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return empty, empty
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
    """`LongTensor[N]`: index of the first box holding each point, or -1 for none."""
    points, boxes = _prepare(points, boxes)
    num_boxes = boxes.shape[0]
    out = torch.full((points.shape[0],), num_boxes, dtype=torch.long, device=points.device)
    if points.shape[0] == 0 or num_boxes == 0:
        return out.fill_(-1)
    p, b = _inside_pairs(points, boxes)
    out.scatter_reduce_(0, p, b, reduce="amin")
    return out.masked_fill_(out == num_boxes, -1)


def points_in_boxes(points: Any, boxes: Any, mode: str = "first") -> Tensor:
    """Which box holds each point.

    Args:
        points: `Tensor[N, 3+C]` (x, y, z first) in the boxes' system, or a `BasePoints`
            structure of the same system as the boxes.
        boxes: a `Boxes3D` structure (Camera boxes are handled in their own axes) or a
            `Tensor[M, 7+C]` read as LiDAR boxes.
        mode: `"first"` -> `LongTensor[N]`, the lowest index of a box holding the point (-1 for
            none); `"all"` -> `BoolTensor[N, M]`, entry (i, j) True when point i is in box j.

    Faces are closed. Raises `ShapeError`/`FormatError` for wrong shapes, NaN boxes or points,
    mixed systems or an unknown mode.
    """
    if mode not in ("first", "all"):
        raise FormatError(f"mode must be 'first' or 'all', got {mode!r}")
    box_mode = box_mode_of(boxes) or "lidar"
    box_tensor = as_z_up_boxes(boxes, "boxes")
    xyz = _points_xyz(points, box_mode)
    if box_mode == "camera":
        from pc3d.structures.coord_transform import convert_point_tensor

        # The boxes were turned into LiDAR axes by the default (exact permutation) matrix;
        # the points get the same permutation.
        xyz = convert_point_tensor(xyz, "camera", "lidar")
    xyz = xyz.to(box_tensor.device)
    if mode == "first":
        return points_in_boxes_first(xyz, box_tensor)
    return points_in_boxes_mask(xyz, box_tensor)


def _points_xyz(points: Any, box_mode: str) -> Tensor:
    from pc3d.ops._inputs import _structure_types

    types = _structure_types()
    if types is not None and isinstance(points, types[1]):
        if str(points.mode.value) != box_mode:
            raise FormatError(
                f"points are in the {points.mode.value} system but boxes in the {box_mode} system; "
                f"convert the points with .convert_to({box_mode!r}) first"
            )
        points = points.tensor
    if not isinstance(points, Tensor):
        raise FormatError(f"points must be a tensor or a points structure, got {type(points).__name__}")
    if points.dim() != 2 or points.shape[1] < 3:
        raise ShapeError(f"points must have shape (N, 3+C), got {tuple(points.shape)}")
    xyz = points[:, :3]
    if not xyz.is_floating_point():
        xyz = xyz.float()
    nan = torch.isnan(xyz).any(dim=1)
    if bool(nan.any()):
        raise FormatError(f"points row {int(torch.nonzero(nan)[0, 0])} has a NaN coordinate")
    return xyz
