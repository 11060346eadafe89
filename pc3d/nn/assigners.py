"""Label assignment for anchor/proposal based heads: max-IoU assigner, random and pseudo samplers.

Assignment codes follow MMDetection: for each of N boxes (anchors or proposals), `gt_inds` is
`0` for a negative, `-1` for an ignored box and `i + 1` when it is a positive for ground truth `i`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from pc3d.errors import FormatError, ShapeError
from pc3d.ops.iou_2d import bbox_overlaps


@dataclass(frozen=True)
class AssignResult:
    """Result of assigning N boxes to M ground truths.

    Attributes:
        num_gts: M.
        gt_inds: `LongTensor[N]`: 0 negative, -1 ignored, `i + 1` positive for gt `i`.
        max_overlaps: `Tensor[N]`, the best IoU of each box with any gt (-1 where an ignore
            region removed it; 0 when there is no gt).
        labels: `LongTensor[N]`, the class of the assigned gt for positives, -1 elsewhere; None
            when no labels were given.
    """

    num_gts: int
    gt_inds: Tensor
    max_overlaps: Tensor
    labels: Tensor | None

    @property
    def pos_mask(self) -> Tensor:
        return self.gt_inds > 0

    @property
    def neg_mask(self) -> Tensor:
        return self.gt_inds == 0


def _check_boxes(boxes: Tensor, what: str, width: int | None = 4) -> None:
    if not isinstance(boxes, Tensor) or boxes.dim() != 2 or (width is not None and boxes.shape[-1] != width):
        shape = tuple(boxes.shape) if isinstance(boxes, Tensor) else type(boxes).__name__
        if width == 4:
            raise ShapeError(f"{what} must have shape (N, 4) as x1, y1, x2, y2, got {shape}")
        raise ShapeError(f"{what} must have shape (N, {width or 'D'}), got {shape}")


class MaxIoUAssigner:
    """Assign each box to the gt it overlaps most, by IoU thresholds.

    In order (later rules override earlier ones):

    1. every box starts ignored (-1);
    2. boxes whose best IoU is in `[0, neg_iou_thr)` (or in `[lo, hi)` for a pair) are negatives;
    3. boxes whose best IoU is `>= pos_iou_thr` are positives of that gt;
    4. with `match_low_quality`, each gt whose best IoU is `>= min_pos_iou` and `> 0` also takes
       the box(es) reaching that best IoU (all ties with `gt_max_assign_all`, else the first),
       so no gt is left without a positive; when two gts claim one box, the later gt wins.

    With `ignore_iof_thr > 0`, boxes covered by an ignore region (intersection over the box's
    own area `> ignore_iof_thr`) get overlap -1 with every gt, so they end up ignored.

    The rule `> 0` in step 4 departs from MMDetection, where a gt that overlaps no box at all
    (IoU 0 everywhere) with `min_pos_iou = 0` would claim *every* box as a positive.

    Args:
        pos_iou_thr: IoU at or above which a box is positive.
        neg_iou_thr: IoU below which a box is negative, or an `(lo, hi)` range.
        min_pos_iou: least IoU of a low-quality match.
        gt_max_assign_all: give a gt all boxes tied at its best IoU in step 4.
        match_low_quality: run step 4.
        ignore_iof_thr: IoF threshold for ignore regions (<= 0 disables them).
        iou_calculator: ``f(gt_boxes[M, D], boxes[N, D]) -> Tensor[M, N]`` overlaps; the default
            is the 2D IoU of ``x1, y1, x2, y2`` boxes. A 3D head passes the BEV rotated IoU of
            ``(N, 7)`` boxes (``pc3d.ops.box_iou_bev``). Ignore regions need the default.
    """

    def __init__(
        self,
        pos_iou_thr: float,
        neg_iou_thr: float | Sequence[float],
        min_pos_iou: float = 0.0,
        gt_max_assign_all: bool = True,
        match_low_quality: bool = True,
        ignore_iof_thr: float = -1.0,
        iou_calculator: Callable[[Tensor, Tensor], Tensor] | None = None,
    ) -> None:
        if isinstance(neg_iou_thr, Sequence):
            if len(neg_iou_thr) != 2 or not float(neg_iou_thr[0]) <= float(neg_iou_thr[1]):
                raise FormatError(
                    f"neg_iou_thr must be a number or an (lo, hi) pair with lo <= hi, got {neg_iou_thr!r}"
                )
            neg_range = (float(neg_iou_thr[0]), float(neg_iou_thr[1]))
        else:
            neg_range = (0.0, float(neg_iou_thr))
        if neg_range[1] > pos_iou_thr:
            raise FormatError(f"neg_iou_thr ({neg_range[1]}) must not exceed pos_iou_thr ({pos_iou_thr})")
        self.pos_iou_thr = float(pos_iou_thr)
        self.neg_range = neg_range
        self.min_pos_iou = float(min_pos_iou)
        self.gt_max_assign_all = gt_max_assign_all
        self.match_low_quality = match_low_quality
        self.ignore_iof_thr = float(ignore_iof_thr)
        if iou_calculator is not None and self.ignore_iof_thr > 0:
            raise FormatError("ignore regions (ignore_iof_thr > 0) need the default 2D iou_calculator")
        self.iou_calculator = iou_calculator

    def assign(
        self,
        boxes: Tensor,
        gt_boxes: Tensor,
        gt_labels: Tensor | None = None,
        gt_boxes_ignore: Tensor | None = None,
    ) -> AssignResult:
        """Assign `boxes` (`Tensor[N, D]`) to `gt_boxes` (`Tensor[M, D]`, classes `LongTensor[M]`).

        ``D`` is 4 (``x1, y1, x2, y2``) with the default IoU, or what ``iou_calculator`` takes.

        `gt_boxes_ignore` is `Tensor[K, 4]` of regions whose boxes are neither positive nor negative.
        """
        width = 4 if self.iou_calculator is None else boxes.shape[-1] if isinstance(boxes, Tensor) else None
        _check_boxes(boxes, "boxes", width)
        _check_boxes(gt_boxes, "gt_boxes", width)
        if gt_labels is not None and (gt_labels.dim() != 1 or gt_labels.shape[0] != gt_boxes.shape[0]):
            raise ShapeError(
                f"gt_labels must have shape ({gt_boxes.shape[0]},), got {tuple(gt_labels.shape)}"
            )
        num_boxes, num_gts = boxes.shape[0], gt_boxes.shape[0]
        device = boxes.device
        gt_boxes = gt_boxes.to(device=device, dtype=boxes.dtype)
        if num_gts == 0 or num_boxes == 0:
            # No gt: every box is background (there is nothing to ignore it for).
            return AssignResult(
                num_gts=num_gts,
                gt_inds=torch.zeros(num_boxes, dtype=torch.long, device=device),
                max_overlaps=boxes.new_zeros(num_boxes),
                labels=None
                if gt_labels is None
                else torch.full((num_boxes,), -1, dtype=torch.long, device=device),
            )
        if self.iou_calculator is None:
            overlaps = bbox_overlaps(gt_boxes, boxes)  # [M, N]
        else:
            overlaps = self.iou_calculator(gt_boxes, boxes).to(boxes.dtype)
        if self.ignore_iof_thr > 0 and gt_boxes_ignore is not None and gt_boxes_ignore.numel() > 0:
            _check_boxes(gt_boxes_ignore, "gt_boxes_ignore")
            iof = bbox_overlaps(boxes, gt_boxes_ignore.to(device=device, dtype=boxes.dtype), "iof")
            overlaps = overlaps.masked_fill((iof.amax(dim=1) > self.ignore_iof_thr)[None, :], -1.0)
        max_overlaps, argmax = overlaps.max(dim=0)
        gt_inds = torch.full((num_boxes,), -1, dtype=torch.long, device=device)
        lo, hi = self.neg_range
        gt_inds[(max_overlaps >= lo) & (max_overlaps < hi)] = 0
        positive = max_overlaps >= self.pos_iou_thr
        gt_inds = torch.where(positive, argmax + 1, gt_inds)
        if self.match_low_quality:
            gt_max = overlaps.amax(dim=1)  # [M]
            eligible = (gt_max >= self.min_pos_iou) & (gt_max > 0)
            if self.gt_max_assign_all:
                claims = (overlaps == gt_max[:, None]) & eligible[:, None]
            else:
                claims = torch.zeros_like(overlaps, dtype=torch.bool)
                claims[torch.arange(num_gts, device=device), overlaps.argmax(dim=1)] = True
                claims &= eligible[:, None]
            # The highest claiming gt index = the winner of a sequential loop over the gts.
            ranks = torch.arange(1, num_gts + 1, device=device)[:, None]
            winner = (claims.long() * ranks).amax(dim=0)
            gt_inds = torch.where(winner > 0, winner, gt_inds)
        labels = None
        if gt_labels is not None:
            gt_labels = gt_labels.to(device=device, dtype=torch.long)
            labels = torch.where(
                gt_inds > 0, gt_labels[(gt_inds - 1).clamp(min=0)], torch.full_like(gt_inds, -1)
            )
        return AssignResult(num_gts=num_gts, gt_inds=gt_inds, max_overlaps=max_overlaps, labels=labels)


@dataclass(frozen=True)
class SamplingResult:
    """Boxes picked for a loss by a sampler (indices into `boxes` -- with the gts prepended when
    the sampler adds them as proposals).

    Attributes:
        pos_inds, neg_inds: `LongTensor[P]`, `LongTensor[Q]`, ascending.
        pos_boxes, neg_boxes: `Tensor[P, D]`, `Tensor[Q, D]` (``D = 4`` for 2D boxes, 7 for 3D).
        pos_gt_boxes: `Tensor[P, D]`, the gt of each positive.
        pos_assigned_gt_inds: `LongTensor[P]`, 0-based gt index of each positive.
        pos_gt_labels: `LongTensor[P]` or None.
        pos_is_gt: `BoolTensor[P]`, positives that are gt boxes added as proposals.
        num_gts: number of gts.
    """

    pos_inds: Tensor
    neg_inds: Tensor
    pos_boxes: Tensor
    neg_boxes: Tensor
    pos_gt_boxes: Tensor
    pos_assigned_gt_inds: Tensor
    pos_gt_labels: Tensor | None
    pos_is_gt: Tensor
    num_gts: int

    @property
    def boxes(self) -> Tensor:
        """`Tensor[P + Q, D]`: positives then negatives."""
        return torch.cat([self.pos_boxes, self.neg_boxes], dim=0)


class RandomSampler:
    """Sample up to `num` boxes, at most `pos_fraction` of them positive, uniformly at random.

    Positives are drawn first (`min(int(num * pos_fraction), available)`), negatives fill the rest
    (capped at `neg_pos_ub * max(1, positives)` when `neg_pos_ub >= 0`). Ignored boxes are never
    drawn. With `add_gt_as_proposals`, the gt boxes are prepended to the candidates as positives
    of themselves (two-stage detectors do this so the box head always sees good proposals).

    Randomness comes from a CPU `torch.Generator` (or the global CPU generator), so the same seed
    draws the same boxes on any device.
    """

    def __init__(
        self, num: int, pos_fraction: float, neg_pos_ub: float = -1, add_gt_as_proposals: bool = True
    ) -> None:
        if isinstance(num, bool) or not isinstance(num, int) or num < 1:
            raise FormatError(f"num must be a positive int, got {num!r}")
        if not 0.0 <= pos_fraction <= 1.0:
            raise FormatError(f"pos_fraction must be in [0, 1], got {pos_fraction!r}")
        self.num = num
        self.pos_fraction = float(pos_fraction)
        self.neg_pos_ub = neg_pos_ub
        self.add_gt_as_proposals = add_gt_as_proposals

    @staticmethod
    def _choose(candidates: Tensor, count: int, generator: torch.Generator | None) -> Tensor:
        if count >= candidates.numel():
            return candidates
        pick = torch.randperm(candidates.numel(), generator=generator)[:count].to(candidates.device)
        return candidates[pick].sort().values

    def sample(
        self,
        assign_result: AssignResult,
        boxes: Tensor,
        gt_boxes: Tensor,
        gt_labels: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> SamplingResult:
        """Sample from `boxes` (`Tensor[N, D]`, assigned by `assign_result`) with gts `Tensor[M, D]`."""
        _check_sample_inputs(assign_result, boxes, gt_boxes)
        if generator is not None and generator.device.type != "cpu":
            raise FormatError(
                "the sampler's generator must be a CPU torch.Generator (results then match on every device)"
            )
        device = boxes.device
        gt_boxes = gt_boxes.to(device=device, dtype=boxes.dtype)
        gt_inds = assign_result.gt_inds
        labels = assign_result.labels
        num_gts = gt_boxes.shape[0]
        is_gt = torch.zeros(boxes.shape[0], dtype=torch.bool, device=device)
        if self.add_gt_as_proposals and num_gts > 0:
            boxes = torch.cat([gt_boxes, boxes], dim=0)
            gt_inds = torch.cat([torch.arange(1, num_gts + 1, device=device), gt_inds])
            is_gt = torch.cat([torch.ones(num_gts, dtype=torch.bool, device=device), is_gt])
            if labels is not None:
                if gt_labels is None:
                    raise FormatError(
                        "the assign result has labels, so sample() needs gt_labels to add gts as proposals"
                    )
                labels = torch.cat([gt_labels.to(device=device, dtype=torch.long), labels])
        pos_candidates = torch.nonzero(gt_inds > 0).flatten()
        neg_candidates = torch.nonzero(gt_inds == 0).flatten()
        pos_inds = self._choose(pos_candidates, int(self.num * self.pos_fraction), generator)
        num_neg = self.num - pos_inds.numel()
        if self.neg_pos_ub >= 0:
            num_neg = min(num_neg, int(self.neg_pos_ub * max(1, pos_inds.numel())))
        neg_inds = self._choose(neg_candidates, num_neg, generator)
        return _sampling_result(boxes, gt_boxes, gt_inds, labels, is_gt, pos_inds, neg_inds)


class PseudoSampler:
    """Keep every positive and every negative box (ignored ones stay out): no sampling.

    The sampler of single-stage heads that weigh all anchors in their loss (RetinaNet,
    MMDetection3D's PointPillars and SECOND, there ``PseudoSampler``); it has
    :class:`RandomSampler`'s :meth:`sample` signature and returns the same
    :class:`SamplingResult`, so a head switches samplers without other changes. Nothing is drawn
    at random (``generator`` is accepted and unused) and no gt is added as a proposal.
    """

    # RandomSampler.sample's signature on purpose (a head swaps samplers without other changes);
    # the shared steps are _check_sample_inputs and _sampling_result.
    def sample(
        self,
        assign_result: AssignResult,
        boxes: Tensor,
        gt_boxes: Tensor,
        gt_labels: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> SamplingResult:
        """All positives and negatives of `boxes` (`Tensor[N, D]`, assigned by `assign_result`)
        with gts `Tensor[M, D]`; ``gt_labels`` and ``generator`` are accepted for the sampler
        interface and not needed."""
        _check_sample_inputs(assign_result, boxes, gt_boxes)
        gt_inds = assign_result.gt_inds
        pos_inds = torch.nonzero(gt_inds > 0).flatten()
        neg_inds = torch.nonzero(gt_inds == 0).flatten()
        gt_boxes = gt_boxes.to(device=boxes.device, dtype=boxes.dtype)
        return _sampling_result(boxes, gt_boxes, gt_inds, assign_result.labels, None, pos_inds, neg_inds)

    def __repr__(self) -> str:
        return "PseudoSampler()"


def _check_sample_inputs(assign_result: AssignResult, boxes: Tensor, gt_boxes: Tensor) -> None:
    width = boxes.shape[-1] if isinstance(boxes, Tensor) and boxes.dim() == 2 and boxes.shape[-1] >= 4 else 4
    _check_boxes(boxes, "boxes", width)
    _check_boxes(gt_boxes, "gt_boxes", width)
    if assign_result.gt_inds.shape[0] != boxes.shape[0] or assign_result.num_gts != gt_boxes.shape[0]:
        raise ShapeError(
            f"assign_result covers {assign_result.gt_inds.shape[0]} boxes and {assign_result.num_gts} gts, "
            f"got {boxes.shape[0]} boxes and {gt_boxes.shape[0]} gts"
        )


def _sampling_result(
    boxes: Tensor,
    gt_boxes: Tensor,
    gt_inds: Tensor,
    labels: Tensor | None,
    is_gt: Tensor | None,
    pos_inds: Tensor,
    neg_inds: Tensor,
) -> SamplingResult:
    """The :class:`SamplingResult` of picked positives and negatives (indices into ``boxes``;
    ``is_gt`` marks the boxes that are gts added as proposals, None when there are none)."""
    num_gts = gt_boxes.shape[0]
    assigned = gt_inds[pos_inds] - 1
    return SamplingResult(
        pos_inds=pos_inds,
        neg_inds=neg_inds,
        pos_boxes=boxes[pos_inds],
        neg_boxes=boxes[neg_inds],
        pos_gt_boxes=gt_boxes[assigned] if num_gts > 0 else boxes.new_zeros((0, boxes.shape[-1])),
        pos_assigned_gt_inds=assigned,
        pos_gt_labels=None if labels is None else labels[pos_inds],
        pos_is_gt=torch.zeros_like(pos_inds, dtype=torch.bool) if is_gt is None else is_gt[pos_inds],
        num_gts=num_gts,
    )
