"""PointNet++ (Qi et al., 2017) building blocks in plain, vectorised torch (no compiled ops).

- `farthest_point_sample`: iterative farthest point sampling, batched over clouds (the loop runs
  over the samples drawn, which is inherent to the algorithm, never over points);
- `ball_query`: the first `nsample` points (in index order) within `radius` of each centroid,
  padded with the first one found, as the CUDA kernel of the reference implementation does;
- `group_points`, `three_nn`, `three_interpolate`: gathering and 3-NN inverse-distance
  interpolation;
- `SetAbstraction`, `FeaturePropagation` and `PointNet2` (the single-scale-grouping segmentation
  network: SA layers down, FP layers back up to every input point).

Shapes: `xyz` is `Tensor[B, N, 3]`, features are `Tensor[B, N, C]` (channels last).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from pc3d.errors import FormatError, ShapeError
from pc3d.nn.sparse_unet import check_point_clouds

__all__ = [
    "FeaturePropagation",
    "PointNet2",
    "SetAbstraction",
    "ball_query",
    "farthest_point_sample",
    "group_points",
    "shared_mlp",
    "three_interpolate",
    "three_nn",
]


def farthest_point_sample(xyz: Tensor, npoint: int) -> Tensor:
    """Indices of `npoint` points of each cloud, each the farthest from those chosen before.

    Starts at point 0 of each cloud, as the reference implementation does. A cloud with fewer
    than `npoint` points repeats indices once every point is chosen.

    Args:
        xyz: `Tensor[B, N, 3]`, N >= 1.
        npoint: samples per cloud.

    Returns:
        `LongTensor[B, npoint]`.
    """
    batch, count, _ = xyz.shape
    chosen = torch.zeros(batch, npoint, dtype=torch.long, device=xyz.device)
    nearest = xyz.new_full((batch, count), float("inf"))
    rows = torch.arange(batch, device=xyz.device)
    latest = torch.zeros(batch, dtype=torch.long, device=xyz.device)
    for step in range(1, npoint):  # one step per sample drawn; each is vectorised over all points
        nearest = torch.minimum(nearest, (xyz - xyz[rows, latest][:, None, :]).square().sum(-1))
        latest = nearest.argmax(dim=1)
        chosen[:, step] = latest
    return chosen


def ball_query(radius: float, nsample: int, xyz: Tensor, centers: Tensor) -> Tensor:
    """The first `nsample` points (lowest indices) within `radius` of each centre.

    Slots left over are filled with the first point found; a centre with no point within the
    radius gets index 0 everywhere (a centre drawn from the cloud always finds itself).

    Args:
        radius: ball radius (metres).
        nsample: points per ball.
        xyz: `Tensor[B, N, 3]` the cloud.
        centers: `Tensor[B, M, 3]` the centres.

    Returns:
        `LongTensor[B, M, nsample]`.
    """
    count = xyz.shape[1]
    inside = torch.cdist(centers, xyz).le(radius)  # [B, M, N]
    index = torch.arange(count, device=xyz.device).expand_as(inside)
    candidates = torch.where(inside, index, count)  # outside the ball: count, after every real index
    k = min(nsample, count)
    first = candidates.topk(k, dim=-1, largest=False, sorted=True).values  # [B, M, k]
    if k < nsample:
        first = torch.cat([first, first.new_full((*first.shape[:2], nsample - k), count)], dim=-1)
    found = first[..., :1]
    found = torch.where(found == count, torch.zeros_like(found), found)
    return torch.where(first == count, found.expand_as(first), first)


def group_points(features: Tensor, index: Tensor) -> Tensor:
    """Gather `features[b, index[b, m, k]]`.

    Args:
        features: `Tensor[B, N, C]`.
        index: `LongTensor[B, M, K]`.

    Returns:
        `Tensor[B, M, K, C]`.
    """
    batch, m, k = index.shape
    flat = index.reshape(batch, m * k, 1).expand(-1, -1, features.shape[-1])
    return features.gather(1, flat).reshape(batch, m, k, features.shape[-1])


def three_nn(unknown: Tensor, known: Tensor) -> tuple[Tensor, Tensor]:
    """The three nearest `known` points of each `unknown` point.

    Args:
        unknown: `Tensor[B, N, 3]`.
        known: `Tensor[B, M, 3]`, M >= 1 (with M < 3 the nearest points repeat).

    Returns:
        Distances `Tensor[B, N, 3]` and indices `LongTensor[B, N, 3]`, nearest first.
    """
    distance = torch.cdist(unknown, known)
    k = min(3, known.shape[1])
    dist, index = distance.topk(k, dim=-1, largest=False)
    if k < 3:
        dist = torch.cat([dist, dist[..., -1:].expand(-1, -1, 3 - k)], dim=-1)
        index = torch.cat([index, index[..., -1:].expand(-1, -1, 3 - k)], dim=-1)
    return dist, index


def three_interpolate(features: Tensor, index: Tensor, dist: Tensor, eps: float = 1e-8) -> Tensor:
    """Inverse-distance weighted mean of three known points' features.

    Args:
        features: `Tensor[B, M, C]` of the known points.
        index: `LongTensor[B, N, 3]` from `three_nn`.
        dist: `Tensor[B, N, 3]` from `three_nn`.
        eps: keeps a zero distance finite (the point itself dominates).

    Returns:
        `Tensor[B, N, C]`.
    """
    weight = 1.0 / (dist + eps)
    weight = weight / weight.sum(dim=-1, keepdim=True)
    return (group_points(features, index) * weight[..., None]).sum(dim=2)


def shared_mlp(cin: int, channels: Sequence[int]) -> nn.Sequential:
    """A per-point MLP over the last axis: ``Linear`` (no bias), ``LayerNorm``, ``ReLU`` per width.

    LayerNorm, not BatchNorm: it does not depend on how many points a batch holds (even 0 or 1).

    Args:
        cin: input channels.
        channels: output channels of each layer.

    Returns:
        The MLP, ``[..., cin] -> [..., channels[-1]]``.
    """
    layers: list[nn.Module] = []
    for cout in channels:
        # Channels last: Linear over the last axis; LayerNorm works for any number of points.
        layers += [nn.Linear(cin, cout, bias=False), nn.LayerNorm(cout), nn.ReLU(inplace=True)]
        cin = cout
    return nn.Sequential(*layers)


class SetAbstraction(nn.Module):
    """Sample centroids, group their neighbours, a shared MLP and a max over each group.

    Args:
        npoint: centroids drawn by farthest point sampling.
        radius: ball-query radius.
        nsample: neighbours per centroid.
        in_channels: feature channels of the input points (0: xyz only).
        channels: widths of the shared MLP (input: relative xyz + features).
    """

    def __init__(
        self, npoint: int, radius: float, nsample: int, in_channels: int, channels: Sequence[int]
    ) -> None:
        super().__init__()
        if not channels:
            raise FormatError("SetAbstraction: channels must name at least one layer")
        self.npoint, self.radius, self.nsample = int(npoint), float(radius), int(nsample)
        self.mlp = shared_mlp(in_channels + 3, channels)
        self.out_channels = int(channels[-1])

    def forward(self, xyz: Tensor, features: Tensor | None) -> tuple[Tensor, Tensor]:
        """`[B, N, 3], [B, N, C] -> [B, npoint, 3], [B, npoint, out_channels]`."""
        centres = group_points(xyz, farthest_point_sample(xyz, self.npoint)[..., None])[:, :, 0]  # [B, M, 3]
        index = ball_query(self.radius, self.nsample, xyz, centres)  # [B, M, K]
        grouped = group_points(xyz, index) - centres[:, :, None, :]  # [B, M, K, 3], relative to the centre
        if features is not None:
            grouped = torch.cat([grouped, group_points(features, index)], dim=-1)
        return centres, self.mlp(grouped).amax(dim=2)


class FeaturePropagation(nn.Module):
    """Interpolate coarse features onto finer points (3-NN), concatenate their skip features, MLP.

    Args:
        in_channels: coarse feature channels + skip feature channels.
        channels: widths of the shared MLP.
    """

    def __init__(self, in_channels: int, channels: Sequence[int]) -> None:
        super().__init__()
        if not channels:
            raise FormatError("FeaturePropagation: channels must name at least one layer")
        self.mlp = shared_mlp(in_channels, channels)
        self.out_channels = int(channels[-1])

    def forward(self, fine_xyz: Tensor, coarse_xyz: Tensor, fine: Tensor | None, coarse: Tensor) -> Tensor:
        """`[B, N, 3], [B, M, 3], [B, N, C1] | None, [B, M, C2] -> [B, N, out_channels]`."""
        dist, index = three_nn(fine_xyz, coarse_xyz)
        features = three_interpolate(coarse, index, dist)
        if fine is not None:
            features = torch.cat([features, fine], dim=-1)
        return self.mlp(features)


class PointNet2(nn.Module):
    """PointNet++ single-scale-grouping segmentation backbone: one feature vector per point.

    `[Tensor[N_i, in_channels]] * B -> Tensor[sum N_i, out_channels]` (clouds in order). Clouds
    of one size run as one batch; otherwise each cloud runs on its own (a loop over clouds).
    The first three values of a point are x, y, z; the others (colour, intensity, ...) are its
    features.

    Args:
        in_channels: values per point, x, y, z first.
        npoints: centroids of each SA layer.
        radii: ball radius of each SA layer.
        nsamples: neighbours of each SA layer.
        sa_channels: shared-MLP widths of each SA layer.
        fp_channels: shared-MLP widths of each FP layer, deepest first (one per SA layer).
        xyz_features: also give every point its own x, y, z as features (MMDetection3D's S3DIS
            and ScanNet models add normalised coordinates the same way): grouping alone only
            sees positions relative to each centroid, so heights (floor vs ceiling) are lost.

    Attributes:
        out_channels: `fp_channels[-1][-1]`.

    Raises:
        FormatError: lists of different lengths, or fewer than 3 input channels.
    """

    def __init__(
        self,
        in_channels: int = 6,
        npoints: Sequence[int] = (1024, 256, 64, 16),
        radii: Sequence[float] = (0.1, 0.2, 0.4, 0.8),
        nsamples: Sequence[int] = (32, 32, 32, 32),
        sa_channels: Sequence[Sequence[int]] = (
            (32, 32, 64),
            (64, 64, 128),
            (128, 128, 256),
            (256, 256, 512),
        ),
        fp_channels: Sequence[Sequence[int]] = ((256, 256), (256, 256), (256, 128), (128, 128, 128)),
        xyz_features: bool = True,
    ) -> None:
        super().__init__()
        lengths = {len(npoints), len(radii), len(nsamples), len(sa_channels), len(fp_channels)}
        if len(lengths) != 1 or 0 in lengths:
            raise FormatError(
                "PointNet2: npoints, radii, nsamples, sa_channels and fp_channels need one entry per layer "
                f"(got {len(npoints)}, {len(radii)}, {len(nsamples)}, {len(sa_channels)}, {len(fp_channels)})"
            )
        if in_channels < 3:
            raise FormatError(f"PointNet2: in_channels must be at least 3 (x, y, z), got {in_channels}")
        self.in_channels = in_channels
        self.xyz_features = bool(xyz_features)
        widths = [in_channels if xyz_features else in_channels - 3]
        self.sa = nn.ModuleList()
        for npoint, radius, nsample, channels in zip(npoints, radii, nsamples, sa_channels, strict=True):
            self.sa.append(SetAbstraction(npoint, radius, nsample, widths[-1], channels))
            widths.append(int(channels[-1]))
        self.fp = nn.ModuleList()
        coarse = widths[-1]
        for level, channels in zip(range(len(sa_channels) - 1, -1, -1), fp_channels, strict=True):
            self.fp.append(FeaturePropagation(coarse + widths[level], channels))
            coarse = int(channels[-1])
        self.out_channels = coarse

    def forward_batch(self, points: Tensor) -> Tensor:
        """`Tensor[B, N, in_channels] -> Tensor[B, N, out_channels]`."""
        xyz = points[..., :3].contiguous()
        features = points if self.xyz_features else (points[..., 3:] if points.shape[-1] > 3 else None)
        levels: list[tuple[Tensor, Tensor | None]] = [(xyz, features)]
        for layer in self.sa:  # [N] -> [npoints[0]] -> [npoints[1]] -> ...
            levels.append(layer(*levels[-1]))
        coarse_xyz, coarse = levels.pop()
        assert coarse is not None
        for layer in self.fp:  # back up, one level per FP layer
            fine_xyz, fine = levels.pop()
            coarse = layer(fine_xyz, coarse_xyz, fine, coarse)
            coarse_xyz = fine_xyz
        return coarse

    def forward(self, points: Sequence[Tensor]) -> Tensor:
        """Per-point features of a batch of clouds.

        Args:
            points: one `Tensor[N_i, in_channels]` per cloud, N_i >= 1.

        Returns:
            `Tensor[sum N_i, out_channels]`, clouds in order.

        Raises:
            ShapeError: an empty batch or cloud, or a cloud that is not `[N, in_channels]`.
            FormatError: a cloud holding NaN or infinite values.
        """
        check_point_clouds(points, self.in_channels, "PointNet2")
        if any(len(cloud) == 0 for cloud in points):
            raise ShapeError("PointNet2: every cloud needs at least one point")
        if len({len(cloud) for cloud in points}) == 1:
            out = self.forward_batch(torch.stack([cloud.float() for cloud in points]))
            return out.reshape(-1, out.shape[-1])
        return torch.cat([self.forward_batch(cloud.float()[None])[0] for cloud in points])
