"""Exact intersection area of rotated rectangles (the geometry behind the rotated IoU and NMS).

Computed in float64 whatever the input dtype. Two exact formulas, chosen per pair by the
relative yaw `r`:

- Edge sum (Green's theorem, `edge_sum_area`), for pairs without (nearly) parallel edges --
  almost all pairs of real boxes. The boundary of `a & b` is the part of a's edges inside b plus
  the part of b's edges inside a; each edge line contributes `clipped length * moment / 2`. A
  clipped length is the overlap of three intervals of the edge parameter (the edge and the other
  box's two slabs), so the area is a continuous function of the inputs: nested, touching,
  corner-on-edge and zero-size boxes need no special case. Fixed `[P, 8]` tensors, no vertex
  lists.
- Clipping (Sutherland-Hodgman, `clip_area`), for pairs within `PARALLEL_SINE` of parallel edges
  (identical, same-heading, axis-aligned boxes), where the edge sum would count a shared edge
  twice or not at all: rectangle `a` is clipped by the four half-planes of `b` in `b`'s frame
  (`|x| <= x_size/2`, `|y| <= y_size/2`). Every polygon is a fixed-size tensor of vertices and a
  clipping stage maps `K` vertices to `K + 1` (a convex polygon gains at most one vertex per
  half-plane), so four stages end with 8 vertices per pair and the area is the shoelace sum.
  Vertices cut away are replaced by points on the clipping line (collinear points add zero
  area), so no pair needs compaction or sorting: touching boxes give a polygon flattened onto a
  line (area 0), a zero-size box clips everything onto a line or point (area 0).

BEV boxes here are `Tensor[P, 5]` rows `x, y, x_size, y_size, yaw` (yaw counter-clockwise).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

# Pairs per chunk: small enough for the temporaries to stay in cache ([8, P] ones for the edge
# sum, ~40 growing [P, K <= 8] ones for the clipping).
_PAIR_CHUNK = 8_192
_CLIP_CHUNK = 16_384
# Pairs whose relative yaw is within this (sine) of a multiple of pi/2 have (nearly) parallel
# edges and are clipped (Sutherland-Hodgman); all others use the edge-sum formula, whose
# rounding error grows like 1 / this (~1e-12 m^2 for metre-sized boxes in float64).
PARALLEL_SINE = 1e-3
# On a GPU the chunks are launch-bound, not cache-bound: take far more pairs at a time.
CUDA_CHUNK = 1 << 20


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


def clip_area(a: Tensor, b: Tensor) -> Tensor:
    """Intersection area of aligned pairs by clipping a with b's four half-planes; any yaws.

    Args:
        a: `Tensor[P, 5]` float64 BEV boxes.
        b: `Tensor[P, 5]` float64 BEV boxes.

    Returns:
        `Tensor[P]` areas (exactly 0 for disjoint or touching boxes).
    """
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


def _edge_parameters(
    cx: Tensor, cy: Tensor, cos_r: Tensor, sin_r: Tensor, inv_s: Tensor, inv_c: Tensor, hx: Tensor, hy: Tensor
) -> tuple[list[Tensor], list[Tensor]]:
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


def edge_sum_area(a: Tensor, b: Tensor, cos_r: Tensor, sin_r: Tensor) -> Tensor:
    """Intersection area by Green's theorem, for pairs without (nearly) parallel edges.

    The boundary of `a & b` is made of the parts of a's edges inside b and of b's edges inside
    a, so its area is the sum over the 8 edges of `(clipped length) * (moment of the edge line
    about b's centre) / 2` (the moment `p x dir` is the same for every point of a line). Each
    clipped length is the overlap of three intervals of the edge parameter (the edge itself and
    the other box's two slabs), a continuous function of the inputs: no vertex lists, no
    sorting, no special case for nested, touching or zero-size boxes. Needs every slope
    `1 / sin(r)`, `1 / cos(r)` finite, which `PARALLEL_SINE` guarantees.

    Args:
        a: `Tensor[P, 5]` float64 BEV boxes.
        b: `Tensor[P, 5]` float64 BEV boxes.
        cos_r: `Tensor[P]` cosine of the relative yaw `a.yaw - b.yaw`.
        sin_r: `Tensor[P]` its sine; `|sin_r|` and `|cos_r|` at least `PARALLEL_SINE`.

    Returns:
        `Tensor[P]` areas.
    """
    hxa, hya, hxb, hyb = a[:, 2] / 2, a[:, 3] / 2, b[:, 2] / 2, b[:, 3] / 2
    cos_b, sin_b = torch.cos(b[:, 4]), torch.sin(b[:, 4])
    dx, dy = a[:, 0] - b[:, 0], a[:, 1] - b[:, 1]
    cx = dx * cos_b + dy * sin_b  # a's centre in b's frame
    cy = dy * cos_b - dx * sin_b
    inv_s, inv_c = 1 / sin_r, 1 / cos_r
    ax_a, ay_a = _edge_parameters(cx, cy, cos_r, sin_r, inv_s, inv_c, hxa, hya)
    # b's centre in a's frame (rotation -r): b's edges against a's slabs, same formulas.
    ax_b, ay_b = _edge_parameters(
        -(cos_r * cx + sin_r * cy), sin_r * cx - cos_r * cy, cos_r, -sin_r, -inv_s, inv_c, hxb, hyb
    )
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
        size = max(size, CUDA_CHUNK)
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
    parallel = (sin_r.abs() < PARALLEL_SINE) | (cos_r.abs() < PARALLEL_SINE)
    if not bool(parallel.any()):
        return _chunked(edge_sum_area, _PAIR_CHUNK, a, b, cos_r, sin_r)
    if bool(parallel.all()):
        return _chunked(clip_area, _CLIP_CHUNK, a, b)
    # Elsewhere the edge sum runs on every row (with a harmless stand-in angle on the parallel
    # rows, so everything stays finite), which is cheaper than gathering the general rows.
    diagonal = torch.full_like(sin_r, 0.5**0.5)
    area = _chunked(
        edge_sum_area,
        _PAIR_CHUNK,
        a,
        b,
        torch.where(parallel, diagonal, cos_r),
        torch.where(parallel, diagonal, sin_r),
    )
    return area.index_put((parallel,), _chunked(clip_area, _CLIP_CHUNK, a[parallel], b[parallel]))


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

    Args:
        a: `Tensor[P, 5]` BEV boxes.
        b: `Tensor[P, 5]` BEV boxes.
    """
    a, b = a.double(), b.double()
    area_a, area_b = a[:, 2] * a[:, 3], b[:, 2] * b[:, 3]
    inter = torch.minimum(
        torch.minimum(area_a, area_b), torch.minimum(_overlap_in_frame_of(a, b), _overlap_in_frame_of(b, a))
    )
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
