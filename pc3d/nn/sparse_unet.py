"""A sparse-convolution U-Net for point clouds (MinkUNet-style), on spconv 2 through `pc3d.nn.sparse`.

Points are binned into voxels (`voxelize_points`), a submanifold encoder-decoder computes voxel
features, and every point reads the feature of its voxel back, optionally concatenated with a
per-point branch (SPVCNN's idea: points sharing a voxel still differ). The result is one feature
vector per point, for a per-point classification head.

Layout with `encoder_channels=(32, 64, 128)`, `decoder_channels=(64, 32, 32)` (grid side `S`):

    stem      SubM 3 x 2                      [S]   -> [S]     (base_channels)
    down1     SpConv 2/2, SubM 3 x blocks     [S]   -> [S/2]   (32)
    down2     SpConv 2/2, SubM 3 x blocks     [S/2] -> [S/4]   (64)
    down3     SpConv 2/2, SubM 3 x blocks     [S/4] -> [S/8]   (128)
    up3       InvConv 2 (down3), cat down2, SubM 3 x blocks  [S/8] -> [S/4] (64)
    up2       InvConv 2 (down2), cat down1, SubM 3 x blocks  [S/4] -> [S/2] (32)
    up1       InvConv 2 (down1), cat stem,  SubM 3 x blocks  [S/2] -> [S]   (32)
    points    voxel feature of each point (+ point branch)   -> Tensor[sum N, out_channels]

The grid of each batch starts at the smallest occupied cell of each cloud and its sides are
rounded up to a multiple of `2 ** len(encoder_channels)`, so no point falls off a strided conv.
Nothing here imports spconv: the layers come from `pc3d.nn.sparse`, which also picks the
algorithm for the device (`set_sparse_conv_algo`) and computes the convolutions on the CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from pc3d.errors import FormatError, ShapeError
from pc3d.nn.sparse import (
    SparseConvBlock,
    import_spconv,
    run_sparse_inverse_conv,
    set_sparse_conv_algo,
    sparse_conv,
    sparse_conv_tensor,
    sparse_inverse_conv,
)

__all__ = ["SparseUNet", "VoxelizedPoints", "check_point_clouds", "voxelize_points"]


@dataclass
class VoxelizedPoints:
    """Points binned into voxels.

    Attributes:
        features: `Tensor[V, C + 3]` mean over each voxel's points of (point features, offset
            from the voxel centre).
        coords: `LongTensor[V, 4]` (batch, z, y, x) of each voxel, unique rows.
        spatial_shape: `(D, H, W)` of the grid.
        point_to_voxel: `LongTensor[P]` voxel row of each point (points of all clouds, in order).
        point_features: `Tensor[P, C + 3]` each point's own (features, offset).
        batch_size: clouds B.
    """

    features: Tensor
    coords: Tensor
    spatial_shape: tuple[int, int, int]
    point_to_voxel: Tensor
    point_features: Tensor
    batch_size: int


def check_point_clouds(points: Sequence[Tensor], in_channels: int, owner: str) -> None:
    """Raise unless `points` is a non-empty list of finite `Tensor[N_i, in_channels]` clouds.

    Raises:
        ShapeError: an empty batch, or a cloud that is not `[N, in_channels]`.
        FormatError: a cloud holding NaN or infinite values.
    """
    if len(points) == 0:
        raise ShapeError(f"{owner}: expected at least one point cloud, got an empty batch")
    for index, cloud in enumerate(points):
        if not isinstance(cloud, Tensor) or cloud.ndim != 2 or cloud.shape[1] != in_channels:
            shape = tuple(cloud.shape) if isinstance(cloud, Tensor) else type(cloud).__name__
            raise ShapeError(f"{owner}: points[{index}]: expected Tensor[N, {in_channels}], got {shape}")
        if not bool(torch.isfinite(cloud).all()):
            raise FormatError(f"{owner}: points[{index}] holds NaN or infinite values")


def voxelize_points(
    points: Sequence[Tensor], voxel_size: Sequence[float], multiple: int = 1
) -> VoxelizedPoints:
    """Bin clouds into voxels of `voxel_size` metres, every point kept (no range filter).

    Args:
        points: one `Tensor[N_i, C]` per cloud, x, y, z first.
        voxel_size: `(x, y, z)` metres.
        multiple: grid sides are rounded up to a multiple of this.

    Returns:
        The voxels, their mean features and each point's voxel.
    """
    flat = torch.cat([cloud.float() for cloud in points])
    device = flat.device
    size = flat.new_tensor([float(v) for v in voxel_size])
    counts = torch.tensor([len(cloud) for cloud in points], device=device)
    batch = torch.repeat_interleave(torch.arange(len(points), device=device), counts)
    cell = torch.floor(flat[:, :3] / size).long()  # [P, 3] x, y, z
    lowest = torch.zeros(len(points), 3, dtype=torch.long, device=device)
    lowest = lowest.scatter_reduce(0, batch[:, None].expand(-1, 3), cell, reduce="amin", include_self=False)
    cell = cell - lowest[batch]
    offset = flat[:, :3] - (cell + lowest[batch] + 0.5) * size  # from the voxel centre
    zyx = cell.flip(1)
    extent = zyx.amax(0) + 1 if len(zyx) else torch.ones(3, dtype=torch.long, device=device)
    shape = ((extent + multiple - 1) // multiple * multiple).tolist()
    keys = ((batch * shape[0] + zyx[:, 0]) * shape[1] + zyx[:, 1]) * shape[2] + zyx[:, 2]
    unique, inverse = torch.unique(keys, return_inverse=True)
    coords = torch.empty(len(unique), 4, dtype=torch.long, device=device)
    coords[inverse] = torch.cat([batch[:, None], zyx], dim=1)
    point_features = torch.cat([flat, offset], dim=1)
    sums = point_features.new_zeros(len(unique), point_features.shape[1]).index_add_(
        0, inverse, point_features
    )
    members = torch.bincount(inverse, minlength=len(unique)).clamp_(min=1)
    return VoxelizedPoints(
        sums / members[:, None], coords, (shape[0], shape[1], shape[2]), inverse, point_features, len(points)
    )


def _norm(channels: int, norm: str) -> nn.Module:
    if norm == "bn":
        return nn.BatchNorm1d(channels)
    if norm == "none":
        return nn.Identity()
    raise FormatError(f"norm must be 'bn' or 'none', got {norm!r}")


def _block(
    conv_type: str, cin: int, cout: int, kernel: int, stride: int, key: str, norm: str
) -> SparseConvBlock:
    conv = sparse_conv(conv_type, cin, cout, kernel, stride, 1 if conv_type == "SubMConv3d" else 0, key)
    return SparseConvBlock(conv, _norm(cout, norm), nn.ReLU(inplace=True))


class _UpStage(nn.Module):
    """Inverse conv to the finer level, concatenation with its skip features, submanifold convs."""

    def __init__(self, cin: int, skip: int, cout: int, blocks: int, level: int, norm: str) -> None:
        super().__init__()
        self.up = sparse_inverse_conv(cin, cout, 2, indice_key=f"down{level + 1}")
        self.up_norm = _norm(cout, norm)
        layers = [_block("SubMConv3d", cout + skip, cout, 3, 1, f"subm{level}", norm)]
        layers += [_block("SubMConv3d", cout, cout, 3, 1, f"subm{level}", norm) for _ in range(blocks - 1)]
        self.convs = nn.Sequential(*layers)

    def forward(self, x: Any, skip: Any, down: nn.Module) -> Any:
        x = run_sparse_inverse_conv(self.up, x, skip, down)  # coarse -> the skip's sites, in its row order
        x = x.replace_feature(torch.relu(self.up_norm(x.features)))
        return self.convs(x.replace_feature(torch.cat([x.features, skip.features], dim=1)))


class SparseUNet(nn.Module):
    """Sparse-conv U-Net backbone: clouds in, one feature vector per point out (see the module docstring).

    `[Tensor[N_i, in_channels]] * B -> Tensor[sum N_i, out_channels]`, clouds in order.

    Args:
        in_channels: values per point (x, y, z, then e.g. intensity or colour).
        voxel_size: `(x, y, z)` voxel size in metres.
        base_channels: channels of the full-resolution stem.
        encoder_channels: output channels of each down stage (each halves the grid).
        decoder_channels: output channels of each up stage, deepest first (one per down stage).
        blocks: submanifold convs per stage (after its strided or inverse conv).
        point_channels: width of the per-point branch concatenated to the voxel features
            (`Linear` on the point's own features and its offset from the voxel centre); 0: none.
        norm: `"bn"` (BatchNorm1d over active sites, PyTorch defaults; in training every level
            needs more than one active site per batch) or `"none"`.

    Attributes:
        out_channels: `decoder_channels[-1] + point_channels`.

    Raises:
        FormatError: stage lists of different lengths, no stage, or fewer than one block.
    """

    def __init__(
        self,
        in_channels: int = 4,
        voxel_size: Sequence[float] = (0.1, 0.1, 0.1),
        base_channels: int = 16,
        encoder_channels: Sequence[int] = (32, 64, 128),
        decoder_channels: Sequence[int] = (64, 32, 32),
        blocks: int = 1,
        point_channels: int = 16,
        norm: str = "bn",
    ) -> None:
        super().__init__()
        import_spconv()
        if len(encoder_channels) == 0 or len(encoder_channels) != len(decoder_channels):
            raise FormatError(
                f"SparseUNet: decoder_channels {list(decoder_channels)} must have one entry per encoder stage "
                f"{list(encoder_channels)} (at least one)"
            )
        if blocks < 1:
            raise FormatError(f"SparseUNet: blocks must be at least 1, got {blocks}")
        if len(voxel_size) != 3 or any(float(v) <= 0 for v in voxel_size):
            raise FormatError(
                f"SparseUNet: voxel_size must be 3 positive numbers (x, y, z), got {list(voxel_size)}"
            )
        self.in_channels = in_channels
        self.voxel_size = tuple(float(v) for v in voxel_size)
        self.out_channels = int(decoder_channels[-1]) + point_channels
        feature_channels = in_channels + 3  # + offset from the voxel centre
        self.stem = nn.Sequential(
            _block("SubMConv3d", feature_channels, base_channels, 3, 1, "subm0", norm),
            _block("SubMConv3d", base_channels, base_channels, 3, 1, "subm0", norm),
        )
        levels = [base_channels, *encoder_channels]
        self.down = nn.ModuleList()
        for level, cout in enumerate(encoder_channels, start=1):
            layers = [_block("SparseConv3d", levels[level - 1], cout, 2, 2, f"down{level}", norm)]
            layers += [_block("SubMConv3d", cout, cout, 3, 1, f"subm{level}", norm) for _ in range(blocks)]
            self.down.append(nn.Sequential(*layers))
        self.up = nn.ModuleList()
        cin = levels[-1]
        for level, cout in zip(range(len(encoder_channels) - 1, -1, -1), decoder_channels, strict=True):
            self.up.append(_UpStage(cin, levels[level], cout, blocks, level, norm))
            cin = cout
        self.point_branch = (
            nn.Sequential(
                nn.Linear(feature_channels, point_channels),
                _norm(point_channels, norm),
                nn.ReLU(inplace=True),
            )
            if point_channels
            else None
        )
        self._algo_device: torch.device | None = None

    def forward(self, points: Sequence[Tensor]) -> Tensor:
        """Per-point features of a batch of clouds.

        Args:
            points: one `Tensor[N_i, in_channels]` per cloud (x, y, z first).

        Returns:
            `Tensor[sum N_i, out_channels]`, clouds in order.

        Raises:
            ShapeError: an empty batch, a cloud that is not `[N, in_channels]`, or no point at all.
            FormatError: a cloud holding NaN or infinite values.
        """
        check_point_clouds(points, self.in_channels, "SparseUNet")
        if sum(len(cloud) for cloud in points) == 0:
            raise ShapeError("SparseUNet: the batch holds no point")
        voxels = voxelize_points(points, self.voxel_size, multiple=2 ** len(self.down))
        device = voxels.features.device
        if self._algo_device != device:
            set_sparse_conv_algo(self, device)
            self._algo_device = device
        x = sparse_conv_tensor(voxels.features, voxels.coords, voxels.spatial_shape, voxels.batch_size)
        skips = [self.stem(x)]  # [S] (base_channels)
        for stage in self.down:  # [S] -> [S/2] -> ... (halved per stage)
            skips.append(stage(skips[-1]))
        x = skips.pop()
        for stage, down in zip(self.up, reversed(self.down), strict=True):  # back up, one level per stage
            skip = skips.pop()
            x = stage(x, skip, down[0][0])  # type: ignore[index]  # the stage's strided conv
        features = x.features[voxels.point_to_voxel]  # [P, decoder_channels[-1]]: voxels back to points
        if self.point_branch is not None:
            features = torch.cat([features, self.point_branch(voxels.point_features)], dim=1)
        return features
