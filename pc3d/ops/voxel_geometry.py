"""The voxel grid of a voxelization setting and the voxel of each point (see
:mod:`pc3d.ops.voxelize`): `floor((p - range_min) / voxel_size)` per axis, in the points' dtype
with `voxel_size` and `range_min` rounded to float32 first, valid when `0 <= index < grid`, where
`grid = round((range_max - range_min) / voxel_size)`; and the checks of the voxelizers' arguments.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from pc3d.errors import FormatError
from pc3d.ops.checks import check_points

__all__ = [
    "VoxelGrid",
    "check_float_points",
    "check_positive_int",
    "float_values",
    "grid_cells",
    "voxel_grid",
    "voxel_index",
]

_AXES = ("x", "y", "z")


class VoxelGrid(NamedTuple):
    """A validated voxelization setting (see `voxel_grid`)."""

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
    size = tuple(float_values(voxel_size, "voxel_size", 3))
    rng = tuple(float_values(point_cloud_range, "point_cloud_range", 6))
    cells = grid_cells(size, rng)
    return VoxelGrid(
        torch.tensor(size, dtype=torch.float32), torch.tensor(rng[:3], dtype=torch.float32), cells
    )


# Validation and grid size of a setting, computed once per setting (a detector calls the
# voxelizer with the same few settings on every frame).
@functools.lru_cache(maxsize=64)
def grid_cells(size: tuple[float, ...], rng: tuple[float, ...]) -> tuple[int, int, int]:
    """Check a setting and count its cells along x, y and z.

    Args:
        size: `(x, y, z)` voxel sizes (finite floats).
        rng: `(x_min, y_min, z_min, x_max, y_max, z_max)` (finite floats).

    Returns:
        The cells along x, y, z: `round((max - min) / size)` in float32, half away from zero.

    Raises:
        FormatError: a size not > 0, a range with min >= max, or an axis shorter than half a voxel.
    """
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


def float_values(values: Any, name: str, length: int) -> list[float]:
    """`length` finite numbers from a sequence or a tensor.

    Args:
        values: the numbers.
        name: the argument's name, for the error message.
        length: how many there must be.

    Returns:
        The numbers as floats.

    Raises:
        FormatError: naming the argument, when a value is not a number, the count is wrong or a
            value is not finite.
    """
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


def check_float_points(points: Any) -> Tensor:
    """`points` checked by :func:`pc3d.ops.checks.check_points`, and floating point.

    Args:
        points: `Tensor[N, 3+C]`.

    Returns:
        The points.

    Raises:
        FormatError: integer points, or what `check_points` raises.
    """
    points = check_points(points)
    if not points.is_floating_point():
        raise FormatError(f"points must be floating point, got dtype {points.dtype}")
    return points


def check_positive_int(value: Any, name: str) -> int:
    """`value` when it is an int >= 1 (not a bool).

    Args:
        value: the value to check.
        name: the argument's name, for the error message.

    Returns:
        The value.

    Raises:
        FormatError: anything else.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FormatError(f"{name} must be a positive int, got {value!r}")
    return value


def voxel_index(points: Tensor, grid: VoxelGrid) -> tuple[Tensor, Tensor]:
    """The voxel of each point.

    Args:
        points: `Tensor[N, 3+C]`, x, y, z first.
        grid: the setting.

    Returns:
        Float voxel indices `Tensor[N, 3]` (x, y, z) and the in-range mask `BoolTensor[N]`.
    """
    size = grid.voxel_size.to(points.device, points.dtype)
    lo = grid.range_min.to(points.device, points.dtype)
    # Subtract, then divide, then floor: the same rounding steps as the compiled peers.
    index = (points[:, :3] - lo).div_(size).floor_()
    valid = (index[:, 0] >= 0) & (index[:, 0] < grid.grid[0])
    for axis in (1, 2):
        column = index[:, axis]
        valid &= (column >= 0) & (column < grid.grid[axis])
    return index, valid
