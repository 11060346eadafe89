"""Voxelization: hard (fixed-size voxels, as PointPillars/SECOND use) and dynamic (per point).

Voxel of a point: `floor((p - range_min) / voxel_size)` per axis, computed in the points' dtype
with `voxel_size` and `range_min` rounded to float32 first -- the exact arithmetic of spconv's
`PointToVoxel` and MMCV's voxelizers -- and valid when `0 <= index < grid`, where
`grid = round((range_max - range_min) / voxel_size)`. Coordinates are returned in z, y, x order.

Hard voxelization keeps, deterministically, the first `max_points` points of each voxel in input
order, orders voxels by the first appearance of one of their points, and drops voxels beyond
`max_voxels` (the points of voxels already created still fill them): spconv's and MMCV's CPU
definition. Two implementations give identical results: vectorised torch (stable sort by voxel
key, any device) and spconv's compiled `PointToVoxel` (CPU only, float32 only). On the CPU
`backend="auto"` uses spconv when it is installed because it is faster there (see
`docs/ops.md` for the measurements), and the torch path otherwise; on CUDA it uses the torch
path, whose order is deterministic (spconv's CUDA kernel orders voxels by hash slots).

Layout: the grid of a setting, the voxel of each point and the argument checks are in
:mod:`pc3d.ops.voxel_geometry`, the spconv backend in :mod:`pc3d.ops.voxelize_spconv`; both
modules' public names used here stay importable from this one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from pc3d.errors import FormatError, MissingDependencyError, ShapeError
from pc3d.ops.voxel_geometry import (
    VoxelGrid,
    check_float_points,
    check_positive_int,
    float_values,
    grid_cells,
    voxel_grid,
    voxel_index,
)
from pc3d.ops.voxelize_spconv import spconv_available, spconv_voxelizer

__all__ = [
    "HardVoxels",
    "ScatteredVoxels",
    "VoxelGrid",
    "dynamic_voxelize",
    "hard_voxelize",
    "spconv_available",
    "voxel_grid",
    "voxel_scatter",
]


class HardVoxels(NamedTuple):
    """Result of `hard_voxelize` (unpacks as `voxels, coords, num_points`)."""

    voxels: Tensor  # [V, max_points, 3+C], zero padded
    coords: Tensor  # [V, 3] int32, z, y, x
    num_points: Tensor  # [V] int32, points stored per voxel


def _linear_key(index_xyz: Tensor, grid: tuple[int, int, int]) -> Tensor:
    # z-major, then y, then x: sorting by key sorts by (z, y, x).
    ix = index_xyz.long()
    return (ix[:, 2] * grid[1] + ix[:, 1]) * grid[0] + ix[:, 0]


def _hard_voxelize_torch(points: Tensor, grid: VoxelGrid, max_points: int, max_voxels: int) -> HardVoxels:
    device, channels = points.device, points.shape[1]
    index, valid = voxel_index(points, grid)
    point_ids = valid.nonzero().squeeze(1)  # kept points, input order
    index = index.index_select(0, point_ids)
    n = point_ids.numel()
    if n == 0:
        return HardVoxels(
            points.new_zeros(0, max_points, channels),
            torch.zeros(0, 3, dtype=torch.int32, device=device),
            torch.zeros(0, dtype=torch.int32, device=device),
        )
    # A stable sort groups the points of each voxel and keeps them in input order inside it.
    sorted_key, perm = torch.sort(_linear_key(index, grid.grid), stable=True)
    is_start = torch.ones(n, dtype=torch.bool, device=device)
    torch.ne(sorted_key[1:], sorted_key[:-1], out=is_start[1:])
    starts = is_start.nonzero().squeeze(1)  # [G] first sorted position of each voxel
    group = torch.cumsum(is_start, 0).sub_(1)  # [n] voxel (in key order) of each sorted point
    rank_in_voxel = torch.arange(n, device=device).sub_(starts.index_select(0, group))
    # Voxels in order of first appearance: rank each voxel's first point among all first points.
    first_point = perm.index_select(0, starts)  # [G] position (in kept order) of the first point
    is_first = torch.zeros(n, dtype=torch.bool, device=device).index_fill_(0, first_point, True)
    voxel_order = torch.cumsum(is_first, 0).sub_(1).index_select(0, first_point)  # [G]
    num_voxels = min(starts.numel(), max_voxels)
    voxel_of_point = voxel_order.index_select(0, group)
    stored = ((rank_in_voxel < max_points) & (voxel_of_point < max_voxels)).nonzero().squeeze(1)
    slot = voxel_of_point.index_select(0, stored).mul_(max_points).add_(rank_in_voxel.index_select(0, stored))
    source = point_ids.index_select(0, perm.index_select(0, stored))
    voxels = points.new_zeros(num_voxels * max_points, channels)
    voxels.index_copy_(0, slot, points.index_select(0, source))
    counts = torch.diff(starts, append=starts.new_tensor([n])).clamp_(max=max_points)
    if num_voxels < starts.numel():
        survivors = (voxel_order < max_voxels).nonzero().squeeze(1)
        voxel_order, first_point, counts = (
            t.index_select(0, survivors) for t in (voxel_order, first_point, counts)
        )
    coords = torch.empty(num_voxels, 3, dtype=torch.int32, device=device)
    coords.index_copy_(0, voxel_order, index.index_select(0, first_point).flip(1).to(torch.int32))
    num_points = torch.empty(num_voxels, dtype=torch.int32, device=device)
    num_points.index_copy_(0, voxel_order, counts.to(torch.int32))
    return HardVoxels(voxels.view(num_voxels, max_points, channels), coords, num_points)


def hard_voxelize(
    points: Tensor,
    voxel_size: Sequence[float],
    point_cloud_range: Sequence[float],
    max_points: int,
    max_voxels: int,
    backend: str = "auto",
) -> HardVoxels:
    """Group points into at most `max_voxels` voxels of at most `max_points` points each.

    Args:
        points: `Tensor[N, 3+C]`, x, y, z first (NaN coordinates are an error; inf is outside).
        voxel_size: `(x, y, z)` sizes in metres, each > 0.
        point_cloud_range: `(x_min, y_min, z_min, x_max, y_max, z_max)`, min < max.
        max_points: points stored per voxel (the first ones in input order).
        max_voxels: voxels kept (in order of first appearance).
        backend: `"auto"` (spconv on the CPU for float32 when installed, else torch), `"torch"`
            or `"spconv"` (CPU, float32; `MissingDependencyError` when not installed).

    Returns:
        `HardVoxels(voxels Tensor[V, max_points, 3+C] zero-padded, coords IntTensor[V, 3] as
        z, y, x, num_points IntTensor[V])`, identical for both backends.
    """
    points = check_float_points(points)
    size = tuple(float_values(voxel_size, "voxel_size", 3))
    rng = tuple(float_values(point_cloud_range, "point_cloud_range", 6))
    grid_cells(size, rng)  # validates the setting
    max_points = check_positive_int(max_points, "max_points")
    max_voxels = check_positive_int(max_voxels, "max_voxels")
    if backend not in ("auto", "torch", "spconv"):
        raise FormatError(f"backend must be 'auto', 'torch' or 'spconv', got {backend!r}")
    spconv_fits = points.device.type == "cpu" and points.dtype == torch.float32
    if backend == "spconv":
        if not spconv_available():
            raise MissingDependencyError(
                "backend='spconv' needs spconv: pip install spconv (or spconv-cu120)"
            )
        if not spconv_fits:
            raise FormatError(
                f"backend='spconv' needs float32 points on the CPU, got {points.dtype} on {points.device}"
            )
    use_spconv = backend == "spconv" or (backend == "auto" and spconv_fits and spconv_available())
    if use_spconv and points.shape[0] > 0:
        voxelizer = spconv_voxelizer(size, rng, points.shape[1], max_points, max_voxels, str(points.device))
        return HardVoxels(*voxelizer(points))
    return _hard_voxelize_torch(points, voxel_grid(size, rng), max_points, max_voxels)


def dynamic_voxelize(
    points: Tensor, voxel_size: Sequence[float], point_cloud_range: Sequence[float]
) -> Tensor:
    """Voxel coordinates of every point, `IntTensor[N, 3]` in z, y, x order; `-1` rows outside.

    Same arithmetic as `hard_voxelize`, without any cap on points or voxels. Combine with
    `voxel_scatter` for per-voxel mean/max features.

    Args:
        points: `Tensor[N, 3+C]`, floating, no NaN coordinate.
        voxel_size: `(x, y, z)` sizes in metres.
        point_cloud_range: `(x_min, y_min, z_min, x_max, y_max, z_max)`.

    Raises:
        FormatError: NaN coordinates or a bad setting; ShapeError: points not `(N, 3+C)`.
    """
    points = check_float_points(points)
    grid = voxel_grid(voxel_size, point_cloud_range)
    index, valid = voxel_index(points, grid)
    coords = index.flip(1).to(torch.int32)
    return coords.masked_fill_(~valid[:, None], -1)


class ScatteredVoxels(NamedTuple):
    """Result of `voxel_scatter` (unpacks as `voxel_features, voxel_coords, point_to_voxel`)."""

    voxel_features: Tensor  # [V, C]
    voxel_coords: Tensor  # [V, D], ascending lexicographic order
    point_to_voxel: Tensor  # [N] long, -1 for ignored points


def voxel_scatter(features: Tensor, coords: Tensor, reduce: str = "mean") -> ScatteredVoxels:
    """Reduce point features per voxel (dynamic voxelization's scatter step).

    Args:
        features: `Tensor[N, C]` point features.
        coords: `IntTensor[N, D]` voxel coordinates, e.g. `dynamic_voxelize` output (z, y, x)
            or with a leading batch index (b, z, y, x). Rows with a negative entry are ignored.
        reduce: `"mean"` or `"max"`.

    Returns:
        `ScatteredVoxels(voxel_features Tensor[V, C], voxel_coords Tensor[V, D] (unique rows,
        ascending lexicographically, coords' dtype), point_to_voxel LongTensor[N], -1 for
        ignored points)`. Deterministic on every device (segment reductions, no atomics).
    """
    if reduce not in ("mean", "max"):
        raise FormatError(f"reduce must be 'mean' or 'max', got {reduce!r}")
    if not isinstance(features, Tensor) or not isinstance(coords, Tensor):
        raise FormatError("features and coords must be tensors")
    if features.dim() != 2 or coords.dim() != 2 or features.shape[0] != coords.shape[0]:
        raise ShapeError(
            f"features must be (N, C) and coords (N, D) with the same N, got {tuple(features.shape)} and {tuple(coords.shape)}"
        )
    if coords.is_floating_point():
        raise FormatError(f"coords must be integers, got dtype {coords.dtype}")
    device, n = features.device, features.shape[0]
    coords = coords.to(device)
    point_to_voxel = torch.full((n,), -1, dtype=torch.long, device=device)
    valid = (coords >= 0).all(dim=1) if coords.shape[1] else torch.ones(n, dtype=torch.bool, device=device)
    point_ids = valid.nonzero().squeeze(1)
    if point_ids.numel() == 0:
        return ScatteredVoxels(
            features.new_zeros(0, features.shape[1]), coords.new_zeros(0, coords.shape[1]), point_to_voxel
        )
    kept = coords.index_select(0, point_ids).long()
    extent = kept.amax(dim=0) + 1
    if math.prod(int(e) for e in extent.tolist()) < (1 << 62):
        key = torch.zeros_like(point_ids)
        for column in range(kept.shape[1]):
            key = key * int(extent[column]) + kept[:, column]
        _, inverse = torch.unique(key, return_inverse=True)
    else:  # coordinates too spread for one int64 key: unique rows directly
        _, inverse = torch.unique(kept, dim=0, return_inverse=True)
    sorted_voxel, perm = torch.sort(inverse, stable=True)
    lengths = torch.bincount(sorted_voxel)
    voxel_features = torch.segment_reduce(
        features.index_select(0, point_ids.index_select(0, perm)), reduce, lengths=lengths
    )
    starts = torch.cumsum(lengths, 0) - lengths
    voxel_coords = coords.index_select(0, point_ids.index_select(0, perm.index_select(0, starts)))
    point_to_voxel[point_ids] = inverse
    return ScatteredVoxels(voxel_features, voxel_coords, point_to_voxel)
