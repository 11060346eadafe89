"""LeNet-5 (LeCun et al., 1998) as a backbone.

Stages: 0 = C1 (5x5 conv, 6) + S2 (2x2/2 pool); 1 = C3 (5x5 conv, 16) + S4 (2x2/2 pool);
2 = C5 (5x5 conv, 120); 3 = F6 (84 units, a 1x1 conv so it also runs on larger maps). The output
layer belongs to a classification head. With `conv1_padding=2` (the default) a 28x28 input
(MNIST) gives the original 32x32 geometry: `[B, 1, 28, 28]` -> stage 0 `[B, 6, 14, 14]`,
1 `[B, 16, 5, 5]`, 2 `[B, 120, 1, 1]`, 3 `[B, 84, 1, 1]`. Inputs must be at least
`32 - 2 * conv1_padding` pixels a side (C5 needs a 5x5 map).

The original used scaled tanh units and average-pooling subsampling; `activation="tanh",
pool="avg"` is close to it, the defaults (`"relu"`, `"max"`) train faster.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch import Tensor, nn

from pc3d.errors import FormatError, ShapeError
from pc3d.nn.backbones.base import Backbone
from pc3d.nn.layers import ConvNormAct, check_norm, init_weights


class LeNet5(Backbone):
    """LeNet-5 feature extractor.

    Args:
        in_channels: input channels (1 for grey digits).
        out_indices: stages to return, 0..3 (default: F6, 84 features).
        frozen_stages: -1 trains all; k >= 0 freezes the first k stages.
        norm: `"none"` (the original), `"bn"`, `"frozen_bn"` or `"gn"`.
        norm_eval: keep all BatchNorm layers in eval mode while training.
        activation: `"relu"` or `"tanh"`.
        pool: `"max"` or `"avg"` subsampling.
        conv1_padding: zero padding of C1 (2 turns 28x28 into the original 32x32 geometry).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_indices: Sequence[int] = (3,),
        frozen_stages: int = -1,
        norm: str = "none",
        norm_eval: bool = False,
        activation: Literal["relu", "tanh"] = "relu",
        pool: Literal["max", "avg"] = "max",
        conv1_padding: int = 2,
    ) -> None:
        super().__init__()
        check_norm(norm)
        if pool not in ("max", "avg"):
            raise FormatError(f"pool must be 'max' or 'avg', got {pool!r}")
        if isinstance(conv1_padding, bool) or not isinstance(conv1_padding, int) or conv1_padding < 0:
            raise FormatError(f"conv1_padding must be a non-negative int, got {conv1_padding!r}")
        self.in_channels = in_channels
        self.conv1_padding = conv1_padding
        self.min_input_size = 32 - 2 * conv1_padding
        self.stem = nn.Identity()

        def subsample() -> nn.Module:
            return nn.MaxPool2d(2, 2) if pool == "max" else nn.AvgPool2d(2, 2)

        def block(cin: int, cout: int, kernel: int, padding: int) -> ConvNormAct:
            return ConvNormAct(
                cin, cout, kernel, padding=padding, norm=norm, activation=activation, gn_groups=32
            )

        self.stages = nn.ModuleList(
            [
                nn.Sequential(block(in_channels, 6, 5, conv1_padding), subsample()),
                nn.Sequential(block(6, 16, 5, 0), subsample()),
                nn.Sequential(block(16, 120, 5, 0)),
                nn.Sequential(block(120, 84, 1, 0)),
            ]
        )
        init_weights(self)
        self._finish((6, 16, 120, 84), (2, 4, 4, 4), out_indices, frozen_stages, norm_eval, has_stem=False)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """`Tensor[B, in_channels, H, W]` (H, W >= `min_input_size`) -> the requested stages."""
        if (
            x.dim() == 4
            and (x.shape[-1] < self.min_input_size or x.shape[-2] < self.min_input_size)
            and self.out_indices[-1] >= 2
        ):
            raise ShapeError(
                f"LeNet5 with conv1_padding={self.conv1_padding} needs inputs of at least "
                f"{self.min_input_size}x{self.min_input_size} pixels, got {tuple(x.shape[-2:])}; resize or pad the images"
            )
        return super().forward(x)
