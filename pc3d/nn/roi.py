"""RoI Align (He et al., 2017) and RoI Pool (Girshick, 2015), vectorised in plain torch.

Both take a feature map `Tensor[B, C, H, W]` and RoIs `Tensor[K, 5]` rows `(batch_index, x1, y1,
x2, y2)` in input-image coordinates (or a list of per-image `Tensor[K_i, 4]`), scale the RoIs by
`spatial_scale` (1 / the map's stride) and return `Tensor[K, C, ph, pw]`. They reproduce the
reference CUDA/C++ kernels of torchvision (and so Detectron2 / MMCV) value for value:

RoI Align. A feature value `F[r, c]` sits at the continuous point `(c, r)` of the scaled RoI frame.
`aligned=True` shifts the scaled RoI by -0.5, so that pixel `c` covers `[c, c + 1)` and its centre
`c + 0.5` maps onto the feature value `c` (the pixel-centre convention; the right one, used by
Detectron2 and MMDetection >= 2). `aligned=False` is the original paper's (Mask R-CNN) version:
no shift, and RoIs are widened to at least 1x1. Each output bin averages `gh x gw` bilinear samples
at the centres of a regular grid inside the bin, `gh = sampling_ratio` or, when
`sampling_ratio <= 0`, `ceil(roi_height / ph)` (per RoI). A sample outside `[-1, H] x [-1, W]`
counts 0; inside, coordinates are clamped to the map before interpolation.

RoI Pool. RoI corners are rounded to feature cells (half away from zero), the RoI spans
`round(x2) - round(x1) + 1` cells (at least 1), and bin `i` covers rows
`[floor(i * h / ph), ceil((i + 1) * h / ph))` (clipped to the map); its value is the maximum there,
or 0 for an empty bin. Gradients go to the arg-max cells.

How it is vectorised: every output element is a fixed-size "bag" of weighted feature rows of the
channel-last map `Tensor[B * H * W, C]` -- the 4 bilinear corners of each of the (padded) `gh x gw`
samples for RoI Align (padding carries weight 0), the (padded) cells of the bin for RoI Pool
(padding repeats a real cell, which does not change a maximum). `torch.nn.functional.embedding_bag`
reduces all bags of all RoIs in one call (weighted sum / max) without materialising the gathered
features, on any device, with autograd to the feature map. Only when the index tensor would pass
`_INDEX_BUDGET` entries (huge RoIs on a fine map with an adaptive sampling ratio) are RoIs
processed in blocks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pc3d.errors import FormatError, ShapeError

# Bag entries (indices) per call; about 130 MB of int64 + weights at most.
_INDEX_BUDGET = 1 << 23


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int) and not isinstance(size, bool):
        pair = (size, size)
    elif isinstance(size, Sequence) and len(size) == 2:
        pair = (int(size[0]), int(size[1]))
    else:
        raise FormatError(f"output_size must be an int or an (h, w) pair, got {size!r}")
    if min(pair) < 1:
        raise FormatError(f"output_size must be positive, got {size!r}")
    return pair


def _check_inputs(input: Tensor, rois: Tensor | Sequence[Tensor]) -> Tensor:
    """Validate the map and return RoIs as `Tensor[K, 5]` on its device and dtype."""
    if not isinstance(input, Tensor) or input.dim() != 4:
        raise ShapeError(f"input must be a feature map (B, C, H, W), got {tuple(input.shape) if isinstance(input, Tensor) else type(input).__name__}")
    if not input.is_floating_point():
        raise FormatError(f"input must be a floating-point map, got {input.dtype}")
    if not isinstance(rois, Tensor):
        parts = []
        for i, boxes in enumerate(rois):
            if not isinstance(boxes, Tensor) or boxes.dim() != 2 or boxes.shape[1] != 4:
                raise ShapeError(f"rois[{i}] must be (K_i, 4) boxes x1, y1, x2, y2")
            index = torch.full((boxes.shape[0], 1), float(i), dtype=input.dtype, device=input.device)
            parts.append(torch.cat([index, boxes.to(device=input.device, dtype=input.dtype)], dim=1))
        rois = torch.cat(parts) if parts else input.new_zeros((0, 5))
    if rois.dim() != 2 or rois.shape[1] != 5:
        raise ShapeError(f"rois must be (K, 5) rows (batch_index, x1, y1, x2, y2), got {tuple(rois.shape)}")
    rois = rois.to(device=input.device, dtype=input.dtype)
    if rois.shape[0] > 0:
        finite = torch.isfinite(rois).all(dim=1)
        if not bool(finite.all()):
            row = int(torch.nonzero(~finite)[0, 0])
            raise FormatError(f"rois row {row}: {rois[row].tolist()} holds NaN/inf")
        batch = rois[:, 0]
        bad = (batch < 0) | (batch >= input.shape[0]) | (batch != batch.floor())
        if bool(bad.any()):
            row = int(torch.nonzero(bad)[0, 0])
            raise FormatError(f"rois row {row}: batch index {rois[row, 0].item()} is not an image of the batch (0..{input.shape[0] - 1})")
    return rois


def _channel_last(input: Tensor) -> Tensor:
    """`Tensor[B, C, H, W]` -> `Tensor[B * H * W, C]` (row `(b * H + y) * W + x`)."""
    return input.permute(0, 2, 3, 1).reshape(-1, input.shape[1])


def _blocks(num_rois: int, entries_per_roi: int) -> list[slice]:
    per_block = max(1, _INDEX_BUDGET // max(1, entries_per_roi))
    return [slice(start, min(start + per_block, num_rois)) for start in range(0, num_rois, per_block)]


def _axis_samples(start: Tensor, bin_size: Tensor, grid: Tensor, grid_max: int, bins: int, size: int) -> tuple[Tensor, Tensor]:
    """Bilinear corner indices and weights along one axis.

    For RoI k, bin i, sample s (< grid[k]) at `start + i * bin + (s + 0.5) * bin / grid`, returns
    `LongTensor[K, bins, grid_max, 2]` (low, high cell) and `Tensor[K, bins, grid_max, 2]`
    weights, already divided by the grid size and zero for padding samples and for samples
    outside `[-1, size]`.
    """
    i = torch.arange(bins, device=start.device, dtype=start.dtype).view(1, bins, 1)
    s = torch.arange(grid_max, device=start.device, dtype=start.dtype).view(1, 1, grid_max)
    g = grid.to(start.dtype).view(-1, 1, 1)
    pos = start.view(-1, 1, 1) + i * bin_size.view(-1, 1, 1) + (s + 0.5) * bin_size.view(-1, 1, 1) / g.clamp(min=1)
    keep = (s < g) & (pos >= -1.0) & (pos <= size)
    pos = pos.clamp(min=0)
    low = pos.floor().long()
    at_edge = low >= size - 1
    low = torch.where(at_edge, torch.full_like(low, size - 1), low)
    high = torch.where(at_edge, low, low + 1)
    frac = torch.where(at_edge, torch.zeros_like(pos), pos - low.to(pos.dtype))
    scale = keep.to(pos.dtype) / g.clamp(min=1)
    weights = torch.stack([(1 - frac) * scale, frac * scale], dim=-1)
    return torch.stack([low, high], dim=-1), weights


def roi_align(
    input: Tensor,
    rois: Tensor | Sequence[Tensor],
    output_size: int | Sequence[int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = 0,
    aligned: bool = True,
) -> Tensor:
    """RoI Align (see the module docstring for the exact conventions).

    Args:
        input: `Tensor[B, C, H, W]` feature map.
        rois: `Tensor[K, 5]` rows `(batch_index, x1, y1, x2, y2)`, or a list of `Tensor[K_i, 4]`.
        output_size: `ph` or `(ph, pw)`.
        spatial_scale: factor from RoI coordinates to map coordinates (1 / stride).
        sampling_ratio: samples per bin side; `<= 0` adapts to the RoI size.
        aligned: pixel-centre convention (True) or the original Mask R-CNN one (False).

    Returns:
        `Tensor[K, C, ph, pw]`; differentiable w.r.t. `input` (not w.r.t. `rois`).
    """
    rois = _check_inputs(input, rois)
    ph, pw = _pair(output_size)
    batch, channels, height, width = input.shape
    num = rois.shape[0]
    if num == 0 or height == 0 or width == 0:
        return input.new_zeros((num, channels, ph, pw))
    scale = float(spatial_scale)
    offset = 0.5 if aligned else 0.0
    # The box geometry itself is not differentiated (as in the reference kernels).
    boxes = rois[:, 1:].detach() * scale - offset
    roi_w = boxes[:, 2] - boxes[:, 0]
    roi_h = boxes[:, 3] - boxes[:, 1]
    if not aligned:
        roi_w = roi_w.clamp(min=1.0)
        roi_h = roi_h.clamp(min=1.0)
    bin_w, bin_h = roi_w / pw, roi_h / ph
    if sampling_ratio > 0:
        grid_h = torch.full((num,), sampling_ratio, dtype=torch.long, device=input.device)
        grid_w = grid_h
    else:
        grid_h = torch.ceil(roi_h / ph).long().clamp(min=0)
        grid_w = torch.ceil(roi_w / pw).long().clamp(min=0)
    gh_max = max(int(grid_h.max()), 1)
    gw_max = max(int(grid_w.max()), 1)
    y_idx, y_wt = _axis_samples(boxes[:, 1], bin_h, grid_h, gh_max, ph, height)  # [K, ph, Gh, 2]
    x_idx, x_wt = _axis_samples(boxes[:, 0], bin_w, grid_w, gw_max, pw, width)  # [K, pw, Gw, 2]
    table = _channel_last(input)
    base = rois[:, 0].long() * (height * width)
    bag = gh_max * 2 * gw_max * 2
    out = []
    for block in _blocks(num, ph * pw * bag):
        # [k, ph, 1, Gh, 2, 1, 1] x [k, 1, pw, 1, 1, Gw, 2] -> one bag per (k, ph, pw).
        rows = y_idx[block][:, :, None, :, :, None, None]
        cols = x_idx[block][:, None, :, None, None, :, :]
        index = base[block].view(-1, 1, 1, 1, 1, 1, 1) + rows * width + cols
        weight = y_wt[block][:, :, None, :, :, None, None] * x_wt[block][:, None, :, None, None, :, :]
        k = index.shape[0]
        pooled = F.embedding_bag(
            index.reshape(k * ph * pw, bag),
            table,
            per_sample_weights=weight.reshape(k * ph * pw, bag),
            mode="sum",
        )
        out.append(pooled.view(k, ph, pw, channels))
    return torch.cat(out).permute(0, 3, 1, 2).contiguous()


def _round_half_away(x: Tensor) -> Tensor:
    """C's `round`: halves go away from zero (torch.round rounds them to even)."""
    return torch.where(x >= 0, torch.floor(x + 0.5), torch.ceil(x - 0.5))


