"""GoogLeNet / Inception v1 (Szegedy et al., 2015) as a multi-scale backbone.

Stem: 7x7/2 conv (64), 3x3/2 max pool, 1x1 conv (64), 3x3 conv (192) -> stride 4. Then three
stages, each opened by a 3x3/2 max pool: stage 0 = inception 3a, 3b (480 channels, stride 8);
stage 1 = 4a..4e (832, stride 16); stage 2 = 5a, 5b (1024, stride 32). Each inception module
concatenates a 1x1 branch, a 1x1 -> 3x3 branch, a 1x1 -> 5x5 branch (a real 5x5, as in the
paper) and a 3x3/1 max pool -> 1x1 branch. Pools use padding 1, so every stride-2 step maps a
side `n` to `ceil(n / 2)`: `[B, 3, 224, 224]` -> `[B, 480, 28, 28]`, `[B, 832, 14, 14]`,
`[B, 1024, 7, 7]`. Local response normalisation is left out; `norm="bn"` (default) follows the
common BN re-implementation, `norm="none"` the original convs-with-bias.

Auxiliary classifiers (after 4a and 4d, as in the paper) exist when `aux_classes > 0`; they are
only computed by `forward_with_aux`, so `forward` stays a plain feature extractor. Each is: 4x4
adaptive average pool (the paper's 5x5/3 pool gives 4x4 on 224 inputs), 1x1 conv (128), FC
1024, ReLU, dropout 0.7, FC `aux_classes`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from pc3d.errors import FormatError
from pc3d.nn.backbones.base import Backbone, check_image_batch
from pc3d.nn.layers import ConvNormAct, check_norm, init_weights

# name: (in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj) -- Table 1 of the paper.
_INCEPTION: dict[str, tuple[int, int, int, int, int, int, int]] = {
    "3a": (192, 64, 96, 128, 16, 32, 32),
    "3b": (256, 128, 128, 192, 32, 96, 64),
    "4a": (480, 192, 96, 208, 16, 48, 64),
    "4b": (512, 160, 112, 224, 24, 64, 64),
    "4c": (512, 128, 128, 256, 24, 64, 64),
    "4d": (512, 112, 144, 288, 32, 64, 64),
    "4e": (528, 256, 160, 320, 32, 128, 128),
    "5a": (832, 256, 160, 320, 32, 128, 128),
    "5b": (832, 384, 192, 384, 48, 128, 128),
}
_STAGES: tuple[tuple[str, ...], ...] = (("3a", "3b"), ("4a", "4b", "4c", "4d", "4e"), ("5a", "5b"))
_AUX_AFTER = ("4a", "4d")


class Inception(nn.Module):
    """One inception module: `Tensor[B, in, H, W] -> Tensor[B, c1 + c3 + c5 + pool_proj, H, W]`."""

    def __init__(
        self,
        in_channels: int,
        c1: int,
        c3r: int,
        c3: int,
        c5r: int,
        c5: int,
        pool_proj: int,
        norm: str,
        gn_groups: int,
    ) -> None:
        super().__init__()
        self.branch1 = ConvNormAct(in_channels, c1, 1, norm=norm, gn_groups=gn_groups)
        self.branch3 = nn.Sequential(
            ConvNormAct(in_channels, c3r, 1, norm=norm, gn_groups=gn_groups),
            ConvNormAct(c3r, c3, 3, norm=norm, gn_groups=gn_groups),
        )
        self.branch5 = nn.Sequential(
            ConvNormAct(in_channels, c5r, 1, norm=norm, gn_groups=gn_groups),
            ConvNormAct(c5r, c5, 5, norm=norm, gn_groups=gn_groups),
        )
        self.branch_pool = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1),
            ConvNormAct(in_channels, pool_proj, 1, norm=norm, gn_groups=gn_groups),
        )
        self.out_channels = c1 + c3 + c5 + pool_proj

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)], dim=1)


class InceptionAux(nn.Module):
    """Auxiliary classifier: `Tensor[B, in, H, W] -> Tensor[B, num_classes]` logits."""

    def __init__(
        self, in_channels: int, num_classes: int, norm: str, gn_groups: int, dropout: float = 0.7
    ) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.conv = ConvNormAct(in_channels, 128, 1, norm=norm, gn_groups=gn_groups)
        self.fc = nn.Sequential(
            nn.Flatten(1),
            nn.Linear(128 * 16, 1024),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(1024, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.conv(self.pool(x)))


class GoogLeNet(Backbone):
    """GoogLeNet (Inception v1) backbone (see the module docstring for the layout).

    Args:
        in_channels: input channels.
        out_indices: stages to return, 0..2 (strides 8, 16, 32).
        frozen_stages: -1 trains all; k >= 0 freezes the stem and the first k stages.
        norm: `"bn"` (default), `"frozen_bn"`, `"gn"` or `"none"`.
        norm_eval: keep all BatchNorm layers in eval mode while training.
        aux_classes: > 0 adds the two auxiliary classifiers with that many classes.
        gn_groups: GroupNorm groups (the gcd with the channels is used).
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_indices: Sequence[int] = (0, 1, 2),
        frozen_stages: int = -1,
        norm: str = "bn",
        norm_eval: bool = False,
        aux_classes: int = 0,
        gn_groups: int = 32,
    ) -> None:
        super().__init__()
        check_norm(norm)
        if isinstance(aux_classes, bool) or not isinstance(aux_classes, int) or aux_classes < 0:
            raise FormatError(
                f"aux_classes must be a non-negative int (0: no auxiliary heads), got {aux_classes!r}"
            )
        self.in_channels = in_channels
        self.stem = nn.Sequential(
            ConvNormAct(in_channels, 64, 7, stride=2, norm=norm, gn_groups=gn_groups),
            nn.MaxPool2d(3, stride=2, padding=1),
            ConvNormAct(64, 64, 1, norm=norm, gn_groups=gn_groups),
            ConvNormAct(64, 192, 3, norm=norm, gn_groups=gn_groups),
        )
        stages: list[nn.Module] = []
        for names in _STAGES:
            modules: dict[str, nn.Module] = {"pool": nn.MaxPool2d(3, stride=2, padding=1)}
            for name in names:
                modules[f"inception{name}"] = Inception(*_INCEPTION[name], norm=norm, gn_groups=gn_groups)
            stages.append(nn.Sequential(OrderedDict(modules)))
        self.stages = nn.ModuleList(stages)
        self.aux_classes = aux_classes
        self.aux_heads = nn.ModuleDict(
            {
                f"inception{name}": InceptionAux(
                    _INCEPTION[name][1] + _INCEPTION[name][3] + _INCEPTION[name][5] + _INCEPTION[name][6],
                    aux_classes,
                    norm,
                    gn_groups,
                )
                for name in _AUX_AFTER
            }
            if aux_classes > 0
            else {}
        )
        init_weights(self)
        self._finish((480, 832, 1024), (8, 16, 32), out_indices, frozen_stages, norm_eval, has_stem=True)

    def forward_with_aux(self, x: Tensor) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
        """Features as `forward`, plus the auxiliary logits `(Tensor[B, aux_classes],) * 2`.

        All three stages run (the heads sit in stage 1), whatever `out_indices` asks for. The aux
        tuple is empty when `aux_classes == 0`.
        """
        check_image_batch(x, self.in_channels, type(self).__name__)
        x = self.stem(x)
        outs: list[Tensor] = []
        aux: list[Tensor] = []
        for index, stage in enumerate(self.stages):
            for name, module in stage.named_children():
                x = module(x)
                if name in self.aux_heads:
                    aux.append(self.aux_heads[name](x))
            if index in self.out_indices:
                outs.append(x)
        return tuple(outs), tuple(aux)
