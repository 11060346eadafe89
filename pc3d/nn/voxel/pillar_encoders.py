"""PointPillars' pillar feature net, for hard (fixed-size) and dynamic voxels.

Each point of a pillar is decorated with its offset from the mean of the pillar's points
(`with_cluster_center`), its offset from the pillar centre (`with_voxel_center`) and optionally
its distance to the origin (`with_distance`); a linear layer (no bias) + batch norm (eps 1e-3,
momentum 0.01) + ReLU maps every point, and a max (or mean) over the pillar's points gives the
pillar's feature.

`legacy=True` reproduces MMDetection3D's default `PillarFeatureNet` exactly: there the first three
input channels (x, y, z) are overwritten by the pillar-centre offsets, so the decorated point is
`(x - x_c, y - y_c, z - z_c, r, x - x_m, y - y_m, z - z_m, x - x_c, y - y_c, z - z_c)` and
`with_distance` measures the distance to the pillar centre. Checkpoints trained that way
(every MMDetection3D PointPillars model) only reproduce their outputs with `legacy=True`.

Padding rows of a hard voxel are zeroed after decoration but still take part in the max (as the
row `relu(norm(0))`), as in MMDetection3D and the original PointPillars.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pc3d.errors import FormatError, ShapeError
from pc3d.nn.voxel.common import build_norm_3d, check_coords, check_voxel_batch
from pc3d.ops import voxel_scatter

_MODES = ("max", "avg")


def _check_mode(mode: str) -> str:
    if mode not in _MODES:
        raise FormatError(f"mode must be 'max' or 'avg', got {mode!r}")
    return mode


class PFNLayer(nn.Module):
    """One pillar-feature layer: per-point `linear -> norm -> ReLU`, then pooled over the points.

    `Tensor[V, M, in_channels] -> Tensor[V, 1, out_channels]` when `last_layer`, else
    `Tensor[V, M, out_channels]`: the point features (`out_channels // 2`) next to the pooled
    pillar feature repeated for every point.

    Args:
        in_channels: features per point.
        out_channels: output features (split in two halves when not `last_layer`).
        last_layer: return only the pooled feature.
        mode: `"max"` or `"avg"` (sum over all M rows divided by the point count).
        norm: `"bn"` (eps 1e-3, momentum 0.01), `"gn"` or `"none"` (the linear then has a bias).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        last_layer: bool = True,
        mode: str = "max",
        norm: str = "bn",
    ) -> None:
        super().__init__()
        self.mode = _check_mode(mode)
        self.last_layer = last_layer
        self.units = out_channels if last_layer else out_channels // 2
        self.linear = nn.Linear(in_channels, self.units, bias=norm == "none")
        self.norm = build_norm_3d(norm, self.units, dim=1)

    def forward(self, inputs: Tensor, num_points: Tensor) -> Tensor:
        """`Tensor[V, M, C_in]` and counts `Tensor[V]` -> pooled (and point) features, see the class."""
        v, m, _ = inputs.shape
        x = self.linear(inputs)
        # Normalising the (V*M, C) rows gives the same statistics as BN1d over (V, C, M).
        x = F.relu(self.norm(x.reshape(v * m, self.units)).view(v, m, self.units))
        if self.mode == "max":
            pooled = x.amax(dim=1, keepdim=True)
        else:
            pooled = x.sum(dim=1, keepdim=True) / num_points.to(x.dtype).view(-1, 1, 1)
        if self.last_layer:
            return pooled
        return torch.cat([x, pooled.expand(-1, m, -1)], dim=2)


