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
(padding repeats a real cell, which does not change a maximum). For RoI Align,
`torch.nn.functional.embedding_bag` reduces the bags of all RoIs at once (a weighted sum) without
materialising the gathered features, on any device, with autograd to the feature map; for RoI
Pool, a running maximum over the bag slots does (see `_bag_max`). RoIs are first put in a few groups of
similar bag size (sides rounded up to 1, 2, 3, 4, 6, 8, 12, ...), one call per group, so that
small RoIs are not padded to the largest one's bag; a group whose index tensor would pass
`_INDEX_BUDGET` entries is reduced in blocks of bags.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

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
        raise ShapeError(
            f"input must be a feature map (B, C, H, W), got {tuple(input.shape) if isinstance(input, Tensor) else type(input).__name__}"
        )
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
            raise FormatError(
                f"rois row {row}: batch index {rois[row, 0].item()} is not an image of the batch (0..{input.shape[0] - 1})"
            )
    return rois


def _channel_last(input: Tensor) -> Tensor:
    """`Tensor[B, C, H, W]` -> `Tensor[B * H * W, C]` (row `(b * H + y) * W + x`)."""
    return input.permute(0, 2, 3, 1).reshape(-1, input.shape[1])


class _Prepared(NamedTuple):
    """What `roi_align` and `roi_pool` compute from their common arguments."""

    boxes: Tensor  # Tensor[K, 4] RoI corners scaled to map coordinates, detached
    base: Tensor  # LongTensor[K] first row in `table` of each RoI's image
    table: Tensor  # Tensor[B * H * W, C], see `_channel_last`
    ph: int
    pw: int


def _prepare(
    input: Tensor, rois: Tensor | Sequence[Tensor], output_size: int | Sequence[int], spatial_scale: float
) -> _Prepared | Tensor:
    """Check the arguments `roi_align` and `roi_pool` share and scale the RoIs to the map.

    Args:
        input: the feature map.
        rois: the RoIs, in either form the public functions take.
        output_size: the output's side or `(ph, pw)`.
        spatial_scale: the map's scale (1 / stride).

    Returns:
        The prepared RoIs, or the final all-zero `Tensor[K, C, ph, pw]` when there are no RoIs or
        the map is empty.

    Raises:
        ShapeError: `input` or `rois` has the wrong shape.
        FormatError: a bad `output_size`, a non-float map, a NaN/inf RoI or a bad batch index.
    """
    rois = _check_inputs(input, rois)
    ph, pw = _pair(output_size)
    _, channels, height, width = input.shape
    num = rois.shape[0]
    if num == 0 or height == 0 or width == 0:
        return input.new_zeros((num, channels, ph, pw))
    # The box geometry itself is not differentiated (as in the reference kernels).
    boxes = rois[:, 1:].detach() * float(spatial_scale)
    base = rois[:, 0].long() * (height * width)
    return _Prepared(boxes, base, _channel_last(input), ph, pw)


def _padded_size(span: Tensor) -> Tensor:
    """Round bag sides up to 1, 2, 3, 4, 6, 8, 12, 16, 24, ... (steps of at most 1.5x)."""
    span = span.clamp(min=1)
    power = torch.floor(torch.log2(span.double())).long()
    low = torch.pow(2, power)  # largest power of two <= span
    mid = low + low // 2
    return torch.where(span <= low, low, torch.where(span <= mid, mid, 2 * low))


def _groups(span_h: Tensor, span_w: Tensor) -> list[tuple[Tensor, int, int]]:
    """Split RoIs into groups of similar bag sides: `(indices, padded_h, padded_w)` per group.

    Padding every bag to the largest RoI's would make small RoIs pay for large ones (tens of
    times the work on a Faster R-CNN mix of sizes); with these groups a bag is at most 1.5x
    larger than needed along each side, and a typical batch forms a handful of groups.
    """
    pad_h, pad_w = _padded_size(span_h), _padded_size(span_w)
    key = pad_h * (int(pad_w.max()) + 1) + pad_w
    keys, inverse = torch.unique(key, return_inverse=True)
    order = torch.argsort(inverse, stable=True)
    counts = torch.bincount(inverse, minlength=keys.numel()).tolist()
    groups = []
    for members in order.split(counts):
        first = int(members[0])
        groups.append((members, int(pad_h[first]), int(pad_w[first])))
    return groups


