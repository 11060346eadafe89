"""Small typed structures passed between the det3d stages, and the adapters that let every stage
take either pc3d's structures (:class:`~pc3d.structures.LiDARPoints`,
:class:`~pc3d.structures.LiDARBoxes3D`) or plain tensors in the same LiDAR layout."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor

from pc3d.errors import FormatError, ShapeError
from pc3d.structures import BasePoints, Boxes3D, Detections3D, LiDARBoxes3D, LiDARPoints


def lidar_tensor(
    value: LiDARBoxes3D | LiDARPoints | Tensor, what: str, structure: type[LiDARBoxes3D | LiDARPoints]
) -> Tensor:
    """The tensor behind LiDAR boxes or points, so that every det3d stage takes pc3d's structures
    and plain tensors alike.

    Args:
        value: a ``structure`` instance, or a tensor in its layout (boxes ``Tensor[N, 7+C]``, read
            as LiDAR boxes as ``pc3d.ops`` does; points ``Tensor[N, 3+C]``).
        what: the argument's name, for the error message.
        structure: :class:`LiDARBoxes3D` or :class:`LiDARPoints`.

    Returns:
        ``value.tensor`` or ``value`` itself.

    Raises:
        FormatError: boxes or points of another system (Camera, Depth), or another type.
    """
    if isinstance(value, structure):
        return value.tensor
    if isinstance(value, (Boxes3D, BasePoints)):
        raise FormatError(
            f"{what}: expected {structure.__name__}, got {type(value).__name__}; convert with "
            ".convert_to('lidar', rt_mat) first"
        )
    if isinstance(value, Tensor):
        return value
    raise FormatError(f"{what}: expected {structure.__name__} or a Tensor, got {type(value).__name__}")


def lidar_box_tensor(boxes: LiDARBoxes3D | Tensor, what: str) -> Tensor:
    """``Tensor[N, 7+C]`` of LiDAR boxes (see :func:`lidar_tensor`)."""
    return lidar_tensor(boxes, what, LiDARBoxes3D)


def lidar_point_tensor(points: LiDARPoints | Tensor, what: str) -> Tensor:
    """``Tensor[N, 3+C]`` of a LiDAR point cloud (see :func:`lidar_tensor`)."""
    return lidar_tensor(points, what, LiDARPoints)


@dataclass(frozen=True)
class BEVGrid:
    """A bird's-eye-view grid over the LiDAR x-y plane (x forward, y left, z up)::

              +y (rows)
               ^
        row r  |  cell (r, c) covers x in [x_min + c * cell_x, x_min + (c + 1) * cell_x)
               |                     y in [y_min + r * cell_y, y_min + (r + 1) * cell_y)
               +-------> +x (columns)

    A BEV map over this grid is ``Tensor[B, C, ny, nx]``: rows run along +y, columns along +x.

    Attributes:
        point_cloud_range: ``(x_min, y_min, z_min, x_max, y_max, z_max)`` in metres; points
            outside are dropped.
        cell_size: ``(cell_x, cell_y)`` in metres; must divide the x and y extents.

    Raises:
        ShapeError: a range without 6 numbers or a cell size without 2.
        ValueError: an empty range, a non-positive cell size, or one that does not divide the
            range.
    """

    point_cloud_range: tuple[float, float, float, float, float, float]
    cell_size: tuple[float, float]

    def __post_init__(self) -> None:
        if len(self.point_cloud_range) != 6:
            raise ShapeError(
                f"point_cloud_range: expected 6 numbers (x_min, y_min, z_min, x_max, y_max, "
                f"z_max), got {len(self.point_cloud_range)}"
            )
        if len(self.cell_size) != 2:
            raise ShapeError(f"cell size: expected 2 numbers (x, y), got {len(self.cell_size)}")
        lo, hi = self.point_cloud_range[:3], self.point_cloud_range[3:]
        if any(b <= a for a, b in zip(lo, hi)):
            raise ValueError(f"point_cloud_range {self.point_cloud_range}: each max must exceed its min")
        if any(c <= 0 for c in self.cell_size):
            raise ValueError(f"cell size {self.cell_size} must be positive")
        for axis, extent, cell in zip("xy", (hi[0] - lo[0], hi[1] - lo[1]), self.cell_size):
            cells = extent / cell
            if not math.isclose(cells, round(cells), rel_tol=0, abs_tol=1e-4):
                raise ValueError(
                    f"cell size {cell} does not divide the {axis} extent {extent:g} ({cells:.4f} cells)"
                )

    @classmethod
    def from_sequences(cls, point_cloud_range: Sequence[float], cell_size: Sequence[float]) -> BEVGrid:
        """A grid from any sequences of numbers (config lists), converted to float tuples."""
        return cls(
            tuple(float(v) for v in point_cloud_range),  # type: ignore[arg-type]
            tuple(float(v) for v in cell_size),  # type: ignore[arg-type]
        )

    @property
    def nx(self) -> int:
        """Cells along x (columns)."""
        return round((self.point_cloud_range[3] - self.point_cloud_range[0]) / self.cell_size[0])

    @property
    def ny(self) -> int:
        """Cells along y (rows)."""
        return round((self.point_cloud_range[4] - self.point_cloud_range[1]) / self.cell_size[1])

    @property
    def shape(self) -> tuple[int, int]:
        """``(ny, nx)``: the spatial shape of a BEV map."""
        return (self.ny, self.nx)

    def downsample(self, stride: int) -> BEVGrid:
        """The grid of a map ``stride`` times coarser (a backbone's output)."""
        if stride < 1 or self.nx % stride or self.ny % stride:
            raise ShapeError(f"a {self.ny} x {self.nx} BEV grid cannot be downsampled by {stride}")
        return BEVGrid(self.point_cloud_range, (self.cell_size[0] * stride, self.cell_size[1] * stride))


#: The detections of one frame; defined in the core (``pc3d.structures``), re-exported here.
__all__ = ["BEVGrid", "Detections3D", "lidar_box_tensor", "lidar_point_tensor", "lidar_tensor"]
