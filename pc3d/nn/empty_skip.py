"""Dense 3x3 conv + ReLU stages that skip the empty parts of a sparse BEV map, exactly.

A BEV map from a pillar scatter or a sparse encoder is mostly empty: on KITTI frame 000000,
PointPillars' 496 x 432 canvas has a pillar in 3.8% of its cells. Where a conv's whole window
holds the same vector ``b`` (zeros in the canvas), its output is the same vector
``relu(sum_k W_k b + bias)``: the "background" of the next layer. So each layer only needs
computing where its window reaches a cell that differs from the background (the input's
non-zero cells, grown by one cell per layer, plus the map's border once the background is not
zero, because the conv's zero padding then differs from it); everywhere else the output is the
background vector. The map is cut into ``T x T`` tiles; the tiles holding such a cell are
gathered with their halo, run through the conv as one batch, and written over a map filled
with the background.

The result equals the dense stage to float rounding. It pays where few tiles are active and
costs a gather and a scatter per layer, so a layer with more than :data:`DENSE_ABOVE` of its
tiles active (60% for tiles of 4 x 4 cells; :data:`DENSE_ABOVE_WINOGRAD` for Winograd convs,
whose tiles are computed as one F(4x4, 3x3) block each) runs dense. On frame 000000
PointPillars' first stage (four 64-channel convs at 248 x 216) has 14% to 28% of its 4 x 4 tiles
active (``python tools/bench.py models``; docs/benchmarks.md has the times).

Used by :class:`pc3d.nn.SECONDBackbone` at inference once its norms are folded into the convs
(``skip_empty = True``, set by :func:`pc3d.nn.fuse.optimize_for_inference`), on the CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pc3d.nn.winograd import WinogradConv2d, winograd_blocks

__all__ = ["DENSE_ABOVE", "DENSE_ABOVE_WINOGRAD", "conv_relu_layers", "run_stages"]

#: A layer with more than this fraction of its tiles active runs as one dense conv, by tile size.
#: Measured break-even points on a 2-core CPU (PointPillars and SECOND on KITTI frame 000000):
#: 4 x 4 tiles (a 6 x 6 window each) pay up to about 60% active, even against a Winograd conv;
#: 2 x 2 tiles read 2.25x their area and cost 1.6x the dense conv at 80% active.
DENSE_ABOVE = {4: 0.6, 2: 0.4}
#: The same for a Winograd conv (:class:`pc3d.nn.winograd.WinogradConv2d`) on 4 x 4 tiles, whose
#: 6 x 6 windows are one F(4x4, 3x3) block each: the tiles pay up to about 75% active.
DENSE_ABOVE_WINOGRAD = 0.75
# Tile sizes tried, largest first: the first that divides the layer's output map is used.
_TILE_SIZES = (4, 2)


def conv_relu_layers(stage: nn.Module) -> list[nn.Conv2d] | None:
    """The convs of a stage of the form ``(Conv2d, Identity, ReLU) * n`` (norms folded away).

    Each conv must be a 3x3 conv with padding 1, stride 1 or 2, no dilation and one group.

    Args:
        stage: a backbone stage.

    Returns:
        The convs in order, or None when the stage has another form (then it runs as it is).
    """
    if not isinstance(stage, nn.Sequential):
        return None
    layers = list(stage)
    if len(layers) == 0 or len(layers) % 3:
        return None
    convs = []
    for conv, norm, act in zip(layers[0::3], layers[1::3], layers[2::3], strict=True):
        if not (isinstance(conv, nn.Conv2d) and isinstance(norm, nn.Identity) and isinstance(act, nn.ReLU)):
            return None
        if (
            conv.kernel_size != (3, 3)
            or conv.padding != (1, 1)
            or conv.dilation != (1, 1)
            or conv.groups != 1
            or conv.stride not in ((1, 1), (2, 2))
            or conv.padding_mode != "zeros"
        ):
            return None
        convs.append(conv)
    return convs


def run_stages(x: Tensor, stages: list[list[nn.Conv2d]]) -> tuple[Tensor, ...]:
    """Run conv + ReLU stages over ``x``, computing only where the map is not background.

    Args:
        x: `Tensor[B, C, H, W]`, the BEV map (its zero cells are the empty ones).
        stages: the convs of each stage (:func:`conv_relu_layers`).

    Returns:
        Each stage's output, as the dense stages would give them (channels-last).
    """
    # mask: [B, 1, H, W], 1 where the map may differ from the background vector. A cell is empty
    # when its largest and smallest values are 0 (a NaN cell is not); two reductions along the
    # channels-last map's contiguous axis are several times faster than `(x != 0).any(dim=1)`.
    cells = x.permute(0, 2, 3, 1)
    mask = ((cells.amax(dim=-1) != 0) | (cells.amin(dim=-1) != 0)).unsqueeze(1).to(x.dtype)
    background = x.new_zeros(x.shape[1])
    outs = []
    for convs in stages:
        for conv in convs:
            x, mask, background = _layer(x, mask, background, conv)
        outs.append(x)
    return tuple(outs)


def _layer(x: Tensor, mask: Tensor, background: Tensor, conv: nn.Conv2d) -> tuple[Tensor, Tensor, Tensor]:
    """One conv + ReLU: the output map, where it differs from its background, and that background."""
    stride = conv.stride[0]
    bias = conv.bias if conv.bias is not None else conv.weight.new_zeros(conv.out_channels)
    # sum_k W_k b as one matrix-vector product over the [C_out, 3 * 3 * C_in] weight (a view when
    # the weight is channels-last, as in the optimised models).
    weight = conv.weight.permute(0, 2, 3, 1).reshape(conv.out_channels, -1)
    out_background = torch.relu(torch.mv(weight, background.repeat(9)) + bias)
    # The zero padding differs from a non-zero background: the border then counts as changed.
    pad = 1.0 if bool(background.any()) else 0.0
    mask = F.max_pool2d(F.pad(mask, (1, 1, 1, 1), value=pad), 3, stride)  # [B, 1, H_out, W_out]
    height, width = mask.shape[-2:]
    tile = next((t for t in _TILE_SIZES if height % t == 0 and width % t == 0), _TILE_SIZES[0])
    active = F.max_pool2d(mask, tile, tile, ceil_mode=True)[:, 0] > 0  # [B, nH, nW]
    winograd = isinstance(conv, WinogradConv2d) and stride == 1 and tile == 4
    if active.float().mean() > (DENSE_ABOVE_WINOGRAD if winograd else DENSE_ABOVE[tile]):
        return torch.relu_(conv(x)), mask, out_background
    return _tiled(x, active, conv, tile, out_background, (height, width)), mask, out_background


def _tiled(
    x: Tensor, active: Tensor, conv: nn.Conv2d, tile: int, background: Tensor, size: tuple[int, int]
) -> Tensor:
    """The conv + ReLU on the active tiles only; the other cells hold ``background``."""
    stride = conv.stride[0]
    batch, _, height, width = x.shape
    n_h, n_w = active.shape[1:]
    window = stride * (tile - 1) + 3  # input cells an output tile reads, halo included
    step = stride * tile
    padded = _zero_padded(x.permute(0, 2, 3, 1), (n_h - 1) * step + window, (n_w - 1) * step + window)
    windows = padded.unfold(1, window, step).unfold(2, window, step)  # [B, nH, nW, C, a, a]
    where = active.nonzero(as_tuple=True)
    inputs = windows.permute(0, 1, 2, 4, 5, 3)[where]  # [K, a, a, C]
    if isinstance(conv, WinogradConv2d) and window == 6:
        # A 6 x 6 window is exactly one F(4x4, 3x3) block.
        outputs = torch.relu_(
            winograd_blocks(inputs, conv.transformed_weight(), conv.bias)
        )  # [K, T, T, C_out]
    else:
        outputs = torch.relu_(F.conv2d(inputs.permute(0, 3, 1, 2), conv.weight, conv.bias, stride=stride))
        outputs = outputs.permute(0, 2, 3, 1)  # [K, T, T, C_out] (the conv's NHWC memory)
    channels = outputs.shape[3]
    out = background.expand(batch, n_h * tile, n_w * tile, channels).contiguous()
    out.view(batch, n_h, tile, n_w, tile, channels).permute(0, 1, 3, 2, 4, 5)[where] = outputs
    out = out[:, : size[0], : size[1]].permute(0, 3, 1, 2)  # [B, C_out, H_out, W_out], NHWC memory
    return out.contiguous(memory_format=torch.channels_last)


def _zero_padded(cells: Tensor, height: int, width: int) -> Tensor:
    """`cells` `[B, H, W, C]` inside a `[B, height, width, C]` zero frame, one cell wide at the top and left.

    Only the frame is zeroed (`F.pad` zeroes the whole tensor, then copies the map over it).
    """
    batch, rows, cols, channels = cells.shape
    out = cells.new_empty(batch, height, width, channels)
    out[:, :1].zero_()
    out[:, rows + 1 :].zero_()
    out[:, 1 : rows + 1, :1].zero_()
    out[:, 1 : rows + 1, cols + 1 :].zero_()
    out[:, 1 : rows + 1, 1 : cols + 1] = cells
    return out
