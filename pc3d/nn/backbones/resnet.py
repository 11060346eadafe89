"""ResNet-18/34/50/101/152 (He et al., 2016) as a multi-scale backbone.

Stem (`"conv7"`: 7x7/2 conv + 3x3/2 max pool, the ImageNet stem, stride 4; `"conv3"`: one 3x3/1
conv, stride 1, for small images and BEV pseudo-images; `"none"`: the stages see the input
directly), then four stages of residual blocks. Bottleneck blocks put the stride on the 3x3 conv
(the "ResNet v1.5" layout of torchvision and MMDetection's `style="pytorch"`). Shapes for the
ImageNet stem and default strides `(1, 2, 2, 2)` on a `Tensor[B, 3, 224, 224]`:

    stem    [B, 64, 56, 56]
    stage 0 [B, 64 * e, 56, 56]     (e = 1 for BasicBlock, 4 for Bottleneck)
    stage 1 [B, 128 * e, 28, 28]
    stage 2 [B, 256 * e, 14, 14]
    stage 3 [B, 512 * e, 7, 7]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch import Tensor, nn

from pc3d.errors import FormatError
from pc3d.nn.backbones.base import Backbone
from pc3d.nn.layers import build_norm, check_norm, init_weights


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity (or 1x1 projection) shortcut; `expansion = 1`.

    `Tensor[B, in_channels, H, W] -> Tensor[B, planes, H / stride, W / stride]`.
    """

    expansion = 1

    def __init__(
        self, in_channels: int, planes: int, stride: int = 1, norm: str = "bn", gn_groups: int = 32
    ) -> None:
        super().__init__()
        bias = norm == "none"
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride=stride, padding=1, bias=bias)
        self.norm1 = build_norm(norm, planes, 2, gn_groups)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=bias)
        self.norm2 = build_norm(norm, planes, 2, gn_groups)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_channels, planes * self.expansion, stride, norm, gn_groups)

    def last_norm(self) -> nn.Module:
        return self.norm2

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand, with a shortcut; `expansion = 4`.

    `Tensor[B, in_channels, H, W] -> Tensor[B, 4 * planes, H / stride, W / stride]`.
    """

    expansion = 4

    def __init__(
        self, in_channels: int, planes: int, stride: int = 1, norm: str = "bn", gn_groups: int = 32
    ) -> None:
        super().__init__()
        bias = norm == "none"
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=bias)
        self.norm1 = build_norm(norm, planes, 2, gn_groups)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=bias)
        self.norm2 = build_norm(norm, planes, 2, gn_groups)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=bias)
        self.norm3 = build_norm(norm, planes * self.expansion, 2, gn_groups)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_channels, planes * self.expansion, stride, norm, gn_groups)

    def last_norm(self) -> nn.Module:
        return self.norm3

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.relu(self.norm2(self.conv2(out)))
        out = self.norm3(self.conv3(out))
        return self.relu(out + identity)


def _shortcut(
    in_channels: int, out_channels: int, stride: int, norm: str, gn_groups: int
) -> nn.Module | None:
    """1x1 projection when the block changes the shape; None (identity) otherwise."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=norm == "none"),
        build_norm(norm, out_channels, 2, gn_groups),
    )


_ARCH: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, ...]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


class ResNet(Backbone):
    """ResNet backbone returning the stages in `out_indices` (see the module docstring).

    Args:
        depth: 18, 34 (BasicBlock), 50, 101 or 152 (Bottleneck).
        in_channels: input channels (3 for RGB, e.g. 64 for a BEV pseudo-image).
        base_channels: width of the first stage (`64 * 2**i` for stage i by default).
        stem: `"conv7"` (ImageNet, stride 4), `"conv3"` (3x3/1 conv) or `"none"`.
        strides: stride of the first block of each of the four stages.
        out_indices: stages to return, 0..3.
        frozen_stages: -1 trains all; k >= 0 freezes the stem and the first k stages.
        norm: `"bn"`, `"frozen_bn"`, `"gn"` or `"none"`.
        norm_eval: keep all BatchNorm layers in eval mode while training.
        gn_groups: GroupNorm groups (the gcd with the channels is used).
        zero_init_residual: start each block's last norm at zero, so each residual block is
            initially the identity (Goyal et al. 2017; helps training from scratch, which is
            the only way pc3d trains: no pretrained weights). Not applied to `"frozen_bn"`.
    """

    def __init__(
        self,
        depth: int = 50,
        in_channels: int = 3,
        base_channels: int = 64,
        stem: Literal["conv7", "conv3", "none"] = "conv7",
        strides: Sequence[int] = (1, 2, 2, 2),
        out_indices: Sequence[int] = (0, 1, 2, 3),
        frozen_stages: int = -1,
        norm: str = "bn",
        norm_eval: bool = False,
        gn_groups: int = 32,
        zero_init_residual: bool = True,
    ) -> None:
        super().__init__()
        _check_arguments(depth, norm, strides, stem)
        block, counts = _ARCH[depth]
        self.depth = depth
        self.in_channels = in_channels
        # Built in this order (stem, then the stages' blocks) so a seed gives the same weights.
        self.stem, channels, stride = _build_stem(stem, in_channels, base_channels, norm, gn_groups)
        stages, stage_channels, stage_strides = _build_stages(
            block, counts, strides, base_channels, channels, stride, norm, gn_groups
        )
        self.stages = nn.ModuleList(stages)
        init_weights(self)
        if zero_init_residual:
            _zero_init_residual(self)
        self._finish(
            stage_channels, stage_strides, out_indices, frozen_stages, norm_eval, has_stem=stem != "none"
        )
        self.block_counts = counts