class _GatherRows(torch.autograd.Function):
    """`table.gather(0, rows)` whose backward adds the gradient with one `index_add_` into the
    flattened table (a few times faster than `gather`'s scatter-add backward on the CPU)."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, table: Tensor, rows: Tensor) -> Tensor:
        ctx.save_for_backward(rows)
        ctx.table_shape = table.shape  # type: ignore[attr-defined]
        return table.gather(0, rows)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> tuple[Tensor, None]:
        (rows,) = ctx.saved_tensors  # type: ignore[attr-defined]
        num_rows, channels = ctx.table_shape  # type: ignore[attr-defined]
        flat = (rows * channels + torch.arange(channels, device=rows.device)).reshape(-1)
        out = grad.new_zeros(num_rows * channels).index_add_(0, flat, grad.reshape(-1))
        return out.view(num_rows, channels), None


def _bag_max(table: Tensor, index: Tensor) -> Tensor:
    """Per-channel maximum over each bag `LongTensor[N, S]` of rows of `table` -> `Tensor[N, C]`.

    A loop over the S bag slots (not over RoIs): each step gathers one row per bag and keeps the
    larger values, in preallocated buffers -- several times faster than
    `embedding_bag(mode="max")` on the CPU. When autograd needs it, the arg-max slot is tracked as
    in the reference kernel (a later slot wins only when strictly larger) and the output is a
    gather of those rows, so the gradient goes to them. (Feature maps are expected to be finite.)
    """
    slots = index.t()
    track = table.requires_grad and torch.is_grad_enabled()
    with torch.no_grad():
        best = table.index_select(0, slots[0])
        value = torch.empty_like(best)
        if track:
            larger = torch.empty(best.shape, dtype=torch.bool, device=best.device)
            arg = torch.zeros(
                best.shape, dtype=torch.int16 if slots.shape[0] < 2**15 else torch.int32, device=best.device
            )
        for s in range(1, slots.shape[0]):
            torch.index_select(table, 0, slots[s], out=value)
            if track:
                torch.gt(value, best, out=larger)
                arg.masked_fill_(larger, s)
            torch.maximum(best, value, out=best)
    if not track:
        return best
    return _GatherRows.apply(table, index.gather(1, arg.long()))


def _reduce_bags(table: Tensor, index: Tensor, weight: Tensor | None, mode: str) -> Tensor:
    """Weighted sum (`embedding_bag`) or maximum over bags `LongTensor[N, S]`, in blocks of `_INDEX_BUDGET`."""
    rows = max(1, _INDEX_BUDGET // max(1, index.shape[1]))
    parts = []
    for start in range(0, index.shape[0], rows):
        stop = start + rows
        if mode == "max":
            parts.append(_bag_max(table, index[start:stop]))
        else:
            w = None if weight is None else weight[start:stop]
            parts.append(F.embedding_bag(index[start:stop], table, per_sample_weights=w, mode="sum"))
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def _placed(parts: list[Tensor], groups: list[tuple[Tensor, int, int]]) -> Tensor:
    """Concatenate the groups' `Tensor[k, ph, pw, C]` results back into input RoI order.

    (One `index_select` of the concatenation: its backward is one `index_add`, where in-place
    writes of each group into an output tensor would copy the whole gradient once per group.)
    """
    if len(parts) == 1:
        return parts[0]  # one group holds every RoI, in input order
    order = torch.cat([members for members, _, _ in groups])
    return torch.cat(parts).index_select(0, torch.argsort(order))


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
    prepared = _prepare(input, rois, output_size, spatial_scale)
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
    groups = _groups(grid_h, grid_w)
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
        pooled = _reduce_bags(table, index.reshape(-1, bag), weight.reshape(-1, bag), "sum")
        parts.append(pooled.view(-1, ph, pw, channels))
    return _placed(parts, groups).permute(0, 3, 1, 2).contiguous()


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
    prepared = _prepare(input, rois, output_size, spatial_scale)
    if isinstance(prepared, Tensor):
        return prepared
    boxes, base, table, ph, pw = prepared
    _, channels, height, width = input.shape
    corners = _round_half_away(boxes)
    y_lo, y_hi = _pool_bins(corners[:, 1], corners[:, 3], ph, height)  # [K, ph]
    x_lo, x_hi = _pool_bins(corners[:, 0], corners[:, 2], pw, width)  # [K, pw]
    empty = (y_hi <= y_lo)[:, :, None] | (x_hi <= x_lo)[:, None, :]  # [K, ph, pw]
    groups = _groups((y_hi - y_lo).amax(dim=1), (x_hi - x_lo).amax(dim=1))
    parts = []
    for members, span_h, span_w in groups:
        rows = _window(y_lo[members], y_hi[members], span_h, height)[:, :, None, :, None]  # [k, ph, 1, Sh, 1]
        cols = _window(x_lo[members], x_hi[members], span_w, width)[:, None, :, None, :]  # [k, 1, pw, 1, Sw]
        hollow = empty[members]
        index = base[members].view(-1, 1, 1, 1, 1) + rows * width + cols
        # An empty bin reads cell (0, 0) of its image and is zeroed below.
        index = torch.where(hollow[:, :, :, None, None], base[members].view(-1, 1, 1, 1, 1), index)
        pooled = _reduce_bags(table, index.reshape(-1, span_h * span_w), None, "max").view(
            -1, ph, pw, channels
        )
        parts.append(
            torch.where(hollow[..., None], torch.zeros((), dtype=pooled.dtype, device=pooled.device), pooled)
        )
    return _placed(parts, groups).permute(0, 3, 1, 2).contiguous()


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
