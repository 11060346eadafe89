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
from pc3d.ops._pairs import cross_pairs

# Pairs clipped per chunk: small enough for the ~40 temporaries to stay in cache.
_PAIR_CHUNK = 16_384


def _clip_stage(clip: Tensor, other: Tensor, sign: float, half: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Clip convex polygons by the half-plane `sign * clip <= half` (axis-aligned in b's frame).

    Args:
        clip, other: `Tensor[P, K]` vertex coordinates along the clipping axis and the other one.
        sign: +1 or -1; half: `Tensor[P]` half-size of box b along the clipping axis.

    Returns:
        `clip, other` of the clipped polygons, `Tensor[P, K+1]`, and `Tensor[P]` (1.0, or 0.0
        where no vertex was inside: the intersection is empty).

    Each vertex emits one point: itself when inside; when outside, the crossing on the edge it
    shares with an inside neighbour, or (both neighbours outside too) its projection onto the
    line. Every emitted point that is not an inside vertex lies exactly on the line, so only its
    other coordinate is interpolated. An outside vertex between two inside ones emits both
    crossings; a convex polygon has at most one such vertex, inserted with a gather (the most
    outside one wins when rounding produces more, which only moves points by rounding error).

    Choices are made with `torch.lerp` and 0/1 weights, which returns either end exactly and is
    several times faster than `torch.where` on the CPU; every operand is kept finite for it.
    """
    k = clip.shape[1]
    line = (sign * half)[:, None]  # [P, 1] the line's coordinate
    dist = sign * clip - half[:, None]  # [P, K], > 0 is outside
    inside = (dist <= 0).to(dist.dtype)  # 1.0 / 0.0
    prev_in = torch.roll(inside, 1, dims=1)
    next_in = torch.roll(inside, -1, dims=1)
    # Other coordinate where edge i -> i+1 crosses the line: t = d_i / (d_i - d_i+1) lies in
    # [0, 1] whenever the ends are on opposite sides (the only entries used), so the point stays
    # on the edge even for nearly parallel edges. Equal distances (unused) divide by 1 instead.
    denom = dist - torch.roll(dist, -1, dims=1)
    t = dist / (denom + (denom == 0).to(dist.dtype))
    crossing = torch.addcmul(other, t, torch.roll(other, -1, dims=1) - other)
    first_clip = torch.lerp(line.expand_as(clip), clip, inside)
    first_other = torch.lerp(other, crossing, next_in)
    first_other = torch.lerp(first_other, torch.roll(crossing, 1, dims=1), prev_in)
    first_other = torch.lerp(first_other, other, inside)
    isolated = (1 - inside) * prev_in * next_in
    best, iso = torch.addcmul(isolated - 1, dist, isolated).max(dim=1)  # dist where isolated, else -1
    iso = (iso + (best < 0).long() * (k - iso))[:, None]  # [P, 1]; K means no second point
    slots = torch.arange(k + 1, device=clip.device)[None, :]
    src = (slots - (slots > iso).long()).clamp_(max=k - 1)
    is_second = (slots == iso + 1).to(dist.dtype)
    out_clip = torch.lerp(torch.gather(first_clip, 1, src), line.expand(-1, k + 1), is_second)
    second = torch.gather(crossing, 1, iso.clamp(max=k - 1)).expand(-1, k + 1)
    out_other = torch.lerp(torch.gather(first_other, 1, src), second, is_second)
    return out_clip, out_other, inside.amax(dim=1)


def _intersection_chunk(a: Tensor, b: Tensor) -> Tensor:
    # Corners of a in b's frame: rotate the centre offset by -yaw_b and the corners by the
    # relative yaw; working relative to b's centre keeps the coordinates small.
    rel = a[:, 4] - b[:, 4]
    cos_r, sin_r = torch.cos(rel)[:, None], torch.sin(rel)[:, None]
    cos_b, sin_b = torch.cos(b[:, 4]), torch.sin(b[:, 4])
    dx, dy = a[:, 0] - b[:, 0], a[:, 1] - b[:, 1]
    cx = (dx * cos_b + dy * sin_b)[:, None]
    cy = (-dx * sin_b + dy * cos_b)[:, None]
    hx, hy = a[:, 2] / 2, a[:, 3] / 2
    # Counter-clockwise corner order: (+,+), (-,+), (-,-), (+,-).
    ux = torch.stack([hx, -hx, -hx, hx], dim=1)
    uy = torch.stack([hy, hy, -hy, -hy], dim=1)
    x = cx + ux * cos_r - uy * sin_r  # [P, 4]
    y = cy + ux * sin_r + uy * cos_r
    half_x, half_y = b[:, 2] / 2, b[:, 3] / 2
    x, y, in1 = _clip_stage(x, y, 1.0, half_x)
    x, y, in2 = _clip_stage(x, y, -1.0, half_x)
    y, x, in3 = _clip_stage(y, x, 1.0, half_y)
    y, x, in4 = _clip_stage(y, x, -1.0, half_y)
    # Shoelace relative to the first vertex (smaller products, less rounding). A polygon pushed
    # entirely outside a half-plane is empty: exactly 0, not the rounding noise of a flat polygon.
    x = x - x[:, :1]
    y = y - y[:, :1]
    area = 0.5 * (x * torch.roll(y, -1, dims=1) - torch.roll(x, -1, dims=1) * y).sum(dim=1)
    return area.clamp_(min=0.0) * (in1 * in2 * in3 * in4)


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


def _overlap_in_frame_of(a: Tensor, b: Tensor) -> Tensor:
    """Area of (bounding rectangle of a, axis-aligned in b's frame) intersected with b."""
    rel = a[:, 4] - b[:, 4]
    cos_r, sin_r = torch.cos(rel).abs(), torch.sin(rel).abs()
    cos_b, sin_b = torch.cos(b[:, 4]), torch.sin(b[:, 4])
    dx, dy = a[:, 0] - b[:, 0], a[:, 1] - b[:, 1]
    cx, cy = dx * cos_b + dy * sin_b, -dx * sin_b + dy * cos_b
    ex = (cos_r * a[:, 2] + sin_r * a[:, 3]) / 2
    ey = (sin_r * a[:, 2] + cos_r * a[:, 3]) / 2
    hx, hy = b[:, 2] / 2, b[:, 3] / 2
    over_x = (torch.minimum(cx + ex, hx) - torch.maximum(cx - ex, -hx)).clamp_(min=0)
    over_y = (torch.minimum(cy + ey, hy) - torch.maximum(cy - ey, -hy)).clamp_(min=0)
    return over_x * over_y


def bev_iou_upper_bound(a: Tensor, b: Tensor) -> Tensor:
    """A cheap upper bound of the BEV IoU of aligned pairs `Tensor[P, 5]` -> `Tensor[P]` float64.

    The intersection is at most each box's area and at most the overlap of one box with the
    other's bounding rectangle in its frame (both frames are tried); IoU grows with the
    intersection, so that bound gives an IoU bound. NMS tests it first and clips only the pairs
    that could pass the threshold.
    """
    a, b = a.double(), b.double()
    area_a, area_b = a[:, 2] * a[:, 3], b[:, 2] * b[:, 3]
    inter = torch.minimum(torch.minimum(area_a, area_b), torch.minimum(_overlap_in_frame_of(a, b), _overlap_in_frame_of(b, a)))
    return _ratio(inter, area_a, area_b)


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
    i, j = cross_pairs(bev_a[:, :2], rad_a, bev_b[:, :2], rad_b)
    if z_a is not None and z_b is not None:
        keep = (z_a[0].index_select(0, i) <= z_b[1].index_select(0, j)) & (z_b[0].index_select(0, j) <= z_a[1].index_select(0, i))
        i, j = i[keep], j[keep]
    return i, j


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