def _check_arguments(depth: int, norm: str, strides: Sequence[int], stem: str) -> None:
    """Check the arguments of `ResNet` that choose its layers, before any is built.

    Args:
        depth: the ResNet depth, a key of the architecture table.
        norm: the norm layer name.
        strides: the first-block stride of each of the four stages.
        stem: `"conv7"`, `"conv3"` or `"none"`.

    Raises:
        FormatError: an unknown depth, norm or stem, or strides that are not 4 positive ints.
    """
    if depth not in _ARCH:
        raise FormatError(f"ResNet depth must be one of {sorted(_ARCH)}, got {depth!r}")
    check_norm(norm)
    if len(strides) != 4 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in strides):
        raise FormatError(f"strides must be 4 positive ints (one per stage), got {strides!r}")
    if stem not in ("conv7", "conv3", "none"):
        raise FormatError(f"stem must be 'conv7', 'conv3' or 'none', got {stem!r}")


def _build_stem(
    stem: str, in_channels: int, base_channels: int, norm: str, gn_groups: int
) -> tuple[nn.Module, int, int]:
    """The stem layers (see the module docstring).

    Args:
        stem: `"conv7"`, `"conv3"` or `"none"` (already checked).
        in_channels: input channels.
        base_channels: output channels of the conv stems.
        norm: the norm layer name.
        gn_groups: GroupNorm groups.

    Returns:
        The stem module, its output channels and its stride.
    """
    bias = norm == "none"
    if stem == "conv7":
        module = nn.Sequential(
            nn.Conv2d(in_channels, base_channels, 7, stride=2, padding=3, bias=bias),
            build_norm(norm, base_channels, 2, gn_groups),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        return module, base_channels, 4
    if stem == "conv3":
        module = nn.Sequential(
            nn.Conv2d(in_channels, base_channels, 3, padding=1, bias=bias),
            build_norm(norm, base_channels, 2, gn_groups),
            nn.ReLU(inplace=True),
        )
        return module, base_channels, 1
    return nn.Identity(), in_channels, 1


def _build_stages(
    block: type[BasicBlock] | type[Bottleneck],
    counts: Sequence[int],
    strides: Sequence[int],
    base_channels: int,
    channels: int,
    stride: int,
    norm: str,
    gn_groups: int,
) -> tuple[list[nn.Module], list[int], list[int]]:
    """The four stages of residual blocks, stage i `base_channels * 2**i` planes wide.

    Args:
        block: the block class.
        counts: blocks per stage.
        strides: the first-block stride of each stage.
        base_channels: planes of the first stage.
        channels: channels entering the first stage (the stem's output).
        stride: the stem's stride.
        norm: the norm layer name.
        gn_groups: GroupNorm groups.

    Returns:
        The stages, and the output channels and total stride of each.
    """
    stages: list[nn.Module] = []
    stage_channels: list[int] = []
    stage_strides: list[int] = []
    for i, (count, first_stride) in enumerate(zip(counts, strides)):
        planes = base_channels * 2**i
        blocks = []
        for j in range(count):
            blocks.append(block(channels, planes, first_stride if j == 0 else 1, norm, gn_groups))
            channels = planes * block.expansion
        stages.append(nn.Sequential(*blocks))
        stride *= first_stride
        stage_channels.append(channels)
        stage_strides.append(stride)
    return stages, stage_channels, stage_strides


def _zero_init_residual(model: nn.Module) -> None:
    """Zero the last norm's weight of every residual block in `model` (see `ResNet`)."""
    for module in model.modules():
        if isinstance(module, (BasicBlock, Bottleneck)):
            last = module.last_norm()
            # A frozen BN is never trained: zeroing it would cut the branch for good.
            if isinstance(last, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.zeros_(last.weight)
