"""SECOND's FPN neck: every backbone level brought to one stride, then concatenated.

Level `i` goes through a `ConvTranspose2d` with kernel = stride = `upsample_strides[i]` when that
is > 1 (or == 1 unless `use_conv_for_no_stride`), else through a `Conv2d` with kernel = stride =
`round(1 / upsample_strides[i])` (a stride of 0.5 halves the map); each is followed by norm
(batch norm: eps 1e-3, momentum 0.01) and ReLU, without conv bias. Module names follow
MMDetection3D's `SECONDFPN` (`deblocks.<level>.<0: (de)conv, 1: norm>`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from pc3d.errors import FormatError, ShapeError
from pc3d.nn.voxel.common import build_norm_3d, init_bev_weights


class SECONDFPN(nn.Module):
    """`len(in_channels)` maps in, one map `Tensor[B, sum(out_channels), H, W]` out.

    PointPillars on KITTI: `in_channels=(64, 128, 256), out_channels=(128, 128, 128),
    upsample_strides=(1, 2, 4)`: `[B, 64, 248, 216]`, `[B, 128, 124, 108]`, `[B, 256, 62, 54]` ->
    `[B, 384, 248, 216]`. SECOND: `(128, 256)`, `(256, 256)`, `(1, 2)`: -> `[B, 512, 200, 176]`.

    Args:
        in_channels: channels of each input level.
        out_channels: channels each level contributes to the output.
        upsample_strides: upsampling factor of each level (< 1 downsamples).
        use_conv_for_no_stride: a stride of 1 uses a 1x1 `Conv2d` instead of a `ConvTranspose2d`.
        norm: `"bn"`, `"gn"` or `"none"` (the (de)convs then carry a bias).

    Attributes:
        out_channels: `int`, channels of the output (the sum).
    """

    def __init__(
        self,
        in_channels: Sequence[int] = (128, 128, 256),
        out_channels: Sequence[int] = (256, 256, 256),
        upsample_strides: Sequence[float] = (1, 2, 4),
        use_conv_for_no_stride: bool = False,
        norm: str = "bn",
    ) -> None:
        super().__init__()
        if not len(in_channels) == len(out_channels) == len(upsample_strides) or len(in_channels) == 0:
            raise FormatError(
                f"in_channels {list(in_channels)}, out_channels {list(out_channels)} and upsample_strides "
                f"{list(upsample_strides)} must have the same non-zero length"
            )
        bias = norm == "none"
        deblocks = []
        for c_in, c_out, stride in zip(in_channels, out_channels, upsample_strides, strict=True):
            if not stride > 0:
                raise FormatError(f"upsample_strides must be > 0, got {list(upsample_strides)}")
            layer: nn.Module
            if stride > 1 or (stride == 1 and not use_conv_for_no_stride):
                k = int(round(stride))
                layer = nn.ConvTranspose2d(c_in, c_out, k, stride=k, bias=bias)
            else:
                k = int(round(1 / stride))
                layer = nn.Conv2d(c_in, c_out, k, stride=k, bias=bias)
            deblocks.append(nn.Sequential(layer, build_norm_3d(norm, c_out, dim=2), nn.ReLU(inplace=True)))
        self.deblocks = nn.ModuleList(deblocks)
        self.in_channels = tuple(int(c) for c in in_channels)
        self.out_channels = int(sum(out_channels))

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        """Levels `Tensor[B, in_channels[i], H_i, W_i]` -> `Tensor[B, out_channels, H, W]`.

        Raises:
            ShapeError: wrong number of levels or channels, or levels that do not reach one size.
        """
        if len(feats) != len(self.deblocks):
            raise ShapeError(f"SECONDFPN has {len(self.deblocks)} levels, got {len(feats)} feature maps")
        ups = []
        for i, (x, deblock) in enumerate(zip(feats, self.deblocks, strict=True)):
            if x.dim() != 4 or x.shape[1] != self.in_channels[i]:
                raise ShapeError(
                    f"SECONDFPN level {i} must be (B, {self.in_channels[i]}, H, W), got {tuple(x.shape)}"
                )
            ups.append(deblock(x))
        sizes = [tuple(u.shape[-2:]) for u in ups]
        if len(set(sizes)) > 1:
            raise ShapeError(
                f"SECONDFPN levels reach different sizes {sizes}; the BEV size must be divisible by the strides"
            )
        return ups[0] if len(ups) == 1 else torch.cat(ups, dim=1)

    def init_weights(self) -> None:
        """He-normal (de)convs (fan-out, ReLU gain), unit/zero norms: MMDetection3D's initialisation."""
        init_bev_weights(self)