class PillarDecoration(nn.Module):
    """What both pillar nets share: the decoration settings, layer widths and pillar-centre arithmetic."""

    def __init__(
        self,
        in_channels: int,
        with_distance: bool,
        with_cluster_center: bool,
        with_voxel_center: bool,
        voxel_size: Sequence[float],
        point_cloud_range: Sequence[float],
    ) -> None:
        super().__init__()
        if len(voxel_size) != 3 or len(point_cloud_range) != 6:
            raise FormatError(
                f"voxel_size must have 3 values and point_cloud_range 6, got {list(voxel_size)} and {list(point_cloud_range)}"
            )
        self.in_channels = in_channels
        self.with_distance = with_distance
        self.with_cluster_center = with_cluster_center
        self.with_voxel_center = with_voxel_center
        self.voxel_size = tuple(float(v) for v in voxel_size)
        # Python floats, combined exactly as MMDetection3D does (coord * size + (size / 2 + min)).
        self.centre_offset = tuple(self.voxel_size[i] / 2 + float(point_cloud_range[i]) for i in range(3))
        self.decorated_channels = (
            in_channels + 3 * with_cluster_center + 3 * with_voxel_center + int(with_distance)
        )

    def layer_widths(self, feat_channels: Sequence[int]) -> list[int]:
        """`[decorated_channels, *feat_channels]`: the input and output widths of the layers.

        Raises:
            FormatError: `feat_channels` is empty.
        """
        if len(feat_channels) == 0:
            raise FormatError("feat_channels must name at least one layer, got ()")
        return [self.decorated_channels, *(int(c) for c in feat_channels)]

    def pillar_centres(self, coords: Tensor, dtype: torch.dtype) -> Tensor:
        """Centres `Tensor[R, 3]` (x, y, z) of the voxels `coords` `IntTensor[R, 4]` (batch, z, y, x)."""
        columns = [
            coords[:, 3 - axis].to(dtype) * self.voxel_size[axis] + self.centre_offset[axis]
            for axis in range(3)
        ]
        return torch.stack(columns, dim=1)


