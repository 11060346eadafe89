"""BEV backbones: 2D conv stacks over bird's-eye-view maps."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from pc3d.nn.layers import ConvNormAct


class BEVBackbone(nn.Module):
    """A plain 2D conv stack over a BEV map, one stage per entry of ``channels``.

    Each stage is a 3x3 conv with the stage's stride, then ``layers_per_stage - 1`` more 3x3
    convs, each conv followed by BatchNorm and ReLU.
    ``Tensor[B, in_channels, H, W] -> Tensor[B, channels[-1], H / out_stride, W / out_stride]``.

    Args:
        in_channels: channels of the input map (the voxel encoder's ``out_channels``).
        channels: output channels of each stage.
        strides: stride of each stage's first conv (``out_stride`` is their product).
        layers_per_stage: convs per stage, at least 1.

    Raises:
        ValueError: ``channels`` and ``strides`` of different or zero lengths, or a stride or
            ``layers_per_stage`` below 1.
    """

    def __init__(
        self,
        in_channels: int,
        channels: Sequence[int] = (64, 128),
        strides: Sequence[int] = (2, 2),
        layers_per_stage: int = 2,
    ) -> None:
        super().__init__()
        if len(channels) != len(strides) or not channels:
            raise ValueError(
                f"channels ({len(channels)} stages) and strides ({len(strides)}) must have the "
                "same non-zero length"
            )
        if layers_per_stage < 1 or any(s < 1 for s in strides):
            raise ValueError("layers_per_stage and every stride must be at least 1")
        self.in_channels = in_channels
        self.out_channels = channels[-1]
        self.out_stride = math.prod(strides)
        stages: list[nn.Module] = []
        previous = in_channels
        for width, stride in zip(channels, strides):
            layers: list[nn.Module] = []
            for index in range(layers_per_stage):
                # Unpacked: the layer names stay flat (stages.<i>.<j>).
                layers += ConvNormAct(previous, width, 3, stride=stride if index == 0 else 1)
                previous = width
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)

    def forward(self, bev: Tensor) -> Tensor:
        """``Tensor[B, in_channels, H, W] -> Tensor[B, out_channels, H / s, W / s]``."""
        return self.stages(bev)
