"""Parameter-free voxel encoders (SECOND's mean of the points) and PointPillars' BEV scatter."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from pc3d.errors import FormatError, ShapeError
from pc3d.nn.voxel.common import check_coords, check_voxel_batch
from pc3d.ops import voxel_scatter


class HardSimpleVFE(nn.Module):
    """Mean of the stored points of each hard voxel (SECOND): `Tensor[V, M, C] -> Tensor[V, num_features]`.

    Args:
        num_features: leading point features averaged (4: x, y, z, reflectance).
    """

    def __init__(self, num_features: int = 4) -> None:
        super().__init__()
        self.num_features = num_features
        self.out_channels = num_features

    def forward(self, voxels: Tensor, num_points: Tensor, coords: Tensor | None = None) -> Tensor:
        """Mean point features.

        Args:
            voxels: `Tensor[V, M, C]`, zero padded (`hard_voxelize`), `C >= num_features`.
            num_points: `Tensor[V]` points stored per voxel (>= 1).
            coords: `IntTensor[V, 4]` (batch, z, y, x); unused, accepted for a uniform interface.

        Returns:
            `Tensor[V, num_features]`.
        """
        if coords is not None:
            check_voxel_batch(voxels, num_points, coords, "HardSimpleVFE")
        if voxels.dim() != 3 or voxels.shape[2] < self.num_features:
            raise ShapeError(
                f"HardSimpleVFE expects voxels of shape (V, M, >= {self.num_features}), got {tuple(voxels.shape)}"
            )
        total = voxels[:, :, : self.num_features].sum(dim=1)
        return total / num_points.to(voxels.dtype).view(-1, 1)


class DynamicSimpleVFE(nn.Module):
    """Mean of all points of each dynamic voxel: points and their voxel coords in, voxels out.

    `(Tensor[N, C], IntTensor[N, 4]) -> (Tensor[V, C], IntTensor[V, 4])`; see `forward`.
    """

    def forward(self, points: Tensor, coords: Tensor) -> tuple[Tensor, Tensor]:
        """Mean point features per voxel.

        Args:
            points: `Tensor[N, C]`.
            coords: `IntTensor[N, 4]` (batch, z, y, x) per point; rows with a negative entry are
                ignored (`dynamic_voxelize` marks points outside the range with -1).

        Returns:
            `(features Tensor[V, C], coords IntTensor[V, 4])`, voxels in ascending (batch, z, y, x)
            order.
        """
        if points.dim() != 2:
            raise ShapeError(f"DynamicSimpleVFE expects points of shape (N, C), got {tuple(points.shape)}")
        check_coords(coords, points.shape[0], "DynamicSimpleVFE")
        features, voxel_coords, _ = voxel_scatter(points, coords, "mean")
        return features, voxel_coords


class PointPillarsScatter(nn.Module):
    """Pillar features onto a dense BEV canvas: `Tensor[V, C] -> Tensor[B, C, ny, nx]`, zeros elsewhere.

    Args:
        in_channels: channels of the pillar features.
        output_shape: `(ny, nx)` canvas size, the voxel grid's y and x cell counts
            (PointPillars on KITTI: `(496, 432)`).
        channels_last: return the canvas in channels-last memory format (same values and shape;
            the pillar features are then written as whole rows, and channels-last convs read the
            map without a layout conversion). Set by `pc3d.nn.fuse.optimize_for_inference`.
    """

    def __init__(self, in_channels: int, output_shape: Sequence[int], channels_last: bool = False) -> None:
        super().__init__()
        if len(output_shape) != 2 or min(int(s) for s in output_shape) < 1:
            raise FormatError(f"output_shape must be (ny, nx) with positive sizes, got {list(output_shape)}")
        self.in_channels = in_channels
        self.ny, self.nx = int(output_shape[0]), int(output_shape[1])
        self.out_channels = in_channels
        self.channels_last = bool(channels_last)

    def forward(self, features: Tensor, coords: Tensor, batch_size: int | None = None) -> Tensor:
        """Scatter pillars to their cells; one `index_put` for the whole batch.

        Args:
            features: `Tensor[V, in_channels]`.
            coords: `IntTensor[V, 4]` (batch, z, y, x), at most one pillar per cell.
            batch_size: samples B; default: last batch index + 1 (1 when there are no pillars).

        Returns:
            `Tensor[B, in_channels, ny, nx]`.

        Raises:
            ShapeError: wrong shapes, or a coordinate outside the canvas or the batch (names it).
        """
        if features.dim() != 2 or features.shape[1] != self.in_channels:
            raise ShapeError(
                f"PointPillarsScatter expects features of shape (V, {self.in_channels}), got {tuple(features.shape)}"
            )
        check_coords(coords, features.shape[0], "PointPillarsScatter")
        if batch_size is None:
            batch_size = int(coords[:, 0].max()) + 1 if coords.shape[0] else 1
        coords = coords.long()
        batch, y, x = coords[:, 0], coords[:, 2], coords[:, 3]
        outside = (batch < 0) | (batch >= batch_size) | (y < 0) | (y >= self.ny) | (x < 0) | (x >= self.nx)
        if bool(outside.any()):
            row = int(outside.nonzero()[0, 0])
            raise ShapeError(
                f"PointPillarsScatter: coords row {row} {coords[row].tolist()} (batch, z, y, x) is outside the "
                f"canvas (ny {self.ny}, nx {self.nx}) or batch size {batch_size}"
            )
        cells = self.ny * self.nx
        index = (batch * self.ny + y) * self.nx + x
        if self.channels_last:
            # One contiguous row of C features per cell: (B, ny, nx, C) seen as (B, C, ny, nx).
            rows = features.new_zeros(batch_size * cells, self.in_channels)
            rows[index] = features
            return rows.view(batch_size, self.ny, self.nx, self.in_channels).permute(0, 3, 1, 2)
        # Channels first so the canvas of one sample is already (C, ny, nx) in memory.
        canvas = features.new_zeros(self.in_channels, batch_size * cells)
        canvas[:, index] = features.t()
        # For one sample the transposed view is already contiguous, and `contiguous` copies nothing.
        return canvas.view(self.in_channels, batch_size, self.ny, self.nx).transpose(0, 1).contiguous()