class PillarFeatureNet(PillarDecoration):
    """PointPillars' pillar feature net over hard voxels: `Tensor[V, M, C] -> Tensor[V, feat_channels[-1]]`.

    Args:
        in_channels: features per raw point (4: x, y, z, reflectance).
        feat_channels: output channels of each `PFNLayer` (PointPillars: `(64,)`).
        with_distance: add the point's Euclidean norm (see `legacy`).
        with_cluster_center: add the offset from the mean of the pillar's points.
        with_voxel_center: add the offset from the pillar centre.
        voxel_size: `(x, y, z)` voxel size of the voxelization.
        point_cloud_range: `(x_min, y_min, z_min, x_max, y_max, z_max)` of the voxelization.
        mode: `"max"` or `"avg"` pooling over the points.
        legacy: MMDetection3D's default decoration (raw x, y, z replaced by centre offsets; see the
            module docstring). `False` keeps the raw coordinates.
        norm: `"bn"`, `"gn"` or `"none"`.

    Attributes:
        out_channels: `feat_channels[-1]`.
    """

    def __init__(
        self,
        in_channels: int = 4,
        feat_channels: Sequence[int] = (64,),
        with_distance: bool = False,
        with_cluster_center: bool = True,
        with_voxel_center: bool = True,
        voxel_size: Sequence[float] = (0.2, 0.2, 4.0),
        point_cloud_range: Sequence[float] = (0.0, -40.0, -3.0, 70.4, 40.0, 1.0),
        mode: str = "max",
        legacy: bool = True,
        norm: str = "bn",
    ) -> None:
        super().__init__(
            in_channels, with_distance, with_cluster_center, with_voxel_center, voxel_size, point_cloud_range
        )
        self.legacy = legacy
        channels = self.layer_widths(feat_channels)
        last = len(channels) - 2
        self.pfn_layers = nn.ModuleList(
            PFNLayer(channels[i], channels[i + 1], last_layer=i == last, mode=mode, norm=norm)
            for i in range(last + 1)
        )
        self.out_channels = channels[-1]

    def decorate(self, voxels: Tensor, num_points: Tensor, coords: Tensor) -> Tensor:
        """Decorated points `Tensor[V, M, decorated_channels]`, padding rows zero."""
        dtype = voxels.dtype
        xyz = voxels[:, :, :3]
        centre_offset = (
            xyz - self.pillar_centres(coords, dtype).unsqueeze(1) if self.with_voxel_center else None
        )
        first = voxels
        if self.legacy and centre_offset is not None:
            first = torch.cat([centre_offset, voxels[:, :, 3:]], dim=2)
        parts = [first]
        if self.with_cluster_center:
            mean = xyz.sum(dim=1, keepdim=True) / num_points.to(dtype).view(-1, 1, 1)
            parts.append(xyz - mean)
        if centre_offset is not None:
            parts.append(centre_offset)
        if self.with_distance:
            parts.append(torch.linalg.vector_norm(first[:, :, :3], dim=2, keepdim=True))
        features = torch.cat(parts, dim=2)
        valid = torch.arange(voxels.shape[1], device=voxels.device) < num_points.unsqueeze(1)
        return features * valid.unsqueeze(2).to(dtype)

    def forward(self, voxels: Tensor, num_points: Tensor, coords: Tensor) -> Tensor:
        """Pillar features.

        Args:
            voxels: `Tensor[V, M, in_channels]` points per pillar, zero padded (`hard_voxelize`).
            num_points: `Tensor[V]` points stored per pillar (>= 1).
            coords: `IntTensor[V, 4]` as (batch, z, y, x).

        Returns:
            `Tensor[V, out_channels]`.
        """
        check_voxel_batch(voxels, num_points, coords, "PillarFeatureNet")
        if voxels.shape[2] != self.in_channels:
            raise ShapeError(
                f"PillarFeatureNet expects {self.in_channels} features per point, got {voxels.shape[2]}"
            )
        if self.folded_path_applies():
            return self.folded_forward(voxels, num_points, coords)
        features = self.decorate(voxels, num_points, coords)
        for pfn in self.pfn_layers:
            features = pfn(features, num_points)
        return features.squeeze(1)

    def folded_path_applies(self) -> bool:
        """Whether :meth:`folded_forward` computes this net: one max-pooled layer whose norm was
        folded into its linear (`pc3d.nn.fuse`), MMDetection3D's legacy decoration, no distance."""
        if len(self.pfn_layers) != 1 or not (
            self.legacy and self.with_cluster_center and self.with_voxel_center
        ):
            return False
        layer = self.pfn_layers[0]
        return (
            not self.with_distance
            and isinstance(layer, PFNLayer)
            and layer.mode == "max"
            and isinstance(layer.norm, nn.Identity)
            and layer.linear.bias is not None
            and self.in_channels >= 3
        )

    def folded_forward(self, voxels: Tensor, num_points: Tensor, coords: Tensor) -> Tensor:
        """The same pillar features without building the decorated points.

        The decorated point is linear in the raw point, the pillar centre `c` and the points' mean
        `m`, so with the linear's column blocks `W = [W_a | W_e | W_b | W_c]` (centre offset,
        extra features, cluster offset, centre offset again):
        `W f = (W_a + W_b + W_c) xyz + W_e e - (W_a + W_c) c - W_b m`. One small matmul over the
        stored raw points, their max per pillar and a per-pillar offset replace the decoration
        (every pillar holds at least one point); padding rows (zero after
        decoration, so just the bias) join the max only where a pillar has any; and since ReLU
        is monotone it is applied to the pooled feature only.

        Args:
            voxels: `Tensor[V, M, in_channels]` points per pillar, zero padded.
            num_points: `Tensor[V]` points stored per pillar (>= 1).
            coords: `IntTensor[V, 4]` as (batch, z, y, x).

        Returns:
            `Tensor[V, out_channels]`, equal to the plain forward up to float rounding.
        """
        layer = self.pfn_layers[0]
        assert isinstance(layer, PFNLayer) and layer.linear.bias is not None  # folded_path_applies
        weight, bias = layer.linear.weight, layer.linear.bias
        c = self.in_channels
        w_a, w_e, w_b, w_c = weight[:, :3], weight[:, 3:c], weight[:, c : c + 3], weight[:, c + 3 : c + 6]
        point_weight = torch.cat([w_a + w_b + w_c, w_e], dim=1)  # [C_out, in_channels]
        dtype = voxels.dtype
        mean = voxels[:, :, :3].sum(dim=1) / num_points.to(dtype).view(-1, 1)
        offset = (
            torch.addmm(bias, mean, w_b.t(), alpha=-1) - self.pillar_centres(coords, dtype) @ (w_a + w_c).t()
        )
        # Only the stored points (a fraction of the V x M slots) go through the matmul.
        valid = torch.arange(voxels.shape[1], device=voxels.device) < num_points.unsqueeze(1)
        pillar, slot = valid.nonzero(as_tuple=True)
        per_point = voxels[pillar, slot] @ point_weight.t()  # [P, C_out]
        pooled = per_point.new_full((voxels.shape[0], per_point.shape[1]), float("-inf"))
        pooled = (
            pooled.scatter_reduce_(0, pillar.unsqueeze(1).expand_as(per_point), per_point, "amax") + offset
        )
        padded = (num_points < voxels.shape[1]).unsqueeze(1)
        pooled = torch.where(padded, torch.maximum(pooled, bias), pooled)
        return F.relu(pooled)


