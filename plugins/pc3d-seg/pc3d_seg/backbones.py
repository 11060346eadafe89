"""Point-cloud encoders producing one feature vector per point."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from pc3d.nn.pointnet2 import shared_mlp
from pc3d.nn.sparse_unet import check_point_clouds


class PointNetEncoder(nn.Module):
    """PointNet's segmentation encoder (without the input/feature transform nets).

    A shared per-point MLP gives local features; a further MLP and a max over each cloud give one
    global feature per cloud, appended to each of its points' local features. Clouds of any size
    are batched without padding (concatenated, max by ``scatter_reduce``).

    ``[Tensor[N_i, in_channels]] * B -> Tensor[sum N_i, channels[-1] + global_channels]``.

    Args:
        in_channels: values per point (x, y, z, then extra features).
        channels: widths of the per-point MLP.
        global_channels: width of the global feature.

    Raises:
        ValueError: no per-point layer.
    """

    def __init__(
        self, in_channels: int = 4, channels: Sequence[int] = (32, 64), global_channels: int = 128
    ) -> None:
        super().__init__()
        if not channels:
            raise ValueError("channels must name at least one layer")
        self.in_channels = in_channels
        self.out_channels = channels[-1] + global_channels
        self.local = shared_mlp(in_channels, channels)
        self.global_mlp = shared_mlp(channels[-1], [global_channels])

    def forward(self, points: Sequence[Tensor]) -> Tensor:
        """Per-point features of a batch of clouds.

        Args:
            points: one ``Tensor[N_i, in_channels]`` per cloud (N_i may be 0).

        Returns:
            ``Tensor[sum N_i, out_channels]``, clouds in order.

        Raises:
            ShapeError: an empty batch or a cloud that is not ``[N, in_channels]``.
            FormatError: a cloud holding NaN or infinite values.
        """
        check_point_clouds(points, self.in_channels, "PointNetEncoder")
        flat = torch.cat(list(points)).float()
        counts = torch.tensor([len(c) for c in points], device=flat.device)
        cloud_of = torch.repeat_interleave(torch.arange(len(points), device=flat.device), counts)
        local = self.local(flat)  # [P, channels[-1]]
        per_point = self.global_mlp(local)  # [P, global_channels]
        gather = cloud_of[:, None].expand(-1, per_point.shape[1])
        pooled = torch.zeros(len(points), per_point.shape[1], device=flat.device, dtype=per_point.dtype)
        pooled = pooled.scatter_reduce(0, gather, per_point, reduce="amax", include_self=False)
        return torch.cat([local, pooled[cloud_of]], dim=1)