def _pool_bins(start: Tensor, end: Tensor, bins: int, size: int) -> tuple[Tensor, Tensor]:
    """Cell ranges `[lo, hi)` of the `bins` bins along one axis -> two `LongTensor[K, bins]`."""
    length = (end - start + 1).clamp(min=1)
    bin_size = length / bins
    i = torch.arange(bins, device=start.device, dtype=start.dtype).view(1, -1)
    lo = torch.floor(i * bin_size.view(-1, 1)) + start.view(-1, 1)
    hi = torch.ceil((i + 1) * bin_size.view(-1, 1)) + start.view(-1, 1)
    return lo.clamp(0, size).long(), hi.clamp(0, size).long()


def roi_pool(
    input: Tensor,
    rois: Tensor | Sequence[Tensor],
    output_size: int | Sequence[int],
    spatial_scale: float = 1.0,
) -> Tensor:
    """RoI max pooling (see the module docstring for the exact conventions).

    Args:
        input: `Tensor[B, C, H, W]` feature map.
        rois: `Tensor[K, 5]` rows `(batch_index, x1, y1, x2, y2)`, or a list of `Tensor[K_i, 4]`.
        output_size: `ph` or `(ph, pw)`.
        spatial_scale: factor from RoI coordinates to map coordinates (1 / stride).

    Returns:
        `Tensor[K, C, ph, pw]`; empty bins are 0.
    """
    rois = _check_inputs(input, rois)
    ph, pw = _pair(output_size)
    batch, channels, height, width = input.shape
    num = rois.shape[0]
    if num == 0 or height == 0 or width == 0:
        return input.new_zeros((num, channels, ph, pw))
    corners = _round_half_away(rois[:, 1:].detach() * float(spatial_scale))
    y_lo, y_hi = _pool_bins(corners[:, 1], corners[:, 3], ph, height)  # [K, ph]
    x_lo, x_hi = _pool_bins(corners[:, 0], corners[:, 2], pw, width)  # [K, pw]
    span_h = max(int((y_hi - y_lo).max()), 1)
    span_w = max(int((x_hi - x_lo).max()), 1)
    empty = ((y_hi <= y_lo)[:, :, None] | (x_hi <= x_lo)[:, None, :])  # [K, ph, pw]
    # Cells past a bin's end repeat its first cell (a max is unchanged by a repeat); an empty
    # bin reads cell (0, 0) of its image and is zeroed afterwards.
    dy = torch.arange(span_h, device=input.device).view(1, 1, -1)
    dx = torch.arange(span_w, device=input.device).view(1, 1, -1)
    rows = torch.where(y_lo[:, :, None] + dy < y_hi[:, :, None], y_lo[:, :, None] + dy, y_lo[:, :, None]).clamp(max=height - 1)
    cols = torch.where(x_lo[:, :, None] + dx < x_hi[:, :, None], x_lo[:, :, None] + dx, x_lo[:, :, None]).clamp(max=width - 1)
    table = _channel_last(input)
    base = rois[:, 0].long() * (height * width)
    bag = span_h * span_w
    out = []
    for block in _blocks(num, ph * pw * bag):
        r = rows[block][:, :, None, :, None]  # [k, ph, 1, Sh, 1]
        c = cols[block][:, None, :, None, :]  # [k, 1, pw, 1, Sw]
        index = base[block].view(-1, 1, 1, 1, 1) + r * width + c
        index = torch.where(empty[block][:, :, :, None, None], base[block].view(-1, 1, 1, 1, 1), index)
        k = index.shape[0]
        pooled = F.embedding_bag(index.reshape(k * ph * pw, bag), table, mode="max").view(k, ph, pw, channels)
        out.append(torch.where(empty[block][..., None], torch.zeros((), dtype=pooled.dtype, device=pooled.device), pooled))
    return torch.cat(out).permute(0, 3, 1, 2).contiguous()


