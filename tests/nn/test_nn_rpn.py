"""RPN head: output shapes, proposals against a per-image/per-level reference, NMS, loss."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from pc3d.errors import FormatError, ShapeError
from pc3d.nn import AnchorGenerator, RPNHead, box_iou

from .reference_rpn import reference_proposals


def _head(**kwargs: object) -> RPNHead:
    torch.manual_seed(0)
    anchors = AnchorGenerator(strides=[4, 8], ratios=[0.5, 1.0, 2.0], scales=[4.0])
    return RPNHead(in_channels=8, feat_channels=8, anchor_generator=anchors, **kwargs)  # type: ignore[arg-type]


def _maps(head: RPNHead, seed: int = 0) -> tuple[list[Tensor], list[Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    feats = [torch.randn(2, 8, 12, 16, generator=gen), torch.randn(2, 8, 6, 8, generator=gen)]
    scores, deltas = head(feats)
    # Spread the scores and deltas beyond what a fresh head gives, so NMS has real work.
    return [s * 50 for s in scores], [d * 20 for d in deltas]


def test_head_output_shapes() -> None:
    head = _head()
    scores, deltas = head([torch.randn(2, 8, 12, 16), torch.randn(2, 8, 6, 8)])
    assert [tuple(s.shape) for s in scores] == [(2, 3, 12, 16), (2, 3, 6, 8)]
    assert [tuple(d.shape) for d in deltas] == [(2, 12, 12, 16), (2, 12, 6, 8)]


@pytest.mark.parametrize(
    ("nms_pre", "max_per_img", "min_size"), [(1000, 1000, 0.0), (40, 30, 0.0), (100, 50, 6.0)]
)
def test_proposals_match_the_per_imagereference_proposals(
    nms_pre: int, max_per_img: int, min_size: float
) -> None:
    head = _head(nms_pre=nms_pre, max_per_img=max_per_img, min_bbox_size=min_size)
    with torch.no_grad():
        scores, deltas = _maps(head)
    sizes = [(48, 64), (40, 50)]
    proposals = head.get_proposals(scores, deltas, sizes)
    expected = reference_proposals(head, scores, deltas, sizes)
    assert len(proposals) == 2
    for got, want, (h, w) in zip(proposals, expected, sizes):
        assert got.shape[1] == 5 and 0 < got.shape[0] <= max_per_img
        torch.testing.assert_close(got, want)
        assert (got[:-1, 4] >= got[1:, 4]).all()  # best first
        assert (got[:, [0, 2]] >= 0).all() and (got[:, [0, 2]] <= w).all()
        assert (got[:, [1, 3]] >= 0).all() and (got[:, [1, 3]] <= h).all()
        if min_size > 0:
            assert ((got[:, 2:4] - got[:, :2]) > min_size).all()


def test_nms_is_applied() -> None:
    head = _head(nms_across_levels=True)
    with torch.no_grad():
        scores, deltas = _maps(head, seed=1)
    sizes = [(48, 64), (48, 64)]
    with_nms = head.get_proposals(scores, deltas, sizes)
    head.iou_threshold = 1.0  # nothing has IoU > 1: no suppression
    without = head.get_proposals(scores, deltas, sizes)
    for a, b in zip(with_nms, without):
        assert a.shape[0] < b.shape[0]
        iou = box_iou(a[:, :4], a[:, :4]).fill_diagonal_(0)
        assert float(iou.max()) <= 0.7 + 1e-6
        # and the unsuppressed set really had overlapping boxes
        assert float(box_iou(b[:, :4], b[:, :4]).fill_diagonal_(0).max()) > 0.7


def test_duplicate_anchor_boxes_are_suppressed() -> None:
    # One level, 1 x 2 cells of stride 100 and a single 8 x 8 anchor; the deltas move both cells'
    # anchors onto the same box, so NMS keeps only the better one.
    anchors = AnchorGenerator(strides=[100], ratios=[1.0], scales=[0.08], center_offset=0.5)
    head = RPNHead(in_channels=1, feat_channels=1, anchor_generator=anchors)
    scores = [torch.tensor([[[[2.0, 1.0]]]])]
    # anchors: (46, 46, 54, 54) and (146, 46, 154, 54); shift the second by dx = -100 / 8.
    deltas = [torch.zeros(1, 4, 1, 2)]
    deltas[0][0, 0, 0, 1] = -12.5
    proposals = head.get_proposals(scores, deltas, [(200, 200)])[0]
    assert proposals.shape == (1, 5)
    torch.testing.assert_close(proposals[0, :4], torch.tensor([46.0, 46.0, 54.0, 54.0]))
    torch.testing.assert_close(proposals[0, 4], torch.tensor(2.0).sigmoid())


def test_loss_is_finite_and_trains_the_head() -> None:
    head = _head()
    feats = [torch.randn(2, 8, 12, 16), torch.randn(2, 8, 6, 8)]
    gts = [torch.tensor([[8.0, 8.0, 30.0, 26.0], [34.0, 4.0, 50.0, 40.0]]), torch.zeros(0, 4)]
    gen = torch.Generator().manual_seed(0)
    losses = head.loss(*head(feats), gts, [(48, 64), (40, 50)], generator=gen)
    assert set(losses) == {"loss_rpn_cls", "loss_rpn_bbox"}
    assert all(torch.isfinite(v) for v in losses.values()) and losses["loss_rpn_cls"] > 0
    sum(losses.values()).backward()
    for name, p in head.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    # A few steps of SGD on one batch lower the loss.
    optimiser = torch.optim.SGD(head.parameters(), lr=0.5)
    first = None
    for _ in range(15):
        optimiser.zero_grad()
        loss = sum(
            head.loss(
                *head(feats), gts, [(48, 64), (40, 50)], generator=torch.Generator().manual_seed(0)
            ).values()
        )
        first = float(loss.detach()) if first is None else first
        loss.backward()
        optimiser.step()
    assert float(loss.detach()) < 0.7 * first
    # No gt at all: only negatives, zero box loss.
    none = head.loss(*head(feats), [torch.zeros(0, 4)] * 2, [(48, 64)] * 2)
    assert none["loss_rpn_bbox"] == 0 and none["loss_rpn_cls"] > 0


def test_bad_rpn_input() -> None:
    class Mixed(AnchorGenerator):
        # A generator with different anchor counts per level cannot share one conv head.
        @property
        def num_base_anchors(self) -> list[int]:
            return [3, 6]

    with pytest.raises(FormatError, match="same anchor count"):
        RPNHead(8, 8, Mixed(strides=[4, 8], ratios=[1.0], scales=[1.0]))
    head = _head()
    with pytest.raises(ShapeError, match="2 levels"):
        head([torch.randn(1, 8, 4, 4)])
    with pytest.raises(ShapeError, match="image_sizes"):
        head.get_proposals(*head([torch.randn(2, 8, 4, 4), torch.randn(2, 8, 2, 2)]), [(16, 16)])
    with pytest.raises(ShapeError, match="gt_boxes"):
        head.loss(
            *head([torch.randn(2, 8, 4, 4), torch.randn(2, 8, 2, 2)]), [torch.zeros(0, 4)], [(16, 16)] * 2
        )
