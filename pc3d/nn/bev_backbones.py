"""BEV backbones: SECOND's stack of strided 3x3 conv stages over a bird's-eye-view map.

Used by PointPillars (after the pillar scatter) and SECOND (after the sparse encoder). Module
names follow MMDetection3D's `SECOND` backbone (`blocks.<stage>.<layer>`), so its checkpoints
map one to one (see `pc3d.nn.checkpoint_mmdet3d`).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from pc3d.errors import FormatError, ShapeError
from pc3d.nn.empty_skip import conv_relu_layers, run_stages
from pc3d.nn.layers import ConvNormAct
from pc3d.nn.voxel.common import init_bev_weights, set_bn_hyperparameters
from pc3d.nn.winograd import needs_grad


class SECONDBackbone(nn.Module):
    """SECOND's BEV backbone: `Tensor[B, in_channels, H, W]` -> one map per stage, shallowest first.

    Stage `i` is a 3x3 conv with stride `layer_strides[i]` followed by `layer_nums[i]` 3x3 convs
    with stride 1, each conv without bias, then norm (batch norm: eps 1e-3, momentum 0.01) and
    ReLU. `blocks[i]` is a flat `nn.Sequential` `(conv, norm, relu, conv, norm, relu, ...)`.

    PointPillars on KITTI: `in_channels=64, out_channels=(64, 128, 256), layer_nums=(3, 5, 5),
    layer_strides=(2, 2, 2)`: `[B, 64, 496, 432]` -> `[B, 64, 248, 216]`, `[B, 128, 124, 108]`,
    `[B, 256, 62, 54]`. SECOND: `in_channels=256, out_channels=(128, 256), layer_nums=(5, 5),
    layer_strides=(1, 2)`: `[B, 256, 200, 176]` -> `[B, 128, 200, 176]`, `[B, 256, 100, 88]`.

    Args:
        in_channels: channels of the BEV input.
        out_channels: channels of each stage.
        layer_nums: stride-1 convs after each stage's first conv.
        layer_strides: stride of each stage's first conv.
        norm: `"bn"`, `"gn"` or `"none"` (convs then carry a bias).

    Attributes:
        out_channels: `tuple[int, ...]`, channels of each output.
        out_strides: `tuple[int, ...]`, stride of each output w.r.t. the input.
        skip_empty: at inference on the CPU (no autograd recording), once the norms are folded
            into the convs, compute only where the map is not empty (:mod:`pc3d.nn.empty_skip`;
            same outputs to float rounding). Set by :func:`pc3d.nn.fuse.optimize_for_inference`;
            False by default.
    """

    def __init__(
        self,
        in_channels: int = 128,
        out_channels: Sequence[int] = (128, 128, 256),
        layer_nums: Sequence[int] = (3, 5, 5),
        layer_strides: Sequence[int] = (2, 2, 2),
        norm: str = "bn",
    ) -> None:
        super().__init__()
        if not len(out_channels) == len(layer_nums) == len(layer_strides) or len(out_channels) == 0:
            raise FormatError(
                f"out_channels {list(out_channels)}, layer_nums {list(layer_nums)} and layer_strides {list(layer_strides)} "
                "must have the same non-zero length"
            )
        self.in_channels = in_channels
        blocks = []
        strides = []
        stride = 1
        channels = in_channels
        for width, num, layer_stride in zip(out_channels, layer_nums, layer_strides, strict=True):
            convs = [ConvNormAct(channels, width, 3, stride=layer_stride, padding=1, norm=norm)]
            convs += [ConvNormAct(width, width, 3, padding=1, norm=norm) for _ in range(num)]
            # Flattened (conv, norm, act, conv, ...) so the parameter names are `blocks.i.<index>`.
            blocks.append(nn.Sequential(*(layer for conv in convs for layer in conv)))
            channels = width
            stride *= layer_stride
            strides.append(stride)
        self.blocks = nn.ModuleList(blocks)
        set_bn_hyperparameters(self)
        self.out_channels = tuple(int(c) for c in out_channels)
        self.out_strides = tuple(strides)
        self.skip_empty = False

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """`Tensor[B, in_channels, H, W]` -> `Tensor[B, out_channels[i], H / out_strides[i], W / out_strides[i]]` per stage."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ShapeError(
                f"SECONDBackbone expects a tensor of shape (B, {self.in_channels}, H, W), got {tuple(x.shape)}"
            )
        if self.skip_empty and not self.training and x.device.type == "cpu" and not needs_grad(x, self):
            stages = [conv_relu_layers(block) for block in self.blocks]
            folded = [convs for convs in stages if convs is not None]
            if len(folded) == len(stages):
                return run_stages(x, folded)
        outs = []
        for block in self.blocks:
            x = block(x)
            outs.append(x)
        return tuple(outs)

    def init_weights(self) -> None:
        """He-normal convs (fan-out, ReLU gain), unit/zero norms: MMDetection3D's initialisation."""
        init_bev_weights(self)
