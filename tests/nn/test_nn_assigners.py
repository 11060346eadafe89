"""Max-IoU assigner on hand-made cases and against a sequential reference; random and pseudo samplers."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from pc3d.errors import FormatError, ShapeError
from pc3d.nn import MaxIoUAssigner, PseudoSampler, RandomSampler, SamplingResult, box_iou
from pc3d.nn.assigners import AssignResult

# Hand-made scene: IoUs with g0 = (0, 0, 10, 10) and g1 = (100, 100, 104, 104) are in the comments.
ANCHORS = torch.tensor(
    [
        [0.0, 0.0, 10.0, 10.0],  # a0: 1.0 with g0 -> positive g0
        [0.0, 0.0, 10.0, 5.0],  # a1: 50 / 100 = 0.5 with g0 -> positive g0 (>= 0.5)
        [20.0, 20.0, 30.0, 30.0],  # a2: 0 with both -> negative
        [5.0, 0.0, 15.0, 10.0],  # a3: 50 / 150 = 0.333 with g0 -> between thresholds: ignored
        [100.0, 100.0, 110.0, 110.0],  # a4: 16 / 100 = 0.16 with g1 -> low-quality match for g1
    ]
)
GTS = torch.tensor([[0.0, 0.0, 10.0, 10.0], [100.0, 100.0, 104.0, 104.0]])
LABELS = torch.tensor([3, 7])


def test_hand_made_positive_negative_ignored_and_low_quality() -> None:
    result = MaxIoUAssigner(pos_iou_thr=0.5, neg_iou_thr=0.3, min_pos_iou=0.1).assign(ANCHORS, GTS, LABELS)
    assert result.num_gts == 2
    assert result.gt_inds.tolist() == [1, 1, 0, -1, 2]
    assert result.labels is not None and result.labels.tolist() == [3, 3, -1, -1, 7]
    torch.testing.assert_close(
        result.max_overlaps, torch.tensor([1.0, 0.5, 0.0, 1 / 3, 0.16]), rtol=1e-5, atol=1e-6
    )
    assert result.pos_mask.tolist() == [True, True, False, False, True]
    assert result.neg_mask.tolist() == [False, False, True, False, False]


def test_low_quality_matching_switches() -> None:
    no_lq = MaxIoUAssigner(pos_iou_thr=0.5, neg_iou_thr=0.3, match_low_quality=False).assign(ANCHORS, GTS)
    assert no_lq.gt_inds.tolist() == [1, 1, 0, -1, 0]  # a4 (0.16) is just a negative
    too_low = MaxIoUAssigner(pos_iou_thr=0.5, neg_iou_thr=0.3, min_pos_iou=0.2).assign(ANCHORS, GTS)
    assert too_low.gt_inds.tolist() == [1, 1, 0, -1, 0]
    assert too_low.labels is None


def test_low_quality_ties_and_the_later_gt_wins() -> None:
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [10.0, 0.0, 20.0, 10.0], [50.0, 50.0, 60.0, 60.0]])
    # g0 straddles a0 and a1 equally (IoU 25 / 125 = 0.2 each).
    gts = torch.tensor([[5.0, 2.5, 15.0, 7.5]])
    every_tie = MaxIoUAssigner(pos_iou_thr=0.5, neg_iou_thr=0.1, min_pos_iou=0.1).assign(anchors, gts)
    assert every_tie.gt_inds.tolist() == [1, 1, 0]
    first_only = MaxIoUAssigner(
        pos_iou_thr=0.5, neg_iou_thr=0.1, min_pos_iou=0.1, gt_max_assign_all=False
    ).assign(anchors, gts)
    assert first_only.gt_inds.tolist() == [1, -1, 0]  # a1's 0.2 is between 0.1 and 0.5: ignored
    # Two small gts whose best anchor is the same a0 (IoU 0.16 each): the later one takes it.
    two = torch.tensor([[0.0, 0.0, 4.0, 4.0], [6.0, 6.0, 10.0, 10.0]])
    result = MaxIoUAssigner(pos_iou_thr=0.5, neg_iou_thr=0.1, min_pos_iou=0.1).assign(
        anchors, two, torch.tensor([4, 9])
    )
    assert result.gt_inds.tolist() == [2, 0, 0]
    assert result.labels is not None and result.labels.tolist() == [9, -1, -1]


def test_gt_overlapping_nothing_claims_nothing() -> None:
    # min_pos_iou 0 (RetinaNet) with a gt far from every anchor: no low-quality match at IoU 0.
    gts = torch.tensor([[500.0, 500.0, 510.0, 510.0]])
    result = MaxIoUAssigner(pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0.0).assign(ANCHORS, gts)
    assert result.gt_inds.tolist() == [0, 0, 0, 0, 0]


def test_negative_range_and_ignore_regions() -> None:
    ranged = MaxIoUAssigner(pos_iou_thr=0.5, neg_iou_thr=(0.1, 0.4), match_low_quality=False).assign(
        ANCHORS, GTS
    )
    # IoU 0 (a2) is below the range: ignored; a3 (0.33) is a negative; a4 (0.16) too.
    assert ranged.gt_inds.tolist() == [1, 1, -1, 0, 0]
    ignore = torch.tensor([[18.0, 18.0, 40.0, 40.0]])  # covers a2 entirely (IoF 1)
    result = MaxIoUAssigner(pos_iou_thr=0.5, neg_iou_thr=0.3, min_pos_iou=0.1, ignore_iof_thr=0.5).assign(
        ANCHORS, GTS, gt_boxes_ignore=ignore
    )
    assert result.gt_inds.tolist() == [1, 1, -1, -1, 2]
    assert result.max_overlaps[2] == -1


def test_empty_inputs() -> None:
    assigner = MaxIoUAssigner(pos_iou_thr=0.5, neg_iou_thr=0.4)
    no_gt = assigner.assign(ANCHORS, torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    assert (
        no_gt.gt_inds.tolist() == [0] * 5 and no_gt.labels is not None and no_gt.labels.tolist() == [-1] * 5
    )
    no_box = assigner.assign(torch.zeros(0, 4), GTS)
    assert no_box.gt_inds.shape == (0,) and no_box.max_overlaps.shape == (0,)


def _sequential_reference(
    anchors: Tensor, gts: Tensor, pos: float, neg: float, min_pos: float, assign_all: bool
) -> list[int]:
    """MMDetection's algorithm written as plain loops (with pc3d's 'gt max > 0' rule)."""
    iou = box_iou(gts, anchors).tolist()
    num_gts, num = len(iou), len(iou[0])
    out = []
    for j in range(num):
        column = [iou[i][j] for i in range(num_gts)]
        best = max(column)
        arg = column.index(best)
        out.append(arg + 1 if best >= pos else (0 if 0 <= best < neg else -1))
    for i in range(num_gts):
        gt_best = max(iou[i])
        if gt_best >= min_pos and gt_best > 0:
            if assign_all:
                for j in range(num):
                    if iou[i][j] == gt_best:
                        out[j] = i + 1
            else:
                out[iou[i].index(gt_best)] = i + 1
    return out


@pytest.mark.parametrize("assign_all", [True, False])
def test_assigner_matches_a_sequential_reference(assign_all: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    # Anchors on a grid (so ties happen) and random gts.
    ys, xs = torch.meshgrid(torch.arange(0, 64, 8.0), torch.arange(0, 64, 8.0), indexing="ij")
    anchors = torch.cat(
        [
            torch.stack([xs, ys, xs + 16, ys + 16], -1).reshape(-1, 4),
            torch.stack([xs, ys, xs + 8, ys + 24], -1).reshape(-1, 4),
        ]
    )
    xy = torch.rand(12, 2, generator=gen) * 56
    gts = torch.cat([xy, xy + 2 + torch.rand(12, 2, generator=gen) * 20], dim=1)
    result = MaxIoUAssigner(
        pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0.2, gt_max_assign_all=assign_all
    ).assign(anchors, gts)
    assert result.gt_inds.tolist() == _sequential_reference(anchors, gts, 0.5, 0.4, 0.2, assign_all)
    # The scene exercises every outcome.
    assert {-1, 0}.issubset(set(result.gt_inds.tolist())) and int((result.gt_inds > 0).sum()) >= 8


def test_bad_assigner_input() -> None:
    with pytest.raises(FormatError, match="neg_iou_thr"):
        MaxIoUAssigner(pos_iou_thr=0.4, neg_iou_thr=0.5)
    with pytest.raises(ShapeError, match="gt_boxes"):
        MaxIoUAssigner(0.5, 0.4).assign(ANCHORS, torch.zeros(3, 5))
    with pytest.raises(ShapeError, match="gt_labels"):
        MaxIoUAssigner(0.5, 0.4).assign(ANCHORS, GTS, torch.tensor([1]))


# -------------------------------------------------------------------------------------- sampler
def _assignment(
    num_pos: int, num_neg: int, num_ignored: int, num_gts: int = 3
) -> tuple[AssignResult, Tensor, Tensor]:
    gt_inds = torch.cat(
        [
            torch.arange(num_pos) % num_gts + 1,
            torch.zeros(num_neg, dtype=torch.long),
            torch.full((num_ignored,), -1, dtype=torch.long),
        ]
    )
    # Shuffle deterministically so positives are not simply the first rows.
    gt_inds = gt_inds[torch.randperm(gt_inds.numel(), generator=torch.Generator().manual_seed(1))]
    labels = torch.where(gt_inds > 0, gt_inds + 10, -1)
    n = gt_inds.numel()
    boxes = torch.arange(n, dtype=torch.float32)[:, None] + torch.tensor([0.0, 0.0, 5.0, 5.0])
    gts = torch.tensor([[0.0, 0.0, 4.0, 4.0], [1.0, 1.0, 6.0, 6.0], [2.0, 2.0, 9.0, 9.0]])[:num_gts]
    return AssignResult(num_gts, gt_inds, torch.zeros(n), labels), boxes, gts


def test_sampler_respects_the_positive_fraction_and_never_draws_ignored() -> None:
    result, boxes, gts = _assignment(num_pos=100, num_neg=1000, num_ignored=50)
    sampler = RandomSampler(num=64, pos_fraction=0.25, add_gt_as_proposals=False)
    sample = sampler.sample(result, boxes, gts, generator=torch.Generator().manual_seed(0))
    assert sample.pos_inds.numel() == 16 and sample.neg_inds.numel() == 48
    assert (result.gt_inds[sample.pos_inds] > 0).all() and (result.gt_inds[sample.neg_inds] == 0).all()
    assert sample.pos_inds.unique().numel() == 16 and sample.neg_inds.unique().numel() == 48
    torch.testing.assert_close(sample.pos_gt_boxes, gts[result.gt_inds[sample.pos_inds] - 1])
    assert torch.equal(sample.pos_assigned_gt_inds, result.gt_inds[sample.pos_inds] - 1)
    assert torch.equal(sample.pos_boxes, boxes[sample.pos_inds]) and torch.equal(
        sample.neg_boxes, boxes[sample.neg_inds]
    )
    assert not sample.pos_is_gt.any()
    assert sample.boxes.shape == (64, 4)


def test_sampler_fills_with_negatives_and_caps_them() -> None:
    result, boxes, gts = _assignment(num_pos=5, num_neg=1000, num_ignored=0)
    gen = torch.Generator().manual_seed(0)
    sample = RandomSampler(num=64, pos_fraction=0.5, add_gt_as_proposals=False).sample(
        result, boxes, gts, generator=gen
    )
    assert sample.pos_inds.numel() == 5 and sample.neg_inds.numel() == 59
    capped = RandomSampler(num=64, pos_fraction=0.5, neg_pos_ub=3, add_gt_as_proposals=False).sample(
        result, boxes, gts, generator=gen
    )
    assert capped.pos_inds.numel() == 5 and capped.neg_inds.numel() == 15
    few = _assignment(num_pos=2, num_neg=3, num_ignored=4)
    small = RandomSampler(num=64, pos_fraction=0.5, add_gt_as_proposals=False).sample(*few, generator=gen)
    assert small.pos_inds.numel() == 2 and small.neg_inds.numel() == 3


def test_sampler_is_deterministic_with_a_generator_and_random_without_a_fixed_seed() -> None:
    result, boxes, gts = _assignment(num_pos=200, num_neg=2000, num_ignored=0)
    sampler = RandomSampler(num=128, pos_fraction=0.25, add_gt_as_proposals=False)
    a = sampler.sample(result, boxes, gts, generator=torch.Generator().manual_seed(7))
    b = sampler.sample(result, boxes, gts, generator=torch.Generator().manual_seed(7))
    c = sampler.sample(result, boxes, gts, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a.pos_inds, b.pos_inds) and torch.equal(a.neg_inds, b.neg_inds)
    assert not torch.equal(a.neg_inds, c.neg_inds)
    # Over many draws every negative is picked about equally often (uniform sampling).
    gen = torch.Generator().manual_seed(0)
    counts = torch.zeros(boxes.shape[0])
    for _ in range(200):
        counts[sampler.sample(result, boxes, gts, generator=gen).neg_inds] += 1
    negatives = counts[result.gt_inds == 0]
    expected = 200 * 96 / 2000  # 9.6 picks per negative
    assert abs(float(negatives.mean()) - expected) < 1e-4
    assert float(negatives.std()) < 2 * expected**0.5  # binomial spread, not a biased pick


def test_sampler_adds_gts_as_proposals() -> None:
    result, boxes, gts = _assignment(num_pos=0, num_neg=40, num_ignored=0)
    sample = RandomSampler(num=16, pos_fraction=0.5).sample(
        result, boxes, gts, gt_labels=torch.tensor([1, 2, 3]), generator=torch.Generator().manual_seed(0)
    )
    assert sample.pos_inds.tolist() == [0, 1, 2]  # the three prepended gts
    assert sample.pos_is_gt.all()
    torch.testing.assert_close(sample.pos_boxes, gts)
    torch.testing.assert_close(sample.pos_gt_boxes, gts)
    assert sample.pos_gt_labels is not None and sample.pos_gt_labels.tolist() == [1, 2, 3]
    assert sample.neg_inds.numel() == 13 and (sample.neg_inds >= 3).all()


def test_bad_sampler_input() -> None:
    result, boxes, gts = _assignment(num_pos=5, num_neg=5, num_ignored=0)
    with pytest.raises(FormatError, match="pos_fraction"):
        RandomSampler(num=8, pos_fraction=1.5)
    with pytest.raises(ShapeError, match="covers"):
        RandomSampler(num=8, pos_fraction=0.5).sample(result, boxes[:3], gts)
    with pytest.raises(FormatError, match="gt_labels"):
        RandomSampler(num=8, pos_fraction=0.5).sample(result, boxes, gts)


def test_pseudo_sampler_keeps_every_positive_and_negative() -> None:
    # Boxes 0..6: negative, positive of g1, ignored, positive of g0, negative, ignored, positive of g0.
    gt_inds = torch.tensor([0, 2, -1, 1, 0, -1, 1])
    labels = torch.tensor([-1, 7, -1, 3, -1, -1, 3])
    boxes = torch.arange(7, dtype=torch.float32)[:, None] + torch.tensor([0.0, 0.0, 5.0, 5.0])
    result = AssignResult(2, gt_inds, torch.zeros(7), labels)
    sample = PseudoSampler().sample(result, boxes, GTS)
    assert isinstance(sample, SamplingResult)
    assert sample.pos_inds.tolist() == [1, 3, 6] and sample.neg_inds.tolist() == [0, 4]
    assert sample.pos_assigned_gt_inds.tolist() == [1, 0, 0]
    assert sample.pos_gt_labels is not None and sample.pos_gt_labels.tolist() == [7, 3, 3]
    assert torch.equal(sample.pos_gt_boxes, GTS[[1, 0, 0]])
    assert torch.equal(sample.pos_boxes, boxes[[1, 3, 6]]) and torch.equal(sample.neg_boxes, boxes[[0, 4]])
    assert sample.num_gts == 2 and not sample.pos_is_gt.any()
    assert sample.boxes.shape == (5, 4)
    # The same picks as a random sampler with room for every box, and the same result type.
    everything = RandomSampler(num=100, pos_fraction=1.0, add_gt_as_proposals=False).sample(
        result, boxes, GTS
    )
    assert torch.equal(everything.pos_inds, sample.pos_inds) and torch.equal(
        everything.neg_inds, sample.neg_inds
    )


def test_pseudo_sampler_on_3d_boxes_without_gts_and_bad_input() -> None:
    anchors = torch.rand(5, 7)
    no_gts = torch.zeros(0, 7)
    result = MaxIoUAssigner(
        pos_iou_thr=0.6, neg_iou_thr=0.45, iou_calculator=lambda g, b: g.new_zeros(0, 5)
    ).assign(anchors, no_gts)
    sample = PseudoSampler().sample(result, anchors, no_gts)
    assert sample.pos_inds.numel() == 0 and sample.neg_inds.tolist() == [0, 1, 2, 3, 4]
    assert sample.pos_gt_boxes.shape == (0, 7) and sample.boxes.shape == (5, 7)
    with pytest.raises(ShapeError, match="covers"):
        PseudoSampler().sample(result, anchors[:3], no_gts)
