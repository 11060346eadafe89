"""Small typed structures passed between the det3d stages."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor

from pc3d.errors import ShapeError


@dataclass(frozen=True)
class BEVGrid:
    """A bird's-eye-view grid over the LiDAR x-y plane (x forward, y left, z up)::

              +y (rows)
               ^
        row r  |  cell (r, c) covers x in [x_min + c * cell_x, x_min + (c + 1) * cell_x)
               |                     y in [y_min + r * cell_y, y_min + (r + 1) * cell_y)
               +-------> +x (columns)

    A BEV map over this grid is ``Tensor[B, C, ny, nx]``: rows run along +y, columns along +x.

    :param point_cloud_range: ``(x_min, y_min, z_min, x_max, y_max, z_max)`` in metres; points
        outside are dropped.
    :param cell_size: ``(cell_x, cell_y)`` in metres; must divide the x and y extents.
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
                    f"cell size {cell} does not divide the {axis} extent {extent:g} "
                    f"({cells:.4f} cells)"
                )

    @classmethod
    def from_sequences(cls, point_cloud_range: Sequence[float], cell_size: Sequence[float]) -> BEVGrid:
        return cls(
            tuple(float(v) for v in point_cloud_range),  # type: ignore[arg-type]
            tuple(float(v) for v in cell_size),  # type: ignore[arg-type]
        )

    @property
    def nx(self) -> int:
        return round((self.point_cloud_range[3] - self.point_cloud_range[0]) / self.cell_size[0])

    @property
    def ny(self) -> int:
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


@dataclass
class Detections3D:
    """Detections of one sample.

    :ivar boxes: ``Tensor[N, 7]`` LiDAR boxes ``x, y, z, x_size, y_size, z_size, yaw``, (x, y, z)
        the bottom centre, yaw counter-clockwise from +x seen from above (pc3d's LiDAR
        convention).
    :ivar scores: ``Tensor[N]`` in [0, 1], highest first.
    :ivar labels: ``Long[N]`` class indices.
    """

    boxes: Tensor
    scores: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return int(self.scores.shape[0])
