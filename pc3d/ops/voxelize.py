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
"""

from __future__ import annotations

import functools
import math
import mmap
import threading
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from pc3d.errors import FormatError, MissingDependencyError, ShapeError
from pc3d.ops.checks import check_points

_AXES = ("x", "y", "z")


class HardVoxels(NamedTuple):
    """Result of `hard_voxelize` (unpacks as `voxels, coords, num_points`)."""

    voxels: Tensor  # [V, max_points, 3+C], zero padded
    coords: Tensor  # [V, 3] int32, z, y, x
    num_points: Tensor  # [V] int32, points stored per voxel


class VoxelGrid(NamedTuple):
    voxel_size: Tensor  # [3] float32
    range_min: Tensor  # [3] float32
    grid: tuple[int, int, int]  # cells along x, y, z


def voxel_grid(voxel_size: Sequence[float], point_cloud_range: Sequence[float]) -> VoxelGrid:
    """Validated voxel size, range minimum (float32) and grid size (cells along x, y, z).

    Args:
        voxel_size: `(x, y, z)` voxel sizes in metres, each > 0.
        point_cloud_range: `(x_min, y_min, z_min, x_max, y_max, z_max)` with min < max.

    Returns:
        `VoxelGrid(voxel_size Tensor[3], range_min Tensor[3], grid (cells along x, y, z))`.

    Raises:
        FormatError: naming `voxel_size` or `point_cloud_range` (and the axis) when a size is not
            > 0, a range has min >= max, a value is not finite, or the lengths are not 3 and 6.
    """
    size = tuple(_floats(voxel_size, "voxel_size", 3))
    rng = tuple(_floats(point_cloud_range, "point_cloud_range", 6))
    cells = _grid_cells(size, rng)
    return VoxelGrid(
        torch.tensor(size, dtype=torch.float32), torch.tensor(rng[:3], dtype=torch.float32), cells
    )


# Validation and grid size of a setting, computed once per setting (a detector calls the
# voxelizer with the same few settings on every frame).
@functools.lru_cache(maxsize=64)
def _grid_cells(size: tuple[float, ...], rng: tuple[float, ...]) -> tuple[int, int, int]:
    for axis, value in enumerate(size):
        if not value > 0:
            raise FormatError(f"voxel_size[{axis}] ({_AXES[axis]}) must be > 0, got {value}")
    for axis in range(3):
        if not rng[axis] < rng[axis + 3]:
            raise FormatError(
                f"point_cloud_range must be (x_min, y_min, z_min, x_max, y_max, z_max) with min < max; "
                f"{_AXES[axis]}: min {rng[axis]} >= max {rng[axis + 3]}"
            )
    size32 = torch.tensor(size, dtype=torch.float32)
    lo32 = torch.tensor(rng[:3], dtype=torch.float32)
    hi32 = torch.tensor(rng[3:], dtype=torch.float32)
    # float32 division then round-half-away, as spconv's std::round on floats.
    cells = [int(math.floor(float(v) + 0.5)) for v in ((hi32 - lo32) / size32).tolist()]
    for axis, c in enumerate(cells):
        if c < 1:
            raise FormatError(
                f"point_cloud_range along {_AXES[axis]} ({rng[axis]} to {rng[axis + 3]}) is shorter than half a voxel "
                f"(voxel_size {size[axis]}): no voxel fits"
            )
    return cells[0], cells[1], cells[2]


def _floats(values: Any, name: str, length: int) -> list[float]:
    if isinstance(values, Tensor):
        values = values.detach().cpu().reshape(-1).tolist()
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError) as err:
        raise FormatError(f"{name} must be {length} numbers, got {values!r}") from err
    if len(out) != length:
        raise FormatError(f"{name} must have {length} values, got {len(out)}: {out}")
    if not all(math.isfinite(v) for v in out):
        raise FormatError(f"{name} must be finite, got {out}")
    return out


def _check_points(points: Any) -> Tensor:
    points = check_points(points)
    if not points.is_floating_point():
        raise FormatError(f"points must be floating point, got dtype {points.dtype}")
    return points


def _check_count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FormatError(f"{name} must be a positive int, got {value!r}")
    return value


def _voxel_index(points: Tensor, grid: VoxelGrid) -> tuple[Tensor, Tensor]:
    """Float voxel indices `Tensor[N, 3]` (x, y, z) and the in-range mask `BoolTensor[N]`."""
    size = grid.voxel_size.to(points.device, points.dtype)
    lo = grid.range_min.to(points.device, points.dtype)
    # Subtract, then divide, then floor: the same rounding steps as the compiled peers.
    index = (points[:, :3] - lo).div_(size).floor_()
    valid = (index[:, 0] >= 0) & (index[:, 0] < grid.grid[0])
    for axis in (1, 2):
        column = index[:, axis]
        valid &= (column >= 0) & (column < grid.grid[axis])
    return index, valid


def _linear_key(index_xyz: Tensor, grid: tuple[int, int, int]) -> Tensor:
    # z-major, then y, then x: sorting by key sorts by (z, y, x).
    ix = index_xyz.long()
    return (ix[:, 2] * grid[1] + ix[:, 1]) * grid[0] + ix[:, 0]


def _hard_voxelize_torch(points: Tensor, grid: VoxelGrid, max_points: int, max_voxels: int) -> HardVoxels:
    device, channels = points.device, points.shape[1]
    index, valid = _voxel_index(points, grid)
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


def spconv_available() -> bool:
    """True when spconv's `PointToVoxel` can be imported."""
    return _point_to_voxel_class() is not None


