"""Sparse machinery behind the NMS functions: the greedy sweep without a loop over boxes.

Greedy NMS walks boxes by rank (0 is the best) and keeps a box unless a kept, higher-ranked box
suppresses it. Only boxes whose discs (circumscribed circles, or the circle of circle NMS)
overlap can suppress each other, so everything works on a uniform grid with cells as wide as
the largest reach (two overlapping discs lie in the same or neighbouring cells), and only pairs
found there are ever tested.

`greedy_keep` resolves the sweep for a set of boxes given their overlapping pairs, in rounds:
an undecided box with no undecided higher-ranked neighbour is kept, and the pairs leaving newly
kept boxes are tested with the caller's exact predicate -- the same tests the sequential sweep
makes. `greedy_nms` applies it to blocks of the best undecided boxes, and lets each block's kept
boxes thin out the rest before the next block, so dense clusters (detector output: hundreds of
boxes per object) never have all their pairs listed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

# Candidate pairs expanded at a time (int64 temporaries of this length).
_PAIR_BUDGET = 4_000_000
# Cells per axis at most, so that grid keys fit in int64 whatever the coordinates.
_MAX_CELLS = 1 << 20
# Block sizes of `greedy_nms` (boxes decided per step) and when to grow or shrink them (pairs
# listed per box in the block).
_FIRST_BLOCK = 1024
_MIN_BLOCK = 256
_MAX_BLOCK = 1 << 20
_GROW_BELOW = 8
_SHRINK_ABOVE = 64
# Relative slack so that discs touching up to rounding are still paired (their IoU is ~0).
_SLACK = 1e-9

UNDECIDED, KEPT, REMOVED = 0, 1, 2

Predicate = Callable[[Tensor, Tensor], Tensor]


class _Grid:
    """Cell keys of all boxes; neighbouring cells differ by fixed key offsets."""

    def __init__(self, xy: Tensor, radius: Tensor, groups: Tensor | None = None) -> None:
        lo = xy.min(dim=0).values
        extent = float((xy.max(dim=0).values - lo).max().item())
        cell = max(2.0 * float(radius.max().item()), extent / _MAX_CELLS, 1e-12)
        # +1 so that the neighbours of cell 0 stay >= 0; +2 columns of padding so that a
        # neighbour offset never wraps into another row (or another group).
        cells = torch.floor((xy - lo) / cell).long() + 1
        ncy = int(cells[:, 1].max().item()) + 2
        ncx = int(cells[:, 0].max().item()) + 2
        self.key = cells[:, 0] * ncy + cells[:, 1]
        if groups is not None:
            self.key = self.key + groups.long() * (ncx * ncy)
        dev = xy.device
        self.window = torch.tensor([dx * ncy + dy for dx in (-1, 0, 1) for dy in (-1, 0, 1)], device=dev)
        # Own cell plus half of the 8 neighbours: each unordered pair of cells once.
        self.half = torch.tensor([0, ncy - 1, ncy, ncy + 1, 1], device=dev)


def expand_ranges(counts: Tensor) -> tuple[Tensor, Tensor]:
    """Expand ranges of lengths `counts` (`LongTensor[R]`) into their elements.

    Args:
        counts: `LongTensor[R]` range lengths (>= 0).

    Returns:
        `(owner, offset)`, two `LongTensor[sum(counts)]`: the range of each element and its
        offset inside that range.
    """
    owner = torch.repeat_interleave(torch.arange(counts.numel(), device=counts.device), counts)
    starts = torch.cumsum(counts, 0) - counts
    return owner, torch.arange(owner.numel(), device=counts.device) - starts.index_select(0, owner)


def range_chunks(counts: Tensor, budget: int = _PAIR_BUDGET) -> list[tuple[int, int]]:
    """Split range lengths into consecutive slices `(start, stop)` of at most `budget` elements.

    Args:
        counts: `LongTensor[R]` lengths of consecutive ranges.
        budget: most elements a slice expands to (a single longer range gets a slice of its own).

    Returns:
        `(start, stop)` slices of `counts` covering it in order.
    """
    ends = torch.cumsum(counts, 0)
    out, start = [], 0
    while start < counts.numel():
        base = int(ends[start - 1].item()) if start else 0
        stop = int(
            torch.searchsorted(ends, torch.tensor([base + budget], device=ends.device), right=True).item()
        )
        stop = max(stop, start + 1)
        out.append((start, stop))
        start = stop
    return out


def _near(xy: Tensor, radius: Tensor, i: Tensor, j: Tensor) -> Tensor:
    reach = radius.index_select(0, i) + radius.index_select(0, j)
    d2 = (xy.index_select(0, i) - xy.index_select(0, j)).square_().sum(dim=1)
    return d2 <= (reach * (1 + _SLACK) + 1e-12).square_()


def _cross_queries(
    xy_a: Tensor, radius_a: Tensor, xy_b: Tensor, radius_b: Tensor
) -> tuple[_Grid, Tensor, Tensor, Tensor]:
    """Grid, b's order by cell, and for each (box of a, neighbour cell) the range of b in it."""
    n = xy_a.shape[0]
    grid = _Grid(torch.cat([xy_a, xy_b]), torch.cat([radius_a, radius_b]))
    key_a, key_b = grid.key[:n], grid.key[n:]
    sorted_key, order = torch.sort(key_b)
    queries = (key_a[:, None] + grid.window[None, :]).reshape(-1)
    first = torch.searchsorted(sorted_key, queries, side="left")
    counts = torch.searchsorted(sorted_key, queries, side="right") - first
    return grid, order, first, counts


