"""AlexNet (Krizhevsky et al., 2012) in its single-tower form (the widths torchvision uses).

Five stages, one conv each: 11x11/4 (64), 5x5 (192), 3x3 (384), 3x3 (256), 3x3 (256); stages 0,
1 and 4 end with a 3x3/2 max pool. Local response normalisation is left out (it was dropped by
later work as having no benefit); `norm` adds a modern norm layer instead. Shapes on
`Tensor[B, 3, 224, 224]`: stage 0 `[B, 64, 27, 27]`, 1 `[B, 192, 13, 13]`, 2 and 3
`[B, 384|256, 13, 13]`, 4 `[B, 256, 6, 6]`. The un-padded pools make the strides nominal
(8, 16, 16, 16, 32): the maps are slightly smaller than `H / stride`.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from pc3d.errors import FormatError
from pc3d.nn.backbones.base import Backbone
from pc3d.nn.layers import ConvNormAct, check_norm, init_weights


class AlexNet(Backbone):
    """AlexNet feature extractor.

    Args:
        in_channels: input channels.
        channels: widths of the five convs.
        out_indices: stages to return, 0..4.
        frozen_stages: -1 trains all; k >= 0 freezes the first k stages.
        norm: `"none"` (the original), `"bn"`, `"frozen_bn"` or `"gn"`.
        norm_eval: keep all BatchNorm layers in eval mode while training.
        gn_groups: GroupNorm groups (the gcd with the channels is used).
    """

    def __init__(
        self,
        in_channels: int = 3,
        channels: Sequence[int] = (64, 192, 384, 256, 256),
        out_indices: Sequence[int] = (4,),
        frozen_stages: int = -1,
        norm: str = "none",
        norm_eval: bool = False,
        gn_groups: int = 32,
    ) -> None:
        super().__init__()
        if len(channels) != 5:
            raise FormatError(f"AlexNet channels must give 5 conv widths, got {channels!r}")
        check_norm(norm)
        self.in_channels = in_channels
        self.stem = nn.Identity()
        c = list(channels)
        self.stages = nn.ModuleList(
            [
                nn.Sequential(
                    ConvNormAct(in_channels, c[0], 11, stride=4, padding=2, norm=norm, gn_groups=gn_groups),
                    nn.MaxPool2d(3, stride=2),
                ),
                nn.Sequential(
                    ConvNormAct(c[0], c[1], 5, norm=norm, gn_groups=gn_groups), nn.MaxPool2d(3, stride=2)
                ),
                nn.Sequential(ConvNormAct(c[1], c[2], 3, norm=norm, gn_groups=gn_groups)),
                nn.Sequential(ConvNormAct(c[2], c[3], 3, norm=norm, gn_groups=gn_groups)),
                nn.Sequential(
                    ConvNormAct(c[3], c[4], 3, norm=norm, gn_groups=gn_groups), nn.MaxPool2d(3, stride=2)
                ),
            ]
        )
        init_weights(self)
        self._finish(c, (8, 16, 16, 16, 32), out_indices, frozen_stages, norm_eval, has_stem=False)