@functools.cache
def _point_to_voxel_class() -> type | None:
    try:
        from spconv.pytorch.utils import PointToVoxel
    except ImportError:
        return None
    return PointToVoxel


# Voxel hashes at least this large go into huge pages (spconv's is a dense int32 grid).
_HUGE_TABLE_BYTES = 16 << 20


def _in_huge_pages(table: Tensor) -> Tensor:
    """A copy of `table` in memory the kernel may back with transparent huge pages.

    spconv looks every point up in a dense hash of the whole grid (SECOND: 344 MB); the lookups
    are scattered, so with 4 KiB pages most of them miss the TLB. On 2 MiB pages the same kernel
    runs markedly faster (about 10-20% of the whole call for SECOND's grid here). Linux only, and
    only where transparent huge pages are enabled ("always" or "madvise"); elsewhere, or for small
    tables, `table` is returned as it is.
    """
    advice = getattr(mmap, "MADV_HUGEPAGE", None)
    nbytes = table.numel() * table.element_size()
    if advice is None or nbytes < _HUGE_TABLE_BYTES:
        return table
    try:
        region = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        region.madvise(advice)
    except (OSError, ValueError, AttributeError):
        return table
    # The tensor keeps `region` alive.
    return torch.frombuffer(region, dtype=table.dtype).view(table.shape).copy_(table)


class _SpconvVoxelizer:
    """spconv's `PointToVoxel` for one setting, reused across calls.

    `PointToVoxel` preallocates its output buffer `[max_voxels, max_points, C]` and a dense int32
    hash of the whole grid (SECOND's 1408 x 1600 x 40 grid: 344 MB), and by default zeroes the
    whole output buffer on every call (pillars: 40000 x 32 x 4 floats, 20 MB) although a scan
    fills a fraction of it. Here the buffer is kept clean instead: after each call only the
    voxels just written are zeroed again, so the next call can skip the full clear and gives
    the same result. A large hash is moved into huge pages (`_in_huge_pages`).
    """

    def __init__(
        self, size: tuple[float, ...], rng: tuple[float, ...], channels: int, max_points: int, max_voxels: int
    ) -> None:
        cls = _point_to_voxel_class()
        if cls is None:
            raise MissingDependencyError(
                "backend='spconv' needs spconv: pip install spconv (or spconv-cu120)"
            )
        self.generator = cls(
            vsize_xyz=list(size),
            coors_range_xyz=list(rng),
            num_point_features=channels,
            max_num_voxels=max_voxels,
            max_num_points_per_voxel=max_points,
            device=torch.device("cpu"),
        )
        hash_table = getattr(self.generator, "hashdata", None)
        if isinstance(hash_table, Tensor) and hash_table.dtype == torch.int32 and hash_table.is_contiguous():
            self.generator.hashdata = _in_huge_pages(hash_table)
        # The generator writes into its own buffers: one call at a time.
        self.lock = threading.Lock()
        self.clean = True  # False while a call is under way, or after one failed

    def __call__(self, points: Tensor) -> HardVoxels:
        with self.lock:  # the generator runs under no_grad itself
            clear = not self.clean
            self.clean = False
            voxels, coords, num_points = self.generator(points.contiguous(), clear_voxels=clear)
            self.generator.voxels[: voxels.shape[0]].zero_()
            self.clean = True
        return HardVoxels(voxels, coords, num_points)


# Keyed by everything `PointToVoxel` is built from (spconv runs on the CPU only here); two
# settings at most, as each holds a dense hash of its grid.
@functools.lru_cache(maxsize=2)
def _spconv_voxelizer(
    size: tuple[float, ...],
    rng: tuple[float, ...],
    channels: int,
    max_points: int,
    max_voxels: int,
    device: str,
) -> _SpconvVoxelizer:
    del device  # part of the key: generators hold buffers on one device
    return _SpconvVoxelizer(size, rng, channels, max_points, max_voxels)


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
    points = _check_points(points)
    size = tuple(_floats(voxel_size, "voxel_size", 3))
    rng = tuple(_floats(point_cloud_range, "point_cloud_range", 6))
    _grid_cells(size, rng)  # validates the setting
    max_points = _check_count(max_points, "max_points")
    max_voxels = _check_count(max_voxels, "max_voxels")
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
        return _spconv_voxelizer(size, rng, points.shape[1], max_points, max_voxels, str(points.device))(
            points
        )
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
    points = _check_points(points)
    grid = voxel_grid(voxel_size, point_cloud_range)
    index, valid = _voxel_index(points, grid)
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
