"""The reduction behind RoI Align and RoI Pool (see :mod:`pc3d.nn.roi` for their conventions).

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

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["concat_in_roi_order", "reduce_bags", "size_groups"]

# Bag entries (indices) per call; about 130 MB of int64 + weights at most.
_INDEX_BUDGET = 1 << 23


def _padded_size(span: Tensor) -> Tensor:
    """Round bag sides up to 1, 2, 3, 4, 6, 8, 12, 16, 24, ... (steps of at most 1.5x)."""
    span = span.clamp(min=1)
    power = torch.floor(torch.log2(span.double())).long()
    low = torch.pow(2, power)  # largest power of two <= span
    mid = low + low // 2
    return torch.where(span <= low, low, torch.where(span <= mid, mid, 2 * low))


def size_groups(span_h: Tensor, span_w: Tensor) -> list[tuple[Tensor, int, int]]:
    """Split RoIs into groups of similar bag sides: `(indices, padded_h, padded_w)` per group.

    Padding every bag to the largest RoI's would make small RoIs pay for large ones (tens of
    times the work on a Faster R-CNN mix of sizes); with these groups a bag is at most 1.5x
    larger than needed along each side, and a typical batch forms a handful of groups.

    Args:
        span_h: `LongTensor[K]` bag height each RoI needs.
        span_w: `LongTensor[K]` bag width each RoI needs.

    Returns:
        One `(indices, padded_h, padded_w)` per group: the RoIs of the group (`LongTensor[k]`)
        and the bag sides they are padded to.
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


def reduce_bags(table: Tensor, index: Tensor, weight: Tensor | None, mode: str) -> Tensor:
    """Weighted sum (`embedding_bag`) or maximum over bags of rows of `table`, in blocks of
    `_INDEX_BUDGET` entries.

    Args:
        table: `Tensor[R, C]` feature rows (the channel-last map).
        index: `LongTensor[N, S]` rows of each bag.
        weight: `Tensor[N, S]` weight of each entry for `"sum"`; None for `"max"`.
        mode: `"sum"` or `"max"`.

    Returns:
        `Tensor[N, C]`, one reduced row per bag.
    """
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


def concat_in_roi_order(parts: list[Tensor], groups: list[tuple[Tensor, int, int]]) -> Tensor:
    """Concatenate the groups' `Tensor[k, ph, pw, C]` results back into input RoI order.

    (One `index_select` of the concatenation: its backward is one `index_add`, where in-place
    writes of each group into an output tensor would copy the whole gradient once per group.)

    Args:
        parts: one `Tensor[k, ph, pw, C]` per group, in the order of `groups`.
        groups: the groups from `size_groups`.

    Returns:
        `Tensor[K, ph, pw, C]` in input RoI order.
    """
    if len(parts) == 1:
        return parts[0]  # one group holds every RoI, in input order
    order = torch.cat([members for members, _, _ in groups])
    return torch.cat(parts).index_select(0, torch.argsort(order))