def cross_grid_count(xy_a: Tensor, radius_a: Tensor, xy_b: Tensor, radius_b: Tensor) -> int:
    """How many pairs `cross_pairs` would test (same cell or neighbouring cells), without
    listing them: an upper bound of its result, cheap to get (one sort of b). Arguments as
    `cross_pairs`."""
    return int(_cross_queries(xy_a, radius_a, xy_b, radius_b)[3].sum().item())


def cross_pairs(xy_a: Tensor, radius_a: Tensor, xy_b: Tensor, radius_b: Tensor) -> tuple[Tensor, Tensor]:
    """All `(i, j)` with disc `i` of set a overlapping disc `j` of set b, in no particular order.

    Args:
        xy_a: `Tensor[N, 2]` disc centres of set a (float64); N > 0.
        radius_a: `Tensor[N]` their radii.
        xy_b: `Tensor[M, 2]` disc centres of set b; M > 0.
        radius_b: `Tensor[M]` their radii.

    Returns:
        `(i, j)`, two `LongTensor[P]` of indices into a and b.
    """
    grid, order, first, counts = _cross_queries(xy_a, radius_a, xy_b, radius_b)
    rows, cols = [], []
    for start, stop in range_chunks(counts):
        q, within = expand_ranges(counts[start:stop])
        q = q + start
        i = torch.div(q, grid.window.numel(), rounding_mode="floor")
        j = order.index_select(0, first.index_select(0, q) + within)
        reach = radius_a.index_select(0, i) + radius_b.index_select(0, j)
        d2 = (xy_a.index_select(0, i) - xy_b.index_select(0, j)).square_().sum(dim=1)
        near = d2 <= (reach * (1 + _SLACK) + 1e-12).square_()
        rows.append(i[near])
        cols.append(j[near])
    if not rows:
        empty = torch.zeros(0, dtype=torch.long, device=xy_a.device)
        return empty, empty
    return torch.cat(rows), torch.cat(cols)


def _pairs_among(members: Tensor, grid: _Grid, xy: Tensor, radius: Tensor) -> tuple[Tensor, Tensor]:
    """Overlapping pairs `(i, j)`, `i < j`, among the box indices `members`."""
    keys = grid.key.index_select(0, members)
    sorted_key, order = torch.sort(keys, stable=True)
    sorted_members = members.index_select(0, order)
    queries = (keys[:, None] + grid.half[None, :]).reshape(-1)
    first = torch.searchsorted(sorted_key, queries, side="left")
    counts = torch.searchsorted(sorted_key, queries, side="right") - first
    own_cell = (torch.arange(queries.numel(), device=xy.device) % grid.half.numel()) == 0
    owner_box = members.repeat_interleave(grid.half.numel())
    rows, cols = [], []
    for start, stop in range_chunks(counts):
        q, within = expand_ranges(counts[start:stop])
        q = q + start
        i = owner_box.index_select(0, q)
        j = sorted_members.index_select(0, first.index_select(0, q) + within)
        # In its own cell a box meets itself and every cell-mate twice: keep i < j there.
        keep = torch.where(own_cell.index_select(0, q), i < j, i != j)
        i, j = i[keep], j[keep]
        near = _near(xy, radius, i, j)
        i, j = i[near], j[near]
        rows.append(torch.minimum(i, j))
        cols.append(torch.maximum(i, j))
    if not rows:
        empty = members.new_zeros(0)
        return empty, empty
    return torch.cat(rows), torch.cat(cols)


