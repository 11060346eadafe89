"""Exact IoU of rotated boxes: BEV (`box_iou_bev`) and 3D (`box_iou_3d`), pairwise or aligned.

Geometry. The intersection of two rectangles is computed exactly (up to float64 rounding) by
clipping rectangle `a` with the four half-planes of rectangle `b` (Sutherland-Hodgman), in
`b`'s own frame where those half-planes are `|x| <= x_size/2`, `|y| <= y_size/2`. All pairs
are clipped at once: every polygon is a fixed-size tensor of vertices, and a clipping stage
maps `K` vertices to `K + 1` (a convex polygon gains at most one vertex per half-plane), so four
stages end with 8 vertices per pair and the area is the shoelace sum. Vertices cut away are not
removed but replaced by points on the clipping line (collinear points add zero area), so no
pair needs compaction or sorting, and identical, touching, nested and zero-size boxes need no
special case: touching boxes give a polygon flattened onto a line (area 0), a zero-size box
clips everything onto a line or point (area 0).

Pairwise IoU first discards pairs whose circumscribed circles (and, in 3D, height ranges) do
not overlap -- their IoU is exactly 0 -- and clips only the remaining candidates, in chunks.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pc3d.ops._inputs import as_z_up_boxes, bev_view, check_same_system

# Pairs clipped per chunk: about 2 kB of float64 temporaries each, so ~130 MB at a time.
_PAIR_CHUNK = 65_536
# Entries of the dense candidate mask built per chunk of rows in the pairwise functions.
_MASK_CHUNK = 8_000_000
# The four half-planes of box b in its own frame: (coordinate, sign) meaning sign * v[coord] <= h.
_HALF_PLANES = ((0, 1.0), (0, -1.0), (1, 1.0), (1, -1.0))


def _clip_stage(poly: Tensor, coord: int, sign: float, half: Tensor) -> tuple[Tensor, Tensor]:
    """Clip convex polygons `Tensor[P, K, 2]` by `sign * v[coord] <= half` -> `Tensor[P, K+1, 2]`
    and `BoolTensor[P]`, False where no vertex was inside (the intersection is empty).

    Each vertex emits one point: itself when inside; when outside, the crossing on the edge it
    shares with an inside neighbour, or (when both neighbours are outside too) its projection
    onto the clipping line. An outside vertex between two inside ones emits both crossings; a
    convex polygon has at most one such vertex, placed by a gather (the most outside one wins
    when rounding produces more, which only moves points by rounding error).
    """
    num_pairs, k = poly.shape[0], poly.shape[1]
    dist = sign * poly[..., coord] - half[:, None]  # [P, K], > 0 is outside
    inside = dist <= 0
    nxt_poly = torch.roll(poly, -1, dims=1)
    nxt_dist = torch.roll(dist, -1, dims=1)
    # Crossing of edge i -> i+1 with the line; t is a convex weight, so the point stays on the
    # edge even for nearly parallel edges. Unused entries (no sign change) are harmless.
    denom = dist - nxt_dist
    t = torch.where(denom != 0, dist / torch.where(denom != 0, denom, 1.0), 0.0).clamp_(0.0, 1.0)
    crossing = poly + t[..., None] * (nxt_poly - poly)  # [P, K, 2] on edge i -> i+1
    prev_crossing = torch.roll(crossing, 1, dims=1)  # on edge i-1 -> i
    prev_in = torch.roll(inside, 1, dims=1)
    next_in = torch.roll(inside, -1, dims=1)
    projected = poly.clone()
    projected[..., coord] = sign * half[:, None]
    first = torch.where(
        inside[..., None],
        poly,
        torch.where(prev_in[..., None], prev_crossing, torch.where(next_in[..., None], crossing, projected)),
    )
    isolated = ~inside & prev_in & next_in
    # The vertex that emits a second point (K means none): the most outside isolated vertex.
    score = torch.where(isolated, dist, -1.0)
    best, iso = score.max(dim=1)
    iso = torch.where(best >= 0, iso, k)  # [P]
    slots = torch.arange(k + 1, device=poly.device)
    src = torch.where(slots[None, :] <= iso[:, None], slots[None, :], slots[None, :] - 1).clamp_(max=k - 1)
    out = torch.gather(first, 1, src[..., None].expand(num_pairs, k + 1, 2))
    second = torch.gather(crossing, 1, iso.clamp(max=k - 1)[:, None, None].expand(num_pairs, 1, 2))
    is_second = (slots[None, :] == iso[:, None] + 1)[..., None]
    return torch.where(is_second, second, out), inside.any(dim=1)


def _intersection_chunk(a: Tensor, b: Tensor) -> Tensor:
    # Corners of a in b's frame: rotate the centre offset by -yaw_b and the corners by the
    # relative yaw; working relative to b's centre keeps the coordinates small.
    rel = a[:, 4] - b[:, 4]
    cos_r, sin_r = torch.cos(rel), torch.sin(rel)
    cos_b, sin_b = torch.cos(b[:, 4]), torch.sin(b[:, 4])
    dx, dy = a[:, 0] - b[:, 0], a[:, 1] - b[:, 1]
    cx = dx * cos_b + dy * sin_b
    cy = -dx * sin_b + dy * cos_b
    hx, hy = a[:, 2] / 2, a[:, 3] / 2
    # Counter-clockwise corner order: (+,+), (-,+), (-,-), (+,-).
    ux = torch.stack([hx, -hx, -hx, hx], dim=1)
    uy = torch.stack([hy, hy, -hy, -hy], dim=1)
    poly = torch.stack(
        [cx[:, None] + ux * cos_r[:, None] - uy * sin_r[:, None], cy[:, None] + ux * sin_r[:, None] + uy * cos_r[:, None]],
        dim=-1,
    )  # [P, 4, 2]
    halves = (b[:, 2] / 2, b[:, 3] / 2)
    nonempty = torch.ones(a.shape[0], dtype=torch.bool, device=a.device)
    for coord, sign in _HALF_PLANES:
        poly, touched = _clip_stage(poly, coord, sign, halves[coord])
        nonempty &= touched
    # Shoelace relative to the first vertex (smaller products, less rounding). A polygon pushed
    # entirely outside a half-plane is empty: exactly 0, not the rounding noise of a flat polygon.
    x = poly[..., 0] - poly[:, :1, 0]
    y = poly[..., 1] - poly[:, :1, 1]
    area = 0.5 * (x * torch.roll(y, -1, dims=1) - torch.roll(x, -1, dims=1) * y).sum(dim=1)
    return torch.where(nonempty, area.clamp_(min=0.0), 0.0)


def bev_intersection_area(a: Tensor, b: Tensor) -> Tensor:
    """Area of overlap of aligned pairs of BEV boxes.

    Args:
        a, b: `Tensor[P, 5]` rows `x, y, x_size, y_size, yaw` (yaw counter-clockwise); computed in
            float64 whatever their dtype.

    Returns:
        `Tensor[P]` float64 intersection areas.
    """
    a, b = a.double(), b.double()
    if a.shape[0] <= _PAIR_CHUNK:
        return _intersection_chunk(a, b)
    return torch.cat(
        [_intersection_chunk(a[s : s + _PAIR_CHUNK], b[s : s + _PAIR_CHUNK]) for s in range(0, a.shape[0], _PAIR_CHUNK)]
    )


def _ratio(inter: Tensor, size_a: Tensor, size_b: Tensor) -> Tensor:
    union = size_a + size_b - inter
    # Two empty boxes have union 0; their IoU is defined as 0 (nothing overlaps).
    return torch.where(union > 0, inter / torch.where(union > 0, union, 1.0), 0.0).clamp_(0.0, 1.0)


def _heights(boxes: Tensor) -> tuple[Tensor, Tensor]:
    bottom = boxes[:, 2].double()
    return bottom, bottom + boxes[:, 5].double()


def _candidate_pairs(bev_a: Tensor, bev_b: Tensor, z_a: tuple[Tensor, Tensor] | None, z_b: tuple[Tensor, Tensor] | None) -> tuple[Tensor, Tensor]:
    """Index pairs `(i, j)` whose circumscribed circles (and height ranges) overlap."""
    rad_a = 0.5 * torch.hypot(bev_a[:, 2], bev_a[:, 3])
    rad_b = 0.5 * torch.hypot(bev_b[:, 2], bev_b[:, 3])
    step = max(1, _MASK_CHUNK // max(1, bev_b.shape[0]))
    rows, cols = [], []
    for s in range(0, bev_a.shape[0], step):
        d2 = torch.cdist(bev_a[s : s + step, :2], bev_b[:, :2]).square_()
        reach = rad_a[s : s + step, None] + rad_b[None, :]
        # A tiny slack keeps pairs whose circles touch up to rounding (their IoU is ~0 anyway).
        mask = d2 <= (reach * (1 + 1e-9) + 1e-12).square_()
        if z_a is not None and z_b is not None:
            mask &= (z_a[0][s : s + step, None] <= z_b[1][None, :]) & (z_b[0][None, :] <= z_a[1][s : s + step, None])
        i, j = mask.nonzero(as_tuple=True)
        rows.append(i + s)
        cols.append(j)
    return torch.cat(rows), torch.cat(cols)


def _iou(a: object, b: object, aligned: bool, three_d: bool) -> Tensor:
    check_same_system(a, b)
    ta = as_z_up_boxes(a, "a", allow_bev=not three_d)
    tb = as_z_up_boxes(b, "b", allow_bev=not three_d)
    dtype = ta.dtype if ta.dtype == tb.dtype else torch.promote_types(ta.dtype, tb.dtype)
    tb = tb.to(ta.device)
    bev_a, bev_b = bev_view(ta), bev_view(tb)
    area_a, area_b = bev_a[:, 2] * bev_a[:, 3], bev_b[:, 2] * bev_b[:, 3]
    z_a = _heights(ta) if three_d else None
    z_b = _heights(tb) if three_d else None
    size_a = area_a * ta[:, 5].double() if three_d else area_a
    size_b = area_b * tb[:, 5].double() if three_d else area_b

    def overlap(i: Tensor | None, j: Tensor | None) -> Tensor:
        pa = bev_a if i is None else bev_a[i]
        pb = bev_b if j is None else bev_b[j]
        inter = bev_intersection_area(pa, pb)
        if three_d:
            lo = torch.maximum(z_a[0] if i is None else z_a[0][i], z_b[0] if j is None else z_b[0][j])
            hi = torch.minimum(z_a[1] if i is None else z_a[1][i], z_b[1] if j is None else z_b[1][j])
            inter = inter * (hi - lo).clamp_(min=0.0)
        return inter

    if aligned:
        if ta.shape[0] != tb.shape[0]:
            from pc3d.errors import ShapeError

            raise ShapeError(f"aligned IoU needs as many boxes in a as in b, got {ta.shape[0]} and {tb.shape[0]}")
        return _ratio(overlap(None, None), size_a, size_b).to(dtype)
    out = torch.zeros(ta.shape[0], tb.shape[0], dtype=torch.float64, device=ta.device)
    if ta.shape[0] == 0 or tb.shape[0] == 0:
        return out.to(dtype)
    i, j = _candidate_pairs(bev_a, bev_b, z_a, z_b)
    if i.numel():
        out[i, j] = _ratio(overlap(i, j), size_a[i], size_b[j])
    return out.to(dtype)


def box_iou_bev(a: object, b: object, aligned: bool = False) -> Tensor:
    """IoU of rotated boxes in the bird's-eye view (their ground-plane rectangles).

    Args:
        a: `Boxes3D` of one system, `Tensor[N, 7+C]` read as LiDAR boxes, or `Tensor[N, 5]` BEV
            boxes `x, y, x_size, y_size, yaw`. Camera boxes use their x-z plane.
        b: the same kind, `M` boxes (`M == N` when `aligned`).
        aligned: IoU of `a[k]` with `b[k]` instead of all pairs.

    Returns:
        `Tensor[N, M]` (or `Tensor[N]` when aligned) in the boxes' dtype; 0 for disjoint boxes
        and for pairs of zero-area boxes.

    Raises:
        ShapeError: wrong shapes; FormatError: NaN/inf, negative sizes or mixed systems.
    """
    return _iou(a, b, aligned, three_d=False)


def box_iou_3d(a: object, b: object, aligned: bool = False) -> Tensor:
    """3D IoU of rotated boxes: BEV intersection times height overlap over the union volume.

    Args:
        a: `Boxes3D` of one system or `Tensor[N, 7+C]` read as LiDAR boxes (bottom-centre z).
            Camera boxes use their x-z plane and their vertical axis (-y).
        b: the same kind, `M` boxes (`M == N` when `aligned`).
        aligned: IoU of `a[k]` with `b[k]` instead of all pairs.

    Returns:
        `Tensor[N, M]` (or `Tensor[N]` when aligned) in the boxes' dtype.
    """
    return _iou(a, b, aligned, three_d=True)
