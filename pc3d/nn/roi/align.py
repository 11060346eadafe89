"""RoI Align (He et al., 2017), vectorised in plain torch (see :mod:`pc3d.nn.roi` for the exact
conventions).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from pc3d.nn.roi.bags import concat_in_roi_order, reduce_bags, size_groups
from pc3d.nn.roi.inputs import output_pair, prepare

__all__ = ["RoIAlign", "roi_align"]


def _axis_samples(
    start: Tensor, bin_size: Tensor, grid: Tensor, grid_max: int, bins: int, size: int
) -> tuple[Tensor, Tensor]:
    """Bilinear corner indices and weights along one axis.

    For RoI k, bin i, sample s (< grid[k]) at `start + i * bin + (s + 0.5) * bin / grid`, returns
    `LongTensor[K, bins, grid_max, 2]` (low, high cell) and `Tensor[K, bins, grid_max, 2]`
    weights, already divided by the grid size and zero for padding samples and for samples
    outside `[-1, size]`.
    """
    i = torch.arange(bins, device=start.device, dtype=start.dtype).view(1, bins, 1)
    s = torch.arange(grid_max, device=start.device, dtype=start.dtype).view(1, 1, grid_max)
    g = grid.to(start.dtype).view(-1, 1, 1)
    pos = (
        start.view(-1, 1, 1)
        + i * bin_size.view(-1, 1, 1)
        + (s + 0.5) * bin_size.view(-1, 1, 1) / g.clamp(min=1)
    )
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
    prepared = prepare(input, rois, output_size, spatial_scale)
    if isinstance(prepared, Tensor):
        return prepared
    boxes, base, table, ph, pw = prepared
    _, channels, height, width = input.shape
    num = boxes.shape[0]
    boxes = boxes - (0.5 if aligned else 0.0)
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
    groups = size_groups(grid_h, grid_w)
    parts = []
    for members, gh, gw in groups:
        y_idx, y_wt = _axis_samples(
            boxes[members, 1], bin_h[members], grid_h[members], gh, ph, height
        )  # [k, ph, gh, 2]
        x_idx, x_wt = _axis_samples(
            boxes[members, 0], bin_w[members], grid_w[members], gw, pw, width
        )  # [k, pw, gw, 2]
        # [k, ph, 1, gh, 2, 1, 1] x [k, 1, pw, 1, 1, gw, 2]: one bag of 4 gh gw corners per bin.
        index = (
            base[members].view(-1, 1, 1, 1, 1, 1, 1)
            + y_idx[:, :, None, :, :, None, None] * width
            + x_idx[:, None, :, None, None, :, :]
        )
        weight = y_wt[:, :, None, :, :, None, None] * x_wt[:, None, :, None, None, :, :]
        bag = 4 * gh * gw
        pooled = reduce_bags(table, index.reshape(-1, bag), weight.reshape(-1, bag), "sum")
        parts.append(pooled.view(-1, ph, pw, channels))
    return concat_in_roi_order(parts, groups).permute(0, 3, 1, 2).contiguous()


class RoIAlign(nn.Module):
    """Module form of `roi_align` with fixed `output_size`, `spatial_scale`, `sampling_ratio`, `aligned`."""

    def __init__(
        self,
        output_size: int | Sequence[int],
        spatial_scale: float = 1.0,
        sampling_ratio: int = 0,
        aligned: bool = True,
    ) -> None:
        super().__init__()
        self.output_size = output_pair(output_size)
        self.spatial_scale = float(spatial_scale)
        self.sampling_ratio = int(sampling_ratio)
        self.aligned = bool(aligned)

    def forward(self, input: Tensor, rois: Tensor | Sequence[Tensor]) -> Tensor:
        return roi_align(input, rois, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, sampling_ratio={self.sampling_ratio}, aligned={self.aligned}"
