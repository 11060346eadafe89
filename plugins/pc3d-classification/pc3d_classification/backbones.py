"""Image backbones for classification."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from pc3d.nn.layers import ConvNormAct


class ConvNet(nn.Module):
    """A small VGG-style network: per stage, ``layers_per_stage`` 3x3 conv-BN-ReLU layers, then
    a 2x2 max-pool. ``Tensor[B, in_channels, H, W] -> Tensor[B, channels[-1], H / 2^S, W / 2^S]``
    for ``S = len(channels)`` stages.

    A small, real, trainable backbone kept for the CIFAR-shaped example config; the ``pc3d.nn``
    backbones (LeNet5, ResNet, ...), registered by pc3d's core, are the usual choice.

    Args:
        in_channels: image channels (3 for RGB).
        channels: output channels of each stage.
        layers_per_stage: convs per stage, at least 1.

    Raises:
        ValueError: no stage, or ``layers_per_stage`` below 1.
    """

    def __init__(
        self, in_channels: int = 3, channels: Sequence[int] = (16, 32, 64), layers_per_stage: int = 1
    ) -> None:
        super().__init__()
        if not channels or layers_per_stage < 1:
            raise ValueError("channels must name at least one stage and layers_per_stage be >= 1")
        self.in_channels = in_channels
        self.out_channels = channels[-1]
        layers: list[nn.Module] = []
        previous = in_channels
        for width in channels:
            for _ in range(layers_per_stage):
                layers += ConvNormAct(previous, width, 3)  # unpacked: the layer names stay flat
                previous = width
            layers.append(nn.MaxPool2d(2))
        self.layers = nn.Sequential(*layers)

    def forward(self, images: Tensor) -> Tensor:
        """``Tensor[B, in_channels, H, W] -> Tensor[B, out_channels, H', W']``."""
        return self.layers(images)
