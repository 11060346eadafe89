"""The fully connected baseline: a multi-layer perceptron over flattened inputs.

Stage i is `Linear -> norm -> ReLU (-> Dropout)` with `hidden_channels[i]` units. The input
`Tensor[B, *]` is flattened (an image `Tensor[B, C, H, W]` becomes `Tensor[B, C*H*W]`), so
`in_features` must equal the product of the non-batch dimensions. Outputs are
`Tensor[B, hidden_channels[i]]` (no spatial extent; `out_strides` are 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from pc3d.errors import FormatError, ShapeError
from pc3d.nn.backbones.base import Backbone
from pc3d.nn.layers import build_norm, check_norm


class MLP(Backbone):
    """Multi-layer perceptron backbone.

    Args:
        in_features: number of input values per sample (e.g. `1 * 8 * 8` for 8x8 digits).
        hidden_channels: units of each hidden layer (one stage each).
        out_indices: stages to return (default: the last).
        frozen_stages: -1 trains all; k >= 0 freezes the first k layers.
        norm: `"none"`, `"bn"` (BatchNorm1d) or `"gn"`.
        norm_eval: keep all BatchNorm layers in eval mode while training.
        dropout: dropout probability after each hidden layer (0 disables).
    """

    def __init__(
        self,
        in_features: int,
        hidden_channels: Sequence[int] = (256, 128),
        out_indices: Sequence[int] = (-1,),
        frozen_stages: int = -1,
        norm: str = "none",
        norm_eval: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_norm(norm, ("bn", "gn", "none"))
        if isinstance(in_features, bool) or not isinstance(in_features, int) or in_features < 1:
            raise FormatError(f"in_features must be a positive int, got {in_features!r}")
        if len(hidden_channels) == 0 or any(int(h) < 1 for h in hidden_channels):
            raise FormatError(
                f"hidden_channels must be a non-empty list of positive ints, got {hidden_channels!r}"
            )
        if not 0.0 <= dropout < 1.0:
            raise FormatError(f"dropout must be in [0, 1), got {dropout!r}")
        self.in_features = in_features
        self.in_channels = in_features
        self.stem = nn.Flatten(1)
        stages: list[nn.Module] = []
        previous = in_features
        for width in hidden_channels:
            linear = nn.Linear(previous, int(width), bias=norm == "none")
            # He init keeps the activations' scale through the ReLU stack.
            nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
            if linear.bias is not None:
                nn.init.zeros_(linear.bias)
            layers: list[nn.Module] = [linear, build_norm(norm, int(width), 1), nn.ReLU(inplace=True)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            stages.append(nn.Sequential(*layers))
            previous = int(width)
        self.stages = nn.ModuleList(stages)
        widths = [int(h) for h in hidden_channels]
        self._finish(widths, [1] * len(widths), out_indices, frozen_stages, norm_eval, has_stem=False)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """`Tensor[B, *]` with `prod(*) == in_features` -> one `Tensor[B, hidden_channels[i]]` per out index."""
        if not isinstance(x, Tensor) or x.dim() < 2 or math.prod(x.shape[1:]) != self.in_features:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ShapeError(f"MLP expects (B, ...) with {self.in_features} values per sample, got {shape}")
        return self._run_stages(self.stem(x))