def greedy_keep(num: int, src: Tensor, dst: Tensor, suppresses: Predicate | None) -> Tensor:
    """The greedy decision for boxes ranked `0..num-1` given all their overlapping pairs.

    Args:
        num: number of boxes.
        src: `LongTensor[E]` first box of each pair, which may suppress the second.
        dst: `LongTensor[E]` second box of each pair (`src < dst`). Pairs that are not listed
            must never suppress.
        suppresses: `f(src_idx, dst_idx) -> BoolTensor[K]`, called only on pairs leaving kept
            boxes; None means every listed pair suppresses.

    Returns:
        `BoolTensor[num]`: True for kept boxes, exactly what the sequential sweep keeps.
    """
    state = torch.zeros(num, dtype=torch.int8, device=src.device)
    while True:
        # Kept: undecided boxes all of whose possible suppressors are decided (no pair left).
        pending = torch.bincount(dst, minlength=num)
        state[(state == UNDECIDED) & (pending == 0)] = KEPT
        from_kept = state.index_select(0, src) == KEPT
        if bool(from_kept.any()):
            e_src, e_dst = src[from_kept], dst[from_kept]
            hit = torch.ones_like(e_src, dtype=torch.bool) if suppresses is None else suppresses(e_src, e_dst)
            state[e_dst[hit]] = REMOVED
        alive = (state.index_select(0, src) == UNDECIDED) & (state.index_select(0, dst) == UNDECIDED)
        src, dst = src[alive], dst[alive]
        if src.numel() == 0:
            state[state == UNDECIDED] = KEPT
            return state == KEPT


def _suppress_below(
    kept: Tensor, lower: Tensor, grid: _Grid, xy: Tensor, radius: Tensor, suppresses: Predicate, state: Tensor
) -> None:
    """Mark REMOVED every box of `lower` (all ranked below `kept`) that a kept box suppresses."""
    keys = grid.key.index_select(0, lower)
    sorted_key, order = torch.sort(keys)
    sorted_lower = lower.index_select(0, order)
    queries = (grid.key.index_select(0, kept)[:, None] + grid.window[None, :]).reshape(-1)
    first = torch.searchsorted(sorted_key, queries, side="left")
    counts = torch.searchsorted(sorted_key, queries, side="right") - first
    owner = kept.repeat_interleave(grid.window.numel())
    for start, stop in range_chunks(counts):
        q, within = expand_ranges(counts[start:stop])
        q = q + start
        i = owner.index_select(0, q)
        j = sorted_lower.index_select(0, first.index_select(0, q) + within)
        near = _near(xy, radius, i, j)
        i, j = i[near], j[near]
        if i.numel():
            state[j[suppresses(i, j)]] = REMOVED


def _on(members: Tensor, suppresses: Predicate) -> Predicate:
    """`suppresses` for pairs given as positions in `members`."""
    return lambda i, j: suppresses(members.index_select(0, i), members.index_select(0, j))


def greedy_nms(xy: Tensor, radius: Tensor, groups: Tensor | None, suppresses: Predicate) -> Tensor:
    """Greedy NMS decision for boxes already sorted best first.

    Works through the ranking in blocks of the best undecided boxes: inside a block the exact
    overlapping pairs are listed and resolved by `greedy_keep` (every higher-ranked box is
    already decided), then the block's kept boxes remove what they suppress further down, so
    the next block starts from a much thinner set. The block grows while its pair lists stay
    short and shrinks when they get long (dense clusters), bounding the work per block.

    Args:
        xy: `Tensor[N, 2]` disc centres (float64).
        radius: `Tensor[N]` disc radii. Boxes whose discs do not overlap must never suppress
            each other.
        groups: optional `LongTensor[N]` (>= 0): boxes of different groups never interact.
        suppresses: `f(i, j) -> BoolTensor[K]`: does box `i` suppress box `j` (`i < j`)?

    Returns:
        `BoolTensor[N]`: True for kept boxes.
    """
    n = xy.shape[0]
    state = torch.zeros(n, dtype=torch.int8, device=xy.device)
    if n == 0:
        return state.bool()
    grid = _Grid(xy, radius, groups)
    undecided = torch.arange(n, device=xy.device)
    block = _FIRST_BLOCK
    while undecided.numel():
        head, tail = undecided[:block], undecided[block:]
        src, dst = _pairs_among(head, grid, xy, radius)
        keep = greedy_keep(
            head.numel(), torch.searchsorted(head, src), torch.searchsorted(head, dst), _on(head, suppresses)
        )
        kept = head[keep]
        state[kept] = KEPT
        state[head[~keep]] = REMOVED
        if tail.numel() and kept.numel():
            _suppress_below(kept, tail, grid, xy, radius, suppresses, state)
        undecided = tail[state.index_select(0, tail) == UNDECIDED]
        # Few pairs per box: take more boxes next time; many (dense clusters): fewer.
        if src.numel() < _GROW_BELOW * head.numel():
            block = min(2 * block, _MAX_BLOCK)
        elif src.numel() > _SHRINK_ABOVE * head.numel():
            block = max(block // 2, _MIN_BLOCK)
    return state == KEPT
