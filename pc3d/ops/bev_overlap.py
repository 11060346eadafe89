"""Whether rotated boxes overlap in the bird's-eye view, without computing how much.

Augmentation asks this question thousands of times per frame (may this pasted or nudged object
stand here?) and needs no area: two rectangles are disjoint exactly when one of the four edge
directions (two per rectangle) separates their projections (the separating axis theorem). That
is eight dot products per corner pair in dense tensors, instead of clipping polygons as
:func:`pc3d.ops.box_iou_bev` does. ``boxes_overlap_bev(a, b)`` equals ``box_iou_bev(a, b) > 0``
except for boxes that only touch, within float64 rounding of the touching edge (both say "no"
for an exact touch).
"""

from __future__ import annotations

import torch
from torch import Tensor

from pc3d.ops.checks import as_z_up_boxes, bev_view

__all__ = ["boxes_overlap_bev"]

# Pairs (times 8 projections) handled per block of rows of `a`.
_BLOCK_PAIRS = 1 << 18


def _frames(bev: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per box: its two unit edge directions ``[N, 2, 2]``, half sizes ``[N, 2]`` along them and
    its four corners ``[N, 4, 2]``."""
    cos, sin = torch.cos(bev[:, 4]), torch.sin(bev[:, 4])
    axes = torch.stack([torch.stack([cos, sin], dim=1), torch.stack([-sin, cos], dim=1)], dim=1)
    half = bev[:, 2:4] * 0.5
    signs = bev.new_tensor([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])  # [4, 2]
    offsets = torch.einsum("ck,nk,nkd->ncd", signs, half, axes)
    return axes, half, bev[:, None, :2] + offsets


def _separated(axes: Tensor, half: Tensor, centres: Tensor, corners: Tensor) -> Tensor:
    """``[N, M]``: does an edge direction of box ``i`` (``axes``, ``half``, ``centres`` of the
    N boxes) separate it from the corners ``[M, 4, 2]`` of box ``j``?"""
    # Corners relative to each box's centre, projected on its two axes: [N, 2, M, 4].
    own = torch.einsum("nkd,nd->nk", axes, centres)
    projected = torch.einsum("nkd,mcd->nkmc", axes, corners) - own[:, :, None, None]
    low, high = projected.amin(dim=3), projected.amax(dim=3)  # [N, 2, M]
    return ((low >= half[:, :, None]) | (high <= -half[:, :, None])).any(dim=1)


def boxes_overlap_bev(a: Tensor, b: Tensor) -> Tensor:
    """``BoolTensor[N, M]``: do box ``a[i]`` and box ``b[j]`` overlap (positive common area) in
    the bird's-eye view?

    Args:
        a: `Tensor[N, 7+C]` z-up boxes (bottom centre, yaw counter-clockwise about +z) or
            `Tensor[N, 5]` BEV boxes `x, y, x_size, y_size, yaw`.
        b: `Tensor[M, 7+C]` or `Tensor[M, 5]` likewise.

    Returns:
        `BoolTensor[N, M]` on ``a``'s device.

    Raises:
        FormatError: not a float tensor, or NaN/inf values (names the argument).
        ShapeError: a wrong number of columns.
    """
    ta = as_z_up_boxes(a, "a", allow_bev=True)
    tb = as_z_up_boxes(b, "b", allow_bev=True).to(ta.device)
    n, m = ta.shape[0], tb.shape[0]
    out = torch.zeros(n, m, dtype=torch.bool, device=ta.device)
    if n == 0 or m == 0:
        return out
    bev_a, bev_b = bev_view(ta), bev_view(tb)
    axes_a, half_a, corners_a = _frames(bev_a)
    axes_b, half_b, corners_b = _frames(bev_b)
    step = max(1, _BLOCK_PAIRS // m)
    for start in range(0, n, step):  # blocks bound the memory of the [rows, 2, M, 4] projections
        rows = slice(start, start + step)
        apart = _separated(axes_a[rows], half_a[rows], bev_a[rows, :2], corners_b)
        apart |= _separated(axes_b, half_b, bev_b[:, :2], corners_a[rows]).t()
        out[rows] = ~apart
    return out
