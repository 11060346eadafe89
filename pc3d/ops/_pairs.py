"""Sparse machinery behind the NMS functions: the greedy sweep without a loop over boxes.

Greedy NMS walks boxes by rank (0 is the best) and keeps a box unless a kept, higher-ranked box
suppresses it. Only boxes whose discs (circumscribed circles, or the circle of circle NMS)
overlap can suppress each other, so everything works on a uniform grid with cells as wide as
the largest reach (two overlapping discs lie in the same or neighbouring cells).

`greedy_nms` decides boxes in rounds. A box is *ready* when no higher-ranked undecided box can
overlap it; ready boxes are kept (all their possible suppressors are decided and did not
suppress them), and then every undecided lower-ranked box overlapping a newly kept box is tested
with the caller's exact predicate -- the same tests the sequential sweep makes. Readiness is
first judged cheaply per grid window (the box is the best undecided one in its 3x3 cells), which
thins dense clusters (the detector-output case: the best box of each cluster removes most of it)
without ever listing all overlapping pairs; once few candidate pairs remain, the exact pairs are
listed and resolved (`greedy_keep`). Both paths give exactly the sequential result.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

# Candidate pairs expanded at a time (int64 temporaries of this length).
_PAIR_BUDGET = 4_000_000
# Cells per axis at most, so that grid keys fit in int64 whatever the coordinates.
_MAX_CELLS = 1 << 20
# List exact pairs once the candidates per undecided box drop below this (or in total below
# _EXACT_MIN); until then, thin clusters with window rounds, whose cost is O(undecided boxes).
_EXACT_PER_BOX = 16
_EXACT_MIN = 1 << 16
# Relative slack so that discs touching up to rounding are still paired (their IoU is ~0).
_SLACK = 1e-9

UNDECIDED, KEPT, REMOVED = 0, 1, 2

Predicate = Callable[[Tensor, Tensor], Tensor]


class _Grid:
    """Cell keys of all boxes; neighbouring cells differ by fixed key offsets."""

    def __init__(self, xy: Tensor, radius: Tensor, groups: Tensor | None) -> None:
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


def _expand(counts: Tensor) -> tuple[Tensor, Tensor]:
    """For ranges of lengths `counts`: the range of each element and its offset inside it."""
    owner = torch.repeat_interleave(torch.arange(counts.numel(), device=counts.device), counts)
    starts = torch.cumsum(counts, 0) - counts
    return owner, torch.arange(owner.numel(), device=counts.device) - starts.index_select(0, owner)


def _chunks(counts: Tensor) -> list[tuple[int, int]]:
    """Split a list of range lengths into consecutive slices expanding to <= _PAIR_BUDGET each."""
    ends = torch.cumsum(counts, 0)
    out, start = [], 0
    while start < counts.numel():
        base = int(ends[start - 1].item()) if start else 0
        stop = int(torch.searchsorted(ends, torch.tensor([base + _PAIR_BUDGET], device=ends.device), right=True).item())
        stop = max(stop, start + 1)
        out.append((start, stop))
        start = stop
    return out


def _near(xy: Tensor, radius: Tensor, i: Tensor, j: Tensor) -> Tensor:
    reach = radius.index_select(0, i) + radius.index_select(0, j)
    d2 = (xy.index_select(0, i) - xy.index_select(0, j)).square_().sum(dim=1)
    return d2 <= (reach * (1 + _SLACK) + 1e-12).square_()


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
    for start, stop in _chunks(counts):
        q, within = _expand(counts[start:stop])
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
        src, dst: `LongTensor[E]` pairs with `src < dst`: box `src` may suppress box `dst`.
            Pairs that are not listed must never suppress.
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


def greedy_nms(xy: Tensor, radius: Tensor, groups: Tensor | None, suppresses: Predicate) -> Tensor:
    """Greedy NMS decision for boxes already sorted best first.

    Args:
        xy: `Tensor[N, 2]` disc centres; radius: `Tensor[N]` disc radii (float64). Boxes whose
            discs do not overlap must never suppress each other.
        groups: optional `LongTensor[N]` (>= 0): boxes of different groups never interact.
        suppresses: `f(i, j) -> BoolTensor[K]`: does box `i` suppress box `j` (`i < j`)?

    Returns:
        `BoolTensor[N]`: True for kept boxes.
    """
    n = xy.shape[0]
    device = xy.device
    state = torch.zeros(n, dtype=torch.int8, device=device)
    if n == 0:
        return state.bool()
    grid = _Grid(xy, radius, groups)
    undecided = torch.arange(n, device=device)
    while undecided.numel():
        keys = grid.key.index_select(0, undecided)
        sorted_key, order = torch.sort(keys, stable=True)
        # Candidate pairs if listed now: the boxes in each box's own and half-neighbour cells.
        half_q = (keys[:, None] + grid.half[None, :]).reshape(-1)
        raw = int((torch.searchsorted(sorted_key, half_q, side="right") - torch.searchsorted(sorted_key, half_q, side="left")).sum().item())
        if raw <= max(_EXACT_PER_BOX * undecided.numel(), _EXACT_MIN):
            src, dst = _pairs_among(undecided, grid, xy, radius)
            # Ranks inside the undecided set (it is sorted, so searchsorted maps back).
            keep = greedy_keep(
                undecided.numel(),
                torch.searchsorted(undecided, src),
                torch.searchsorted(undecided, dst),
                lambda i, j: suppresses(undecided.index_select(0, i), undecided.index_select(0, j)),
            )
            state[undecided[keep]] = KEPT
            break
        # Window round: the best undecided box of each cell; a box is ready when it is the best
        # in its 3x3 window (any overlapping box lies in that window).
        sorted_members = undecided.index_select(0, order)
        is_first = torch.ones_like(sorted_key, dtype=torch.bool)
        is_first[1:] = sorted_key[1:] != sorted_key[:-1]
        cell_keys = sorted_key[is_first]
        cell_best = sorted_members[is_first]  # members are ascending within a cell (stable sort)
        window_q = (keys[:, None] + grid.window[None, :]).reshape(-1)
        pos = torch.searchsorted(cell_keys, window_q).clamp_(max=cell_keys.numel() - 1)
        found = cell_keys.index_select(0, pos) == window_q
        best = torch.where(found, cell_best.index_select(0, pos), n).view(-1, grid.window.numel()).amin(dim=1)
        ready = best == undecided
        kept = undecided[ready]
        state[kept] = KEPT
        # Test every undecided lower-ranked box in the windows of the newly kept boxes.
        kq = (grid.key.index_select(0, kept)[:, None] + grid.window[None, :]).reshape(-1)
        first = torch.searchsorted(sorted_key, kq, side="left")
        counts = torch.searchsorted(sorted_key, kq, side="right") - first
        owner_box = kept.repeat_interleave(grid.window.numel())
        for start, stop in _chunks(counts):
            q, within = _expand(counts[start:stop])
            q = q + start
            i = owner_box.index_select(0, q)
            j = sorted_members.index_select(0, first.index_select(0, q) + within)
            lower = j > i
            i, j = i[lower], j[lower]
            near = _near(xy, radius, i, j)
            i, j = i[near], j[near]
            if i.numel():
                state[j[suppresses(i, j)]] = REMOVED
        undecided = undecided[state.index_select(0, undecided) == UNDECIDED]
    return state == KEPT
