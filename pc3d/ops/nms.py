"""Non-maximum suppression: 2D axis-aligned, rotated BEV, class-aware batched, and circle NMS.

Semantics (all functions): boxes with `score > score_threshold` (when given) are ranked by score,
highest first; equal scores keep their input order (a stable sort), so the lower index wins a
tie. `pre_max` keeps the first `pre_max` of that ranking. Walking the ranking, a box is kept
unless a box kept before it overlaps it with IoU `> iou_threshold` (circle NMS: centre distance
`<= distance_threshold`); `post_max` keeps the first `post_max` kept boxes. The result is the
kept indices into the input, best first -- exactly what that sequential sweep returns.

How it stays fast without a loop over boxes: overlapping pairs are found with a grid over the
boxes' circumscribed circles (pairs whose circles are apart have IoU exactly 0 and can never
suppress), and the sweep is resolved over blocks of the ranking, in rounds over those sparse
pairs, testing only pairs that leave kept boxes (see `pc3d.ops.pairs`); rotated pairs are
clipped only when a cheap IoU bound says they could pass the threshold. Batched (class-aware) variants never
let boxes of different labels suppress each other; their `pre_max`/`post_max` count boxes over
all classes together.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from pc3d.errors import FormatError, ShapeError
from pc3d.ops.bev_area import bev_intersection_area, bev_iou_upper_bound, overlap_ratio
from pc3d.ops.checks import as_z_up_boxes, bev_view, check_finite, check_scores
from pc3d.ops.iou_2d import box_iou_2d
from pc3d.ops.pairs import Predicate, greedy_nms


def _check_threshold(value: float, name: str, upper: float | None = 1.0) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0 or (upper is not None and value > upper):
        bound = f"[0, {upper}]" if upper is not None else "[0, inf)"
        raise FormatError(f"{name} must be in {bound}, got {value}")
    return value


def _check_count(value: int | None, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FormatError(f"{name} must be a non-negative int or None, got {value!r}")
    return value


def _ranking(scores: Tensor, score_threshold: float | None, pre_max: int | None) -> Tensor:
    """Indices of the boxes taking part, best score first (ties: lower index first)."""
    idx = torch.arange(scores.shape[0], device=scores.device)
    if score_threshold is not None:
        idx = idx[scores > float(score_threshold)]
    order = idx[torch.sort(scores[idx], descending=True, stable=True).indices]
    return order if pre_max is None else order[:pre_max]


def _group_ids(labels: Tensor | None, num: int, device: torch.device) -> Tensor | None:
    if labels is None:
        return None
    if not isinstance(labels, Tensor) or labels.dim() != 1 or labels.shape[0] != num:
        shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ShapeError(f"labels must be a tensor of shape ({num},) (one per box), got {shape}")
    if labels.is_floating_point() or labels.is_complex():
        raise FormatError(f"labels must be integers, got dtype {labels.dtype}")
    # Dense non-negative ids, so that any label values (even negative) key the grid.
    return torch.unique(labels.to(device), return_inverse=True)[1]


def _run(
    num: int,
    scores: Tensor,
    score_threshold: float | None,
    pre_max: int | None,
    post_max: int | None,
    labels: Tensor | None,
    centres_radii: Callable[[Tensor], tuple[Tensor, Tensor]],
    suppresses: Callable[[Tensor], Predicate],
) -> Tensor:
    """Shared driver: rank, run the sweep on the ranked boxes, map back, cap the count.

    `centres_radii(order)` gives the discs of the ranked boxes; `suppresses(order)` gives the
    exact test `f(i, j)` on ranked indices (i ranked above j).
    """
    pre_max = _check_count(pre_max, "pre_max")
    post_max = _check_count(post_max, "post_max")
    if score_threshold is not None and math.isnan(float(score_threshold)):
        raise FormatError("score_threshold is NaN; pass a number or None")
    groups = _group_ids(labels, num, scores.device)
    order = _ranking(scores, score_threshold, pre_max)
    if order.numel() == 0:
        return order
    xy, radius = centres_radii(order)
    keep = greedy_nms(xy, radius, None if groups is None else groups[order], suppresses(order))
    kept = order[keep]
    return kept if post_max is None else kept[:post_max]


# ----------------------------------------------------------------------------------- rotated BEV
def _bev_nms(
    boxes: Tensor,
    scores: Tensor,
    labels: Tensor | None,
    iou_threshold: float,
    score_threshold: float | None,
    pre_max: int | None,
    post_max: int | None,
) -> Tensor:
    tensor = as_z_up_boxes(boxes, "boxes", allow_bev=True)
    scores = check_scores(scores, tensor.shape[0]).to(tensor.device)
    thr = _check_threshold(iou_threshold, "iou_threshold")
    bev = bev_view(tensor)
    area = bev[:, 2] * bev[:, 3]

    def centres_radii(order: Tensor) -> tuple[Tensor, Tensor]:
        b = bev[order]
        return b[:, :2], 0.5 * torch.hypot(b[:, 2], b[:, 3])

    def suppresses(order: Tensor) -> Predicate:
        b, ar = bev[order], area[order]

        def test(i: Tensor, j: Tensor) -> Tensor:
            bi, bj = b.index_select(0, i), b.index_select(0, j)
            # Clip only pairs whose cheap IoU bound (given a rounding margin) can pass.
            could = (bev_iou_upper_bound(bi, bj) * (1 + 1e-9) + 1e-12 > thr).nonzero().squeeze(1)
            out = torch.zeros(i.shape[0], dtype=torch.bool, device=i.device)
            if could.numel():
                bi, bj = bi.index_select(0, could), bj.index_select(0, could)
                inter = bev_intersection_area(bi, bj)
                out[could] = (
                    overlap_ratio(inter, ar.index_select(0, i[could]), ar.index_select(0, j[could])) > thr
                )
            return out

        return test

    return _run(
        tensor.shape[0], scores, score_threshold, pre_max, post_max, labels, centres_radii, suppresses
    )


def nms_bev(
    boxes: Tensor,
    scores: Tensor,
    iou_threshold: float,
    score_threshold: float | None = None,
    pre_max: int | None = None,
    post_max: int | None = None,
) -> Tensor:
    """Greedy NMS of rotated boxes by their exact BEV IoU.

    Args:
        boxes: `Tensor[N, 7+C]` z-up boxes (yaw counter-clockwise about +z: LiDAR and Depth
            layouts) or `Tensor[N, 5]` BEV boxes `x, y, x_size, y_size, yaw`. Box structures of
            any system: `Boxes3D.nms_bev(scores, ...)`.
        scores: `Tensor[N]`.
        iou_threshold: a box is suppressed by a kept box when their IoU is `> iou_threshold`.
        score_threshold: only boxes with `score > score_threshold` take part.
        pre_max: only the `pre_max` best-scored boxes take part.
        post_max: at most this many boxes are returned.

    Returns:
        `LongTensor[K]`: indices of the kept boxes, highest score first.
    """
    return _bev_nms(boxes, scores, None, iou_threshold, score_threshold, pre_max, post_max)


def batched_nms_bev(
    boxes: Tensor,
    scores: Tensor,
    labels: Tensor,
    iou_threshold: float,
    score_threshold: float | None = None,
    pre_max: int | None = None,
    post_max: int | None = None,
) -> Tensor:
    """Class-aware `nms_bev`: boxes with different `labels` never suppress each other.

    Args:
        boxes: `Tensor[N, 7+C]` z-up boxes or `Tensor[N, 5]` BEV boxes, as in `nms_bev`.
        scores: `Tensor[N]`.
        labels: `LongTensor[N]` class of each box.
        iou_threshold: a box is suppressed by a kept box of its class when their IoU is
            `> iou_threshold`.
        score_threshold: only boxes with `score > score_threshold` take part.
        pre_max: only the `pre_max` best-scored boxes (all classes together) take part.
        post_max: at most this many boxes (all classes together) are returned.

    Returns:
        `LongTensor[K]`: indices of the kept boxes, highest score first.
    """
    return _bev_nms(boxes, scores, labels, iou_threshold, score_threshold, pre_max, post_max)


# --------------------------------------------------------------------------------- axis-aligned 2D
def _check_xyxy(boxes: object) -> Tensor:
    if not isinstance(boxes, Tensor):
        raise FormatError(f"boxes must be a tensor, got {type(boxes).__name__}")
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ShapeError(f"boxes must have shape (N, 4) as x1, y1, x2, y2, got {tuple(boxes.shape)}")
    check_finite(boxes, "boxes", ("x1", "y1", "x2", "y2"))
    flipped = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if bool(flipped.any()):
        row = int(torch.nonzero(flipped)[0, 0])
        raise FormatError(
            f"boxes row {row}: {boxes[row].tolist()} has x2 < x1 or y2 < y1 (expected x1, y1, x2, y2)"
        )
    return boxes


def _nms_2d(
    boxes: object,
    scores: Tensor,
    labels: Tensor | None,
    iou_threshold: float,
    score_threshold: float | None,
    pre_max: int | None,
    post_max: int | None,
) -> Tensor:
    boxes = _check_xyxy(boxes)
    scores = check_scores(scores, boxes.shape[0]).to(boxes.device)
    thr = _check_threshold(iou_threshold, "iou_threshold")
    boxes64 = boxes.double()

    def centres_radii(order: Tensor) -> tuple[Tensor, Tensor]:
        b = boxes64[order]
        return (b[:, :2] + b[:, 2:]) / 2, 0.5 * torch.hypot(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])

    def suppresses(order: Tensor) -> Predicate:
        b = boxes64[order]
        return lambda i, j: box_iou_2d(b.index_select(0, i), b.index_select(0, j)) > thr

    return _run(boxes.shape[0], scores, score_threshold, pre_max, post_max, labels, centres_radii, suppresses)


# Same shape as nms_bev and batched_nms_bev: each public NMS documents its own box format; the
# shared sweep is _run.
def nms_2d(
    boxes_xyxy: Tensor,
    scores: Tensor,
    iou_threshold: float,
    score_threshold: float | None = None,
    pre_max: int | None = None,
    post_max: int | None = None,
) -> Tensor:
    """Greedy NMS of axis-aligned 2D boxes `Tensor[N, 4]` (x1, y1, x2, y2 with x1 <= x2, y1 <= y2).

    The same result as `torchvision.ops.nms` when no threshold or count is given.

    Args:
        boxes_xyxy: `Tensor[N, 4]`.
        scores: `Tensor[N]`.
        iou_threshold: a box is suppressed by a kept box when their IoU is `> iou_threshold`.
        score_threshold: only boxes with `score > score_threshold` take part.
        pre_max: only the `pre_max` best-scored boxes take part.
        post_max: at most this many boxes are returned.

    Returns:
        `LongTensor[K]`: indices of the kept boxes, highest score first.
    """
    return _nms_2d(boxes_xyxy, scores, None, iou_threshold, score_threshold, pre_max, post_max)


def batched_nms_2d(
    boxes_xyxy: Tensor,
    scores: Tensor,
    labels: Tensor,
    iou_threshold: float,
    score_threshold: float | None = None,
    pre_max: int | None = None,
    post_max: int | None = None,
) -> Tensor:
    """Class-aware `nms_2d`: boxes with different `labels` never suppress each other.

    Args:
        boxes_xyxy: `Tensor[N, 4]` x1, y1, x2, y2.
        scores: `Tensor[N]`.
        labels: `LongTensor[N]` class of each box.
        iou_threshold: a box is suppressed by a kept box of its class when their IoU is
            `> iou_threshold`.
        score_threshold: only boxes with `score > score_threshold` take part.
        pre_max: only the `pre_max` best-scored boxes (all classes together) take part.
        post_max: at most this many boxes (all classes together) are returned.

    Returns:
        `LongTensor[K]`: indices of the kept boxes, highest score first.
    """
    return _nms_2d(boxes_xyxy, scores, labels, iou_threshold, score_threshold, pre_max, post_max)


# ------------------------------------------------------------------------------------- circle NMS
def circle_nms(
    centers_xy: Tensor,
    scores: Tensor,
    distance_threshold: float,
    score_threshold: float | None = None,
    pre_max: int | None = None,
    post_max: int | None = None,
) -> Tensor:
    """Greedy NMS by centre distance, as used by centre-based heads (CenterPoint).

    A box is suppressed by a kept box whose BEV centre is within `distance_threshold`
    (`dx^2 + dy^2 <= distance_threshold^2`). Note: CenterPoint's own `circle_nms` compares the
    *squared* distance with its `min_radius` config value; pass `math.sqrt(min_radius)` here to
    reproduce it.

    Args:
        centers_xy: `Tensor[N, 2+C]`; the first two columns are the BEV centre.
        scores: `Tensor[N]`.
        distance_threshold: metres, >= 0.
        score_threshold: only centres with `score > score_threshold` take part.
        pre_max: only the `pre_max` best-scored centres take part.
        post_max: at most this many centres are returned.

    Returns:
        `LongTensor[K]`: indices of the kept centres, highest score first.
    """
    if not isinstance(centers_xy, Tensor):
        raise FormatError(f"centers_xy must be a tensor, got {type(centers_xy).__name__}")
    if centers_xy.dim() != 2 or centers_xy.shape[1] < 2:
        raise ShapeError(f"centers_xy must have shape (N, 2+C), got {tuple(centers_xy.shape)}")
    xy = centers_xy[:, :2].double()
    check_finite(xy, "centers_xy", ("x", "y"))
    scores = check_scores(scores, xy.shape[0]).to(xy.device)
    thr = _check_threshold(distance_threshold, "distance_threshold", upper=None)

    def centres_radii(order: Tensor) -> tuple[Tensor, Tensor]:
        return xy[order], torch.full((order.numel(),), thr / 2, dtype=torch.float64, device=xy.device)

    def suppresses(order: Tensor) -> Predicate:
        c = xy[order]
        return lambda i, j: (c.index_select(0, i) - c.index_select(0, j)).square().sum(dim=1) <= thr * thr

    return _run(xy.shape[0], scores, score_threshold, pre_max, post_max, None, centres_radii, suppresses)
