"""Image backbones for 2D detection."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn


class StridedConvNet(nn.Module):
    """One strided 3x3 conv-BN-ReLU per stage: a single feature map at ``out_stride``.

    ``Tensor[B, in_channels, H, W] -> Tensor[B, channels[-1], H / out_stride, W / out_stride]``.
    A small stand-in until pc3d's shared CNN core (ResNet + FPN, later issue) lands.

    :param in_channels: image channels.
    :param channels: output channels of each stage.
    :param strides: stride of each stage.
    """

    def __init__(
        self,
        in_channels: int = 3,
        channels: Sequence[int] = (16, 32, 64),
        strides: Sequence[int] = (2, 2, 2),
    ) -> None:
        super().__init__()
        if len(channels) != len(strides) or not channels:
            raise ValueError(
                f"channels ({len(channels)} stages) and strides ({len(strides)}) must have the "
                "same non-zero length"
            )
        self.in_channels = in_channels
        self.out_channels = channels[-1]
        self.out_stride = math.prod(strides)
        layers: list[nn.Module] = []
        previous = in_channels
        for width, stride in zip(channels, strides):
            layers += [
                nn.Conv2d(previous, width, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            previous = width
        self.layers = nn.Sequential(*layers)

    def forward(self, images: Tensor) -> Tensor:
        return self.layers(images)