class DynamicPillarFeatureNet(PillarDecoration):
    """Pillar feature net over dynamic voxels (every point kept): points in, pillar features out.

    Same decoration as `PillarFeatureNet(legacy=False)` (raw x, y, z kept), per-point
    `Linear -> norm -> ReLU` layers (`pfn_layers.i.0/1/2`, MMDetection3D's layout), features
    pooled per pillar with `pc3d.ops.voxel_scatter`; a layer that is not the last feeds the next
    one each point's features next to its pillar's pooled features.

    Args:
        in_channels: features per raw point.
        feat_channels: output channels of each layer.
        with_distance: add the point's Euclidean norm.
        with_cluster_center: add the offset from the mean of the pillar's points.
        with_voxel_center: add the offset from the pillar centre.
        voxel_size: `(x, y, z)` voxel size of the voxelization.
        point_cloud_range: range of the voxelization.
        mode: `"max"` or `"avg"` pooling per pillar.
        norm: `"bn"`, `"gn"` or `"none"`.

    Attributes:
        out_channels: `feat_channels[-1]`.
    """

    # The same keywords and defaults as PillarFeatureNet (less `legacy`) on purpose: configs map
    # to explicit constructors, and either net can stand in the other's place.
    def __init__(
        self,
        in_channels: int = 4,
        feat_channels: Sequence[int] = (64,),
        with_distance: bool = False,
        with_cluster_center: bool = True,
        with_voxel_center: bool = True,
        voxel_size: Sequence[float] = (0.2, 0.2, 4.0),
        point_cloud_range: Sequence[float] = (0.0, -40.0, -3.0, 70.4, 40.0, 1.0),
        mode: str = "max",
        norm: str = "bn",
    ) -> None:
        super().__init__(
            in_channels, with_distance, with_cluster_center, with_voxel_center, voxel_size, point_cloud_range
        )
        self.reduce = "max" if _check_mode(mode) == "max" else "mean"
        channels = self.layer_widths(feat_channels)
        layers = []
        for i in range(len(channels) - 1):
            c_in = channels[i] * (2 if i > 0 else 1)
            layers.append(
                nn.Sequential(
                    nn.Linear(c_in, channels[i + 1], bias=norm == "none"),
                    build_norm_3d(norm, channels[i + 1], 1),
                    nn.ReLU(inplace=True),
                )
            )
        self.pfn_layers = nn.ModuleList(layers)
        self.out_channels = channels[-1]

    def forward(self, points: Tensor, coords: Tensor) -> tuple[Tensor, Tensor]:
        """Pillar features of the points' pillars.

        Args:
            points: `Tensor[N, in_channels]`.
            coords: `IntTensor[N, 4]` (batch, z, y, x) of each point's pillar, e.g.
                `dynamic_voxelize` with a batch column; rows with a negative entry are ignored.

        Returns:
            `(features Tensor[V, out_channels], coords IntTensor[V, 4])`, pillars in ascending
            (batch, z, y, x) order.
        """
        if points.dim() != 2 or points.shape[1] != self.in_channels:
            raise ShapeError(
                f"DynamicPillarFeatureNet expects points of shape (N, {self.in_channels}), got {tuple(points.shape)}"
            )
        check_coords(coords, points.shape[0], "DynamicPillarFeatureNet")
        keep = (coords >= 0).all(dim=1)
        if not bool(keep.all()):
            points, coords = points[keep], coords[keep]
        xyz = points[:, :3]
        parts = [points]
        if self.with_cluster_center:
            mean, _, point_to_voxel = voxel_scatter(xyz, coords, "mean")
            parts.append(xyz - mean.index_select(0, point_to_voxel))
        if self.with_voxel_center:
            parts.append(xyz - self.pillar_centres(coords, points.dtype))
        if self.with_distance:
            parts.append(torch.linalg.vector_norm(xyz, dim=1, keepdim=True))
        features = torch.cat(parts, dim=1)
        voxel_features, voxel_coords = features.new_zeros(0, self.out_channels), coords.new_zeros(0, 4)
        for i, pfn in enumerate(self.pfn_layers):
            point_features = pfn(features)
            voxel_features, voxel_coords, point_to_voxel = voxel_scatter(point_features, coords, self.reduce)
            if i < len(self.pfn_layers) - 1:
                features = torch.cat([point_features, voxel_features.index_select(0, point_to_voxel)], dim=1)
        return voxel_features, voxel_coords
