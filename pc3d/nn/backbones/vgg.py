"""VGG-11/13/16/19 (Simonyan & Zisserman, 2015), with or without batch norm.

Five stages; stage i is `n_i` 3x3 convs (+ norm) + ReLU followed by a 2x2/2 max pool, so stage i
has stride `2**(i+1)`. Convs per stage: VGG-11 `(1, 1, 2, 2, 2)`, VGG-13 `(2, 2, 2, 2, 2)`,
VGG-16 `(2, 2, 3, 3, 3)`, VGG-19 `(2, 2, 4, 4, 4)`; widths `(64, 128, 256, 512, 512)`.
The fully connected classifier is not part of the backbone (a head adds pooling + linear).
`Tensor[B, 3, 224, 224]` -> stage 4 `Tensor[B, 512, 7, 7]`.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from pc3d.errors import FormatError
from pc3d.nn.backbones.base import Backbone
from pc3d.nn.layers import ConvNormAct, check_norm, init_weights

_CONVS_PER_STAGE: dict[int, tuple[int, ...]] = {
    11: (1, 1, 2, 2, 2),
    13: (2, 2, 2, 2, 2),
    16: (2, 2, 3, 3, 3),
    19: (2, 2, 4, 4, 4),
}


class VGG(Backbone):
    """VGG backbone; `norm="none"` is the original VGG, `norm="bn"` the BN variant.

    Args:
        depth: 11, 13, 16 or 19.
        in_channels: input channels.
        channels: width of each of the five stages.
        out_indices: stages to return, 0..4.
        frozen_stages: -1 trains all; k >= 0 freezes the first k stages (VGG has no stem).
        norm: `"none"`, `"bn"`, `"frozen_bn"` or `"gn"`.
        norm_eval: keep all BatchNorm layers in eval mode while training.
        with_last_pool: end stage 4 with its max pool (stride 32) or not (stride 16).
        gn_groups: GroupNorm groups (the gcd with the channels is used).
    """

    def __init__(
        self,
        depth: int = 16,
        in_channels: int = 3,
        channels: Sequence[int] = (64, 128, 256, 512, 512),
        out_indices: Sequence[int] = (4,),
        frozen_stages: int = -1,
        norm: str = "none",
        norm_eval: bool = False,
        with_last_pool: bool = True,
        gn_groups: int = 32,
    ) -> None:
        super().__init__()
        if depth not in _CONVS_PER_STAGE:
            raise FormatError(f"VGG depth must be one of {sorted(_CONVS_PER_STAGE)}, got {depth!r}")
        if len(channels) != 5:
            raise FormatError(f"VGG channels must give 5 stage widths, got {channels!r}")
        check_norm(norm)
        self.depth = depth
        self.in_channels = in_channels
        self.stem = nn.Identity()
        stages: list[nn.Module] = []
        strides: list[int] = []
        previous, stride = in_channels, 1
        for i, (count, width) in enumerate(zip(_CONVS_PER_STAGE[depth], channels)):
            layers: list[nn.Module] = []
            for _ in range(count):
                layers.append(ConvNormAct(previous, width, 3, norm=norm, gn_groups=gn_groups))
                previous = width
            if i < 4 or with_last_pool:
                layers.append(nn.MaxPool2d(2, stride=2))
                stride *= 2
            stages.append(nn.Sequential(*layers))
            strides.append(stride)
        self.stages = nn.ModuleList(stages)
        init_weights(self)
        self._finish(list(channels), strides, out_indices, frozen_stages, norm_eval, has_stem=False)
