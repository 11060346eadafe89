"""Exact IoU of rotated boxes: BEV (`box_iou_bev`) and 3D (`box_iou_3d`), pairwise or aligned.

Geometry, in float64 whatever the input dtype. Two exact formulas for the intersection area of
two rectangles, chosen per pair by their relative yaw `r`:

- Edge sum (Green's theorem), for pairs without (nearly) parallel edges -- almost all pairs of
  real boxes. The boundary of `a & b` is the part of a's edges inside b plus the part of b's
  edges inside a; each edge line contributes `clipped length * moment / 2`. A clipped length is
  the overlap of three intervals of the edge parameter (the edge and the other box's two
  slabs), so the area is a continuous function of the inputs: nested, touching, corner-on-edge
  and zero-size boxes need no special case. Fixed `[P, 8]` tensors, no vertex lists.
- Clipping (Sutherland-Hodgman), for pairs within `_PARALLEL` of parallel edges (identical,
  same-heading, axis-aligned boxes), where the edge sum would count a shared edge twice or not
  at all: rectangle `a` is clipped by the four half-planes of `b` in `b`'s frame
  (`|x| <= x_size/2`, `|y| <= y_size/2`). Every polygon is a fixed-size tensor of vertices and a
  clipping stage maps `K` vertices to `K + 1` (a convex polygon gains at most one vertex per
  half-plane), so four stages end with 8 vertices per pair and the area is the shoelace sum.
  Vertices cut away are replaced by points on the clipping line (collinear points add zero
  area), so no pair needs compaction or sorting: touching boxes give a polygon flattened onto a
  line (area 0), a zero-size box clips everything onto a line or point (area 0).

Pairwise IoU first discards pairs whose circumscribed circles (and, in 3D, height ranges) do
not overlap -- their IoU is exactly 0 -- and computes only the remaining candidates, in chunks;
when the grid finds that most pairs are candidates (a pile of boxes) it computes all pairs in
blocks of rows instead, which saves listing and gathering a million pairs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from pc3d.errors import FormatError, ShapeError
from pc3d.ops.checks import as_z_up_boxes, bev_view
from pc3d.ops.pairs import cross_grid_count, cross_pairs

# Pairs per chunk: small enough for the temporaries to stay in cache ([8, P] ones for the edge
# sum, ~40 growing [P, K <= 8] ones for the clipping).
_PAIR_CHUNK = 8_192
_CLIP_CHUNK = 16_384
# Pairs whose relative yaw is within this (sine) of a multiple of pi/2 have (nearly) parallel
# edges and are clipped (Sutherland-Hodgman); all others use the edge-sum formula, whose
# rounding error grows like 1 / this (~1e-12 m^2 for metre-sized boxes in float64).
_PARALLEL = 1e-3
# Pairwise IoU skips listing candidate pairs when the grid says at least this share of all
# pairs are near each other: then every pair is computed, in blocks of rows (no gathers).
_DENSE_SHARE = 0.5
_DENSE_BLOCK = 65_536
# On a GPU the chunks are launch-bound, not cache-bound: take far more pairs at a time.
_CUDA_CHUNK = 1 << 20


def _clip_stage(clip: Tensor, other: Tensor, sign: float, half: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Clip convex polygons by the half-plane `sign * clip <= half` (axis-aligned in b's frame).

    Args:
        clip: `Tensor[P, K]` vertex coordinates along the clipping axis.
        other: `Tensor[P, K]` vertex coordinates along the other axis.
        sign: +1 or -1, the side of the half-plane.
        half: `Tensor[P]` half-size of box b along the clipping axis.

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


def _clip_chunk(a: Tensor, b: Tensor) -> Tensor:
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


def _edge_parameters(cx: Tensor, cy: Tensor, cos_r: Tensor, sin_r: Tensor, inv_s: Tensor, inv_c: Tensor, hx: Tensor, hy: Tensor) -> tuple[list[Tensor], list[Tensor]]:
    """Where the edge lines of a box cross the slab lines of an axis-aligned box at the origin.

    The box has centre `(cx, cy)`, rotation `r` (`cos_r`, `sin_r`, and their inverses `inv_c`,
    `inv_s`) and half sizes `hx, hy`; its edges, counter-clockwise from the `+x` one, are
    `mid_k + s * dir_k` with `s` measured from the edge midpoint. Returns, per edge, the
    parameter `s` where the edge crosses the centre line `x = 0` (resp. `y = 0`) of the slabs:
    four `Tensor[P]` each. The slab `|x| <= X` then spans `s` in that value `+- X / |dir_x|`.
    """
    u, v = cx * inv_s, cx * inv_c
    p, q = hx * cos_r * inv_s, hy * sin_r * inv_c
    u2, v2 = cy * inv_c, cy * inv_s
    p2, q2 = hx * sin_r * inv_c, hy * cos_r * inv_s
    return [u + p, v - q, p - u, -v - q], [-u2 - p2, v2 + q2, u2 - p2, q2 - v2]


def _edge_sum_chunk(a: Tensor, b: Tensor, cos_r: Tensor, sin_r: Tensor) -> Tensor:
    """Intersection area by Green's theorem, for pairs without (nearly) parallel edges.

    The boundary of `a & b` is made of the parts of a's edges inside b and of b's edges inside
    a, so its area is the sum over the 8 edges of `(clipped length) * (moment of the edge line
    about b's centre) / 2` (the moment `p x dir` is the same for every point of a line). Each
    clipped length is the overlap of three intervals of the edge parameter (the edge itself and
    the other box's two slabs), a continuous function of the inputs: no vertex lists, no
    sorting, no special case for nested, touching or zero-size boxes. Needs every slope
    `1 / sin(r)`, `1 / cos(r)` finite, which `_PARALLEL` guarantees.
    """
    hxa, hya, hxb, hyb = a[:, 2] / 2, a[:, 3] / 2, b[:, 2] / 2, b[:, 3] / 2
    cos_b, sin_b = torch.cos(b[:, 4]), torch.sin(b[:, 4])
    dx, dy = a[:, 0] - b[:, 0], a[:, 1] - b[:, 1]
    cx = dx * cos_b + dy * sin_b  # a's centre in b's frame
    cy = dy * cos_b - dx * sin_b
    inv_s, inv_c = 1 / sin_r, 1 / cos_r
    ax_a, ay_a = _edge_parameters(cx, cy, cos_r, sin_r, inv_s, inv_c, hxa, hya)
    # b's centre in a's frame (rotation -r): b's edges against a's slabs, same formulas.
    ax_b, ay_b = _edge_parameters(-(cos_r * cx + sin_r * cy), sin_r * cx - cos_r * cy, cos_r, -sin_r, -inv_s, inv_c, hxb, hyb)
    ax = torch.stack(ax_a + ax_b, 0)  # [8, P]: stacked along dim 0, plain copies
    ay = torch.stack(ay_a + ay_b, 0)
    abs_s, abs_c = inv_s.abs(), inv_c.abs()
    # Half widths of the slabs along each edge: |x| <= X spans X / |dir_x| of the parameter.
    wsb, wcb, wsa, wca = abs_s * hxb, abs_c * hxb, abs_s * hxa, abs_c * hxa
    wx = torch.stack([wsb, wcb, wsb, wcb, wsa, wca, wsa, wca], 0)
    wsb, wcb, wsa, wca = abs_s * hyb, abs_c * hyb, abs_s * hya, abs_c * hya
    wy = torch.stack([wcb, wsb, wcb, wsb, wca, wsa, wca, wsa], 0)
    half = torch.stack([hya, hxa, hya, hxa, hyb, hxb, hyb, hxb], 0)  # the edges' own half lengths
    lo = torch.maximum(torch.maximum(ax - wx, ay - wy), half.neg())
    hi = torch.minimum(torch.minimum(ax.add_(wx), ay.add_(wy)), half)
    length = hi.sub_(lo).clamp_(min=0.0)
    # Moments about b's centre: a's edge lines are offset by the cross product of a's centre
    # with their direction; b's edge lines pass at their half size from it.
    m0 = cx * cos_r + cy * sin_r
    m1 = cx * sin_r - cy * cos_r
    moment = torch.stack([hxa + m0, hya - m1, hxa - m0, hya + m1, hxb, hyb, hxb, hyb], 0)
    return (0.5 * (length * moment).sum(dim=0)).clamp_(min=0.0)


def _chunked(fn: Callable[..., Tensor], size: int, *tensors: Tensor) -> Tensor:
    """`fn` applied to consecutive row slices of `tensors` of at most `size` rows, concatenated."""
    n = tensors[0].shape[0]
    if tensors[0].device.type != "cpu":
        size = max(size, _CUDA_CHUNK)
    if n <= size:
        return fn(*tensors)
    return torch.cat([fn(*(t[s : s + size] for t in tensors)) for s in range(0, n, size)])


def bev_intersection_area(a: Tensor, b: Tensor) -> Tensor:
    """Area of overlap of aligned pairs of BEV boxes.

    Args:
        a: `Tensor[P, 5]` rows `x, y, x_size, y_size, yaw` (yaw counter-clockwise); computed in
            float64 whatever the dtype.
        b: `Tensor[P, 5]`, the other box of each pair.

    Returns:
        `Tensor[P]` float64 intersection areas.
    """
    a, b = a.double(), b.double()
    rel = a[:, 4] - b[:, 4]
    cos_r, sin_r = torch.cos(rel), torch.sin(rel)
    # Split once, not per chunk: the rare (nearly) parallel pairs are gathered and clipped.
    parallel = (sin_r.abs() < _PARALLEL) | (cos_r.abs() < _PARALLEL)
    if not bool(parallel.any()):
        return _chunked(_edge_sum_chunk, _PAIR_CHUNK, a, b, cos_r, sin_r)
    if bool(parallel.all()):
        return _chunked(_clip_chunk, _CLIP_CHUNK, a, b)
    # Elsewhere the edge sum runs on every row (with a harmless stand-in angle on the parallel
    # rows, so everything stays finite), which is cheaper than gathering the general rows.
    diagonal = torch.full_like(sin_r, 0.5**0.5)
    area = _chunked(_edge_sum_chunk, _PAIR_CHUNK, a, b, torch.where(parallel, diagonal, cos_r), torch.where(parallel, diagonal, sin_r))
    return area.index_put((parallel,), _chunked(_clip_chunk, _CLIP_CHUNK, a[parallel], b[parallel]))


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
    return overlap_ratio(inter, area_a, area_b)


def overlap_ratio(inter: Tensor, size_a: Tensor, size_b: Tensor, mode: str = "iou") -> Tensor:
    """IoU (`inter / (size_a + size_b - inter)`) or IoF (`inter / size_a`), clamped to [0, 1].

    Args:
        inter: `Tensor[...]` intersection areas or volumes.
        size_a: areas or volumes of the first boxes (broadcast against `inter`).
        size_b: those of the second boxes.
        mode: `"iou"` or `"iof"` (intersection over the first box: MMDetection3D's `iof`).

    Returns:
        The ratios; 0 where the denominator is 0 (two empty boxes overlap nowhere).
    """
    denominator = size_a + size_b - inter if mode == "iou" else size_a.expand_as(inter)
    positive = denominator > 0
    return torch.where(positive, inter / torch.where(positive, denominator, 1.0), 0.0).clamp_(0.0, 1.0)


class _Boxes(NamedTuple):
    """One side of an IoU call, in float64."""

    bev: Tensor  # [N, 5] x, y, x_size, y_size, yaw
    size: Tensor  # [N] BEV area, or volume in 3D
    heights: Tensor | None  # [N, 2] bottom and top z in 3D, else None


def _sides(boxes: Tensor, three_d: bool) -> _Boxes:
    bev = bev_view(boxes)
    area = bev[:, 2] * bev[:, 3]
    if not three_d:
        return _Boxes(bev, area, None)
    bottom, height = boxes[:, 2].double(), boxes[:, 5].double()
    return _Boxes(bev, area * height, torch.stack([bottom, bottom + height], dim=1))


def _take(boxes: _Boxes, index: Tensor | slice) -> _Boxes:
    return _Boxes(boxes.bev[index], boxes.size[index], None if boxes.heights is None else boxes.heights[index])


def _intersection(a: _Boxes, b: _Boxes) -> Tensor:
    """Aligned pairs `a[k]`, `b[k]`: BEV intersection area, times the height overlap in 3D."""
    inter = bev_intersection_area(a.bev, b.bev)
    if a.heights is not None and b.heights is not None:
        lo = torch.maximum(a.heights[:, 0], b.heights[:, 0])
        hi = torch.minimum(a.heights[:, 1], b.heights[:, 1])
        inter = inter * (hi - lo).clamp_(min=0.0)
    return inter


def _candidate_pairs(a: _Boxes, b: _Boxes, rad_a: Tensor, rad_b: Tensor) -> tuple[Tensor, Tensor]:
    """Index pairs `(i, j)` whose circumscribed circles (and height ranges) overlap."""
    i, j = cross_pairs(a.bev[:, :2], rad_a, b.bev[:, :2], rad_b)
    if a.heights is not None and b.heights is not None:
        za, zb = a.heights.index_select(0, i), b.heights.index_select(0, j)
        keep = (za[:, 0] <= zb[:, 1]) & (zb[:, 0] <= za[:, 1])
        i, j = i[keep], j[keep]
    return i, j


def _expand_rows(t: Tensor, m: int) -> Tensor:
    """Each row of `t` repeated `m` times in a row (a broadcast copy, no gather)."""
    return t.unsqueeze(1).expand(t.shape[0], m, *t.shape[1:]).reshape(t.shape[0] * m, *t.shape[1:])


def _tile(t: Tensor, k: int) -> Tensor:
    """`t` repeated `k` times along its first dimension."""
    return t.repeat(k, *([1] * (t.dim() - 1)))


def _all_pairs(a: _Boxes, b: _Boxes, mode: str) -> Tensor:
    """Every pair, a block of rows of a at a time, from broadcast copies (no index lists)."""
    n, m = a.bev.shape[0], b.bev.shape[0]
    step = max(1, (_DENSE_BLOCK if a.bev.device.type == "cpu" else _CUDA_CHUNK) // m)
    blocks = []
    for s in range(0, n, step):
        rows = _take(a, slice(s, s + step))
        k = rows.bev.shape[0]
        heights_a = None if rows.heights is None else _expand_rows(rows.heights, m)
        heights_b = None if b.heights is None else _tile(b.heights, k)
        left = _Boxes(_expand_rows(rows.bev, m), _expand_rows(rows.size, m), heights_a)
        right = _Boxes(_tile(b.bev, k), _tile(b.size, k), heights_b)
        inter = _intersection(left, right).view(k, m)
        blocks.append(overlap_ratio(inter, rows.size[:, None], b.size[None, :], mode))
    return torch.cat(blocks)


def _pairwise(a: _Boxes, b: _Boxes, mode: str) -> Tensor:
    """`Tensor[N, M]` float64 ratios of all pairs, computing only pairs that can overlap."""
    n, m = a.bev.shape[0], b.bev.shape[0]
    out = torch.zeros(n, m, dtype=torch.float64, device=a.bev.device)
    if n == 0 or m == 0:
        return out
    rad_a = 0.5 * torch.hypot(a.bev[:, 2], a.bev[:, 3])
    rad_b = 0.5 * torch.hypot(b.bev[:, 2], b.bev[:, 3])
    if cross_grid_count(a.bev[:, :2], rad_a, b.bev[:, :2], rad_b) >= _DENSE_SHARE * n * m:
        # Nearly all pairs are candidates (a pile of boxes): computing them all is cheaper than
        # listing them. Pairs that do not overlap come out exactly 0 anyway.
        return _all_pairs(a, b, mode)
    i, j = _candidate_pairs(a, b, rad_a, rad_b)
    if i.numel():
        pa, pb = _take(a, i), _take(b, j)
        out[i, j] = overlap_ratio(_intersection(pa, pb), pa.size, pb.size, mode)
    return out


def _iou(a: object, b: object, aligned: bool, three_d: bool, mode: str) -> Tensor:
    if mode not in ("iou", "iof"):
        raise FormatError(f"mode must be 'iou' or 'iof', got {mode!r}")
    ta = as_z_up_boxes(a, "a", allow_bev=not three_d)
    tb = as_z_up_boxes(b, "b", allow_bev=not three_d).to(ta.device)
    dtype = torch.promote_types(ta.dtype, tb.dtype)
    side_a, side_b = _sides(ta, three_d), _sides(tb, three_d)
    if not aligned:
        return _pairwise(side_a, side_b, mode).to(dtype)
    if ta.shape[0] != tb.shape[0]:
        raise ShapeError(f"aligned IoU needs as many boxes in a as in b, got {ta.shape[0]} and {tb.shape[0]}")
    return overlap_ratio(_intersection(side_a, side_b), side_a.size, side_b.size, mode).to(dtype)


def box_iou_bev(a: Tensor, b: Tensor, aligned: bool = False, mode: str = "iou") -> Tensor:
    """IoU of rotated boxes in the bird's-eye view (their ground-plane rectangles).

    Args:
        a: `Tensor[N, 7+C]` z-up boxes (bottom centre `x, y, z`, sizes, yaw counter-clockwise
            about +z: the LiDAR and Depth layouts) or `Tensor[N, 5]` BEV boxes
            `x, y, x_size, y_size, yaw`. Box structures of any system:
            `Boxes3D.bev_overlaps(a, b)`.
        b: the same kind, `M` boxes (`M == N` when `aligned`).
        aligned: IoU of `a[k]` with `b[k]` instead of all pairs.
        mode: `"iou"`, or `"iof"` for the intersection over the area of the box of `a`.

    Returns:
        `Tensor[N, M]` (or `Tensor[N]` when aligned) in the boxes' dtype; 0 for disjoint boxes
        and for pairs of zero-area boxes.

    Raises:
        ShapeError: wrong shapes; FormatError: NaN/inf, negative sizes, an unknown mode, or a
            box structure instead of a tensor.
    """
    return _iou(a, b, aligned, three_d=False, mode=mode)


def box_iou_3d(a: Tensor, b: Tensor, aligned: bool = False, mode: str = "iou") -> Tensor:
    """3D IoU of rotated boxes: BEV intersection times height overlap over the union volume.

    Args:
        a: `Tensor[N, 7+C]` z-up boxes: bottom centre `x, y, z` (the box spans `z .. z +
            z_size`), sizes, yaw counter-clockwise about +z (LiDAR and Depth layouts). Box
            structures of any system: `Boxes3D.overlaps(a, b)`.
        b: the same kind, `M` boxes (`M == N` when `aligned`).
        aligned: IoU of `a[k]` with `b[k]` instead of all pairs.
        mode: `"iou"`, or `"iof"` for the intersection over the volume of the box of `a`.

    Returns:
        `Tensor[N, M]` (or `Tensor[N]` when aligned) in the boxes' dtype.

    Raises:
        ShapeError: wrong shapes; FormatError: NaN/inf, negative sizes, an unknown mode, or a
            box structure instead of a tensor.
    """
    return _iou(a, b, aligned, three_d=True, mode=mode)
