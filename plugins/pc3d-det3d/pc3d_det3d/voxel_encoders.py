"""Voxel encoders: point clouds -> BEV feature maps."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from pc3d.errors import FormatError, ShapeError
from pc3d.ops import dynamic_voxelize, voxel_grid
from pc3d.structures import LiDARPoints
from pc3d_det3d.structures import BEVGrid, lidar_point_tensor

# Per-point features added to the raw ones: offset from the pillar's point mean (3) and from the
# pillar's centre in x and y (2), as in PointPillars.
_DECORATION_CHANNELS = 5


class DynamicPillarEncoder(nn.Module):
    """Points -> BEV pseudo-image: a per-point linear layer, then a max over each pillar.

    PointPillars' pillar feature net in its "dynamic" form (no cap on points per pillar, no
    padding to a fixed pillar count): each point is decorated with its offsets from its pillar's
    point mean and centre, passed through Linear -> LayerNorm -> ReLU, and max-pooled into its
    pillar with ``scatter_reduce``; empty pillars are zero. Binning is
    :func:`pc3d.ops.dynamic_voxelize` with one voxel spanning the whole z range (so it is the
    same arithmetic as every other pc3d voxelizer); points outside ``point_cloud_range`` are
    dropped.

    LayerNorm instead of PointPillars' BatchNorm1d: it works for any number of points, including
    a batch with zero or one point in training mode.

    Args:
        point_cloud_range: ``(x_min, y_min, z_min, x_max, y_max, z_max)`` in metres.
        pillar_size: ``(x, y)`` pillar size in metres; must divide the x and y extents.
        in_channels: values per point (4 for KITTI: x, y, z, reflectance).
        out_channels: channels of the BEV map.

    Attributes:
        grid: the BEV grid of the output map.

    Raises:
        ValueError: fewer than 3 input channels, or a pillar size that does not divide the range.
    """

    def __init__(
        self,
        point_cloud_range: Sequence[float],
        pillar_size: Sequence[float],
        in_channels: int = 4,
        out_channels: int = 32,
    ) -> None:
        super().__init__()
        if in_channels < 3:
            raise ValueError(f"in_channels must be at least 3 (x, y, z), got {in_channels}")
        self.grid = BEVGrid.from_sequences(point_cloud_range, pillar_size)
        z_min, z_max = self.grid.point_cloud_range[2], self.grid.point_cloud_range[5]
        # A pillar is a voxel as tall as the range.
        self._voxel_size = (*self.grid.cell_size, z_max - z_min)
        cells = voxel_grid(self._voxel_size, self.grid.point_cloud_range).grid
        if cells[:2] != (self.grid.nx, self.grid.ny):  # float32 vs float64 rounding disagree
            raise ValueError(
                f"pillar_size {tuple(pillar_size)} splits the range into {cells[0]} x {cells[1]} "
                f"pillars in float32 but {self.grid.nx} x {self.grid.ny} in float64; choose a size "
                "that divides the range exactly"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.linear = nn.Linear(in_channels + _DECORATION_CHANNELS, out_channels, bias=False)
        self.norm = nn.LayerNorm(out_channels)
        self.register_buffer(
            "_range", torch.tensor(self.grid.point_cloud_range, dtype=torch.float32), persistent=False
        )

    def _check_points(self, points: Sequence[LiDARPoints | Tensor]) -> list[Tensor]:
        """The clouds' tensors, each checked to be ``[N_i, in_channels]``."""
        if len(points) == 0:
            raise ShapeError("points: expected at least one point cloud, got an empty batch")
        tensors = [lidar_point_tensor(cloud, f"points[{index}]") for index, cloud in enumerate(points)]
        for index, cloud in enumerate(tensors):
            if cloud.ndim != 2 or cloud.shape[1] != self.in_channels:
                raise ShapeError(
                    f"points[{index}]: expected Tensor[N, {self.in_channels}], got {tuple(cloud.shape)}"
                )
        return tensors

    def forward(self, points: Sequence[LiDARPoints | Tensor]) -> Tensor:
        """Encode a batch of point clouds.

        Args:
            points: one :class:`LiDARPoints` (or ``Tensor``) ``[N_i, in_channels]`` per sample
                (x, y, z first); N_i may be 0.

        Returns:
            ``Tensor[B, out_channels, ny, nx]`` (see :class:`BEVGrid` for the layout).

        Raises:
            ShapeError: a cloud is not ``[N, in_channels]``.
            FormatError: a cloud holds NaN or infinite values, or is not in the LiDAR system.
        """
        points = self._check_points(points)
        flat = torch.cat([cloud.to(self._range.dtype) for cloud in points])
        finite = torch.isfinite(flat).all(dim=1)
        if not bool(finite.all()):
            bad_row = int((~finite).nonzero()[0])
            sizes = torch.tensor([len(c) for c in points]).cumsum(0)
            sample = int(torch.searchsorted(sizes, torch.tensor(bad_row), right=True))
            row = bad_row - (int(sizes[sample - 1]) if sample else 0)
            raise FormatError(f"points[{sample}] row {row} holds a NaN or infinite value")

        batch = len(points)
        device = flat.device
        counts = torch.tensor([len(c) for c in points], device=device)
        sample_of = torch.repeat_interleave(torch.arange(batch, device=device), counts)
        coords = dynamic_voxelize(flat, self._voxel_size, self.grid.point_cloud_range)  # z, y, x
        inside = coords[:, 0] >= 0
        flat, sample_of, coords = flat[inside], sample_of[inside], coords[inside].long()

        ny, nx = self.grid.shape
        cell_x, cell_y = self.grid.cell_size
        lo = self._range[:3].to(device)
        row, col = coords[:, 1], coords[:, 2]
        cell = (sample_of * ny + row) * nx + col  # Long[P]: flat index into B * ny * nx pillars
        num_cells = batch * ny * nx

        xyz = flat[:, :3]
        per_cell = torch.bincount(cell, minlength=num_cells).clamp_(min=1).to(flat.dtype)
        mean = torch.zeros(num_cells, 3, dtype=flat.dtype, device=device).index_add_(0, cell, xyz)
        mean = mean / per_cell[:, None]
        centre_x = lo[0] + (col.to(flat.dtype) + 0.5) * cell_x
        centre_y = lo[1] + (row.to(flat.dtype) + 0.5) * cell_y
        decorated = torch.cat(
            [flat, xyz - mean[cell], (xyz[:, 0] - centre_x)[:, None], (xyz[:, 1] - centre_y)[:, None]],
            dim=1,
        )
        hidden = torch.relu(self.norm(self.linear(decorated)))  # [P, out_channels]

        index = cell[:, None].expand(-1, self.out_channels)
        bev = torch.zeros(num_cells, self.out_channels, dtype=hidden.dtype, device=device)
        bev = bev.scatter_reduce(0, index, hidden, reduce="amax", include_self=False)
        # [B * ny * nx, C] -> [B, C, ny, nx]
        return bev.view(batch, ny, nx, self.out_channels).permute(0, 3, 1, 2).contiguous()