class RoIAlign(nn.Module):
    """Module form of `roi_align` with fixed `output_size`, `spatial_scale`, `sampling_ratio`, `aligned`."""

    def __init__(self, output_size: int | Sequence[int], spatial_scale: float = 1.0, sampling_ratio: int = 0, aligned: bool = True) -> None:
        super().__init__()
        self.output_size = _pair(output_size)
        self.spatial_scale = float(spatial_scale)
        self.sampling_ratio = int(sampling_ratio)
        self.aligned = bool(aligned)

    def forward(self, input: Tensor, rois: Tensor | Sequence[Tensor]) -> Tensor:
        return roi_align(input, rois, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, sampling_ratio={self.sampling_ratio}, aligned={self.aligned}"


class RoIPool(nn.Module):
    """Module form of `roi_pool` with fixed `output_size` and `spatial_scale`."""

    def __init__(self, output_size: int | Sequence[int], spatial_scale: float = 1.0) -> None:
        super().__init__()
        self.output_size = _pair(output_size)
        self.spatial_scale = float(spatial_scale)

    def forward(self, input: Tensor, rois: Tensor | Sequence[Tensor]) -> Tensor:
        return roi_pool(input, rois, self.output_size, self.spatial_scale)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, spatial_scale={self.spatial_scale}"
