"""RoI max pooling (Girshick, 2015), vectorised in plain torch (see :mod:`pc3d.nn.roi` for the
exact conventions).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from pc3d.nn.roi.bags import concat_in_roi_order, reduce_bags, size_groups
from pc3d.nn.roi.inputs import output_pair, prepare

__all__ = ["RoIPool", "roi_pool"]


def _round_half_away(x: Tensor) -> Tensor:
    """C's `round`: halves go away from zero (torch.round rounds them to even)."""
    return torch.where(x >= 0, torch.floor(x + 0.5), torch.ceil(x - 0.5))


def _pool_bins(start: Tensor, end: Tensor, bins: int, size: int) -> tuple[Tensor, Tensor]:
    """Cell ranges `[lo, hi)` of the `bins` bins along one axis -> two `LongTensor[K, bins]`."""
    length = (end - start + 1).clamp(min=1)
    # Divide by a tensor: CUDA divides by a Python scalar as a multiplication by its reciprocal,
    # which can move an exact bin edge (21 / 7) off its integer and change a floor/ceil there.
    bin_size = length / torch.full_like(length, bins)
    i = torch.arange(bins, device=start.device, dtype=start.dtype).view(1, -1)
    lo = torch.floor(i * bin_size.view(-1, 1)) + start.view(-1, 1)
    hi = torch.ceil((i + 1) * bin_size.view(-1, 1)) + start.view(-1, 1)
    return lo.clamp(0, size).long(), hi.clamp(0, size).long()


def _window(lo: Tensor, hi: Tensor, span: int, size: int) -> Tensor:
    """Cells `lo + d` for `d < span` of each bin `LongTensor[k, bins, span]`; cells past `hi`
    repeat `lo` (a max is unchanged by a repeat)."""
    d = torch.arange(span, device=lo.device).view(1, 1, -1)
    cells = lo[:, :, None] + d
    return torch.where(cells < hi[:, :, None], cells, lo[:, :, None]).clamp(max=size - 1)


# The arguments and their docs repeat roi_align's on purpose (torchvision's public signatures);
# the work they share is pc3d.nn.roi.inputs.
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
    prepared = prepare(input, rois, output_size, spatial_scale)
    if isinstance(prepared, Tensor):
        return prepared
    boxes, base, table, ph, pw = prepared
    _, channels, height, width = input.shape
    corners = _round_half_away(boxes)
    y_lo, y_hi = _pool_bins(corners[:, 1], corners[:, 3], ph, height)  # [K, ph]
    x_lo, x_hi = _pool_bins(corners[:, 0], corners[:, 2], pw, width)  # [K, pw]
    empty = (y_hi <= y_lo)[:, :, None] | (x_hi <= x_lo)[:, None, :]  # [K, ph, pw]
    groups = size_groups((y_hi - y_lo).amax(dim=1), (x_hi - x_lo).amax(dim=1))
    parts = []
    for members, span_h, span_w in groups:
        rows = _window(y_lo[members], y_hi[members], span_h, height)[:, :, None, :, None]  # [k, ph, 1, Sh, 1]
        cols = _window(x_lo[members], x_hi[members], span_w, width)[:, None, :, None, :]  # [k, 1, pw, 1, Sw]
        hollow = empty[members]
        index = base[members].view(-1, 1, 1, 1, 1) + rows * width + cols
        # An empty bin reads cell (0, 0) of its image and is zeroed below.
        index = torch.where(hollow[:, :, :, None, None], base[members].view(-1, 1, 1, 1, 1), index)
        pooled = reduce_bags(table, index.reshape(-1, span_h * span_w), None, "max").view(
            -1, ph, pw, channels
        )
        parts.append(
            torch.where(hollow[..., None], torch.zeros((), dtype=pooled.dtype, device=pooled.device), pooled)
        )
    return concat_in_roi_order(parts, groups).permute(0, 3, 1, 2).contiguous()


class RoIPool(nn.Module):
    """Module form of `roi_pool` with fixed `output_size` and `spatial_scale`."""

    def __init__(self, output_size: int | Sequence[int], spatial_scale: float = 1.0) -> None:
        super().__init__()
        self.output_size = output_pair(output_size)
        self.spatial_scale = float(spatial_scale)

    def forward(self, input: Tensor, rois: Tensor | Sequence[Tensor]) -> Tensor:
        return roi_pool(input, rois, self.output_size, self.spatial_scale)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, spatial_scale={self.spatial_scale}"
