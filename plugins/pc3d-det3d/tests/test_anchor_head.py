"""Anchor3DHead: target assignment on a hand-made scene, loss, decoding, NMS and config errors."""

from __future__ import annotations

import math

import pytest
import torch

from pc3d.errors import FormatError
from pc3d.nn import AnchorGeneratorLike, PseudoSampler
from pc3d_det3d.anchor_head import Anchor3DHead, AnchorHeadOutput

CAR = [3.9, 1.6, 1.56]
PED = [0.8, 0.6, 1.73]


def _head(**overrides: object) -> Anchor3DHead:
    settings: dict = {
        "num_classes": 2,
        "in_channels": 8,
        # 8 x 8 map over a 16 m x 16 m range: 2 m cells, anchor centres at 1, 3, ..., 15 m.
        "anchor_generator": {
            "ranges": [[0, 0, -1.78, 16, 16, -1.78], [0, 0, -0.6, 16, 16, -0.6]],
            "sizes": [CAR, PED],
            "rotations": [0, math.pi / 2],
        },
        "assigner": [
            {"pos_iou_thr": 0.6, "neg_iou_thr": 0.45, "min_pos_iou": 0.45},
            {"pos_iou_thr": 0.5, "neg_iou_thr": 0.35, "min_pos_iou": 0.35},
        ],
        "test_cfg": {"nms_pre": 1000, "score_thr": 0.3, "nms_thr": 0.01, "max_num": 10},
    }
    settings.update(overrides)
    return Anchor3DHead(**settings)


def _output(head: Anchor3DHead, batch: int = 1) -> AnchorHeadOutput:
    return head(torch.zeros(batch, head.in_channels, 8, 8))


def _anchor_index(row: int, col: int, cls: int, rot: int, head: Anchor3DHead) -> int:
    return (row * 8 + col) * head.num_anchors + cls * head.num_rotations + rot


def test_targets_on_a_hand_made_scene() -> None:
    head = _head()
    anchors = head.anchors(_output(head))
    # A car exactly on the anchor of cell (row 2, col 3) with yaw 0, slightly longer.
    car = torch.tensor([[7.0, 5.0, -1.78, 4.2, 1.6, 1.56, 0.0]])
    targets = head._targets(anchors, car, torch.tensor([0]))
    positives = torch.nonzero(targets["positive"]).squeeze(1).tolist()
    assert positives == [_anchor_index(2, 3, 0, 0, head)]
    assert targets["labels"][positives].tolist() == [0]
    expected = head.box_coder.encode(anchors[positives], car)
    assert torch.allclose(targets["residuals"], expected)
    assert targets["residuals"][0, 3].item() == pytest.approx(math.log(4.2 / 3.9), abs=1e-6)
    # The same cell's turned car anchor overlaps 2.56 / 9.92 = 0.26 < 0.45: a negative.
    turned = _anchor_index(2, 3, 0, 1, head)
    assert targets["label_weights"][turned] == 1 and targets["labels"][turned] == head.num_classes
    # Pedestrian anchors never match a car; every anchor counts (no ignored one here).
    assert targets["label_weights"].min() == 1
    assert (targets["labels"] == head.num_classes).sum() == anchors.shape[0] - 1
    # Direction bin: yaw 0 shifted by +pi/2 lies in [0, pi) -> bin 0; a yaw of pi -> bin 1.
    assert targets["dir_bins"].tolist() == [0]
    turned_car = car.clone()
    turned_car[0, 6] = math.pi
    assert head._targets(anchors, turned_car, torch.tensor([0]))["dir_bins"].tolist() == [1]


def test_ignored_anchors_between_thresholds() -> None:
    head = _head()
    anchors = head.anchors(_output(head))
    # 0.6 m off the anchor at x = 7: IoU 3.3 / 4.5 = 0.73 with it (positive) and 2.5 / 5.3 = 0.47
    # with the next one at x = 9 (between the thresholds 0.45 and 0.6: ignored).
    car = torch.tensor([[7.6, 5.0, -1.78, 3.9, 1.6, 1.56, 0.0]])
    targets = head._targets(anchors, car, torch.tensor([0]))
    assert torch.nonzero(targets["positive"]).squeeze(1).tolist() == [_anchor_index(2, 3, 0, 0, head)]
    ignored = torch.nonzero(targets["label_weights"] == 0).squeeze(1).tolist()
    assert ignored == [_anchor_index(2, 4, 0, 0, head)]


def test_loss_falls_and_handles_empty_frames() -> None:
    torch.manual_seed(0)
    head = _head()
    features = torch.randn(2, 8, 8, 8)
    boxes = [
        torch.tensor([[7.0, 5.0, -1.78, 4.0, 1.7, 1.5, 0.3], [11.0, 11.0, -0.6, 0.8, 0.6, 1.73, 1.2]]),
        torch.zeros(0, 7),
    ]
    labels = [torch.tensor([0, 1]), torch.zeros(0, dtype=torch.long)]
    optimizer = torch.optim.Adam(head.parameters(), lr=0.01)
    losses = []
    for _ in range(60):
        loss = head.loss(head(features), boxes, labels)
        assert set(loss) == {"loss", "loss_cls", "loss_bbox", "loss_dir"}
        optimizer.zero_grad()
        loss["loss"].backward()
        optimizer.step()
        losses.append(loss["loss"].item())
    assert losses[-1] < 0.3 * losses[0]
    empty = head.loss(head(features[:1]), [torch.zeros(0, 7)], [torch.zeros(0, dtype=torch.long)])
    assert torch.isfinite(empty["loss"]) and empty["loss_bbox"].item() == 0.0


def test_predict_decodes_suppresses_per_class_and_restores_heading() -> None:
    head = _head()
    out = _output(head)
    cls = torch.full_like(out.cls_score, -10.0)
    reg = torch.zeros_like(out.bbox_pred)
    direction = torch.zeros_like(out.dir_cls_pred)
    # Car anchors of cells (2, 3) and (2, 4) overlap (4 m apart? no: 2 m apart, 3.9 m long).
    for (row, col), score in (((2, 3), 3.0), ((2, 4), 2.0)):
        cls[0, 0 * 2 + 0, row, col] = score  # anchor 0 (car, yaw 0), class 0 (car)
    cls[0, 2 * 2 + 1, 2, 3] = 1.0  # anchor 2 (pedestrian, yaw 0), class 1: another class, kept
    direction[0, 0 * 2 + 1, 2, 3] = 5.0  # car anchor at (2, 3) points backwards: bin 1
    dets = head.predict(AnchorHeadOutput(cls, reg, direction))[0]
    assert dets.labels.tolist() == [0, 1]
    assert dets.scores.tolist() == pytest.approx(
        [torch.sigmoid(torch.tensor(3.0)).item(), torch.sigmoid(torch.tensor(1.0)).item()]
    )
    boxes = dets.boxes.tensor
    assert boxes[0, :6].tolist() == pytest.approx([7.0, 5.0, -1.78, *CAR], abs=1e-5)
    # yaw 0 in bin 1: limit_period(0 + pi/2, 0, pi) - pi/2 + pi = pi.
    assert boxes[0, 6].item() == pytest.approx(math.pi, abs=1e-6)
    assert boxes[1, :2].tolist() == pytest.approx([7.0, 5.0])
    # A higher threshold drops everything below it.
    assert len(head.predict(AnchorHeadOutput(cls, reg, direction), score_thr=0.9)[0]) == 1


def test_config_errors_name_the_key() -> None:
    with pytest.raises(
        FormatError, match=r"model\.bbox_head\.anchor_generator\.sizes has 2 sizes for 3 classes"
    ):
        _head(num_classes=3)
    with pytest.raises(FormatError, match=r"model\.bbox_head\.assigner has 1 entries for 2 classes"):
        _head(assigner=[{"pos_iou_thr": 0.6, "neg_iou_thr": 0.45}])
    with pytest.raises(FormatError, match=r"model\.bbox_head\.test_cfg: unknown key 'nms_thres'.*nms_thr"):
        _head(test_cfg={"nms_thres": 0.1})
    three_ranges = {"ranges": [[0, 0, -1, 16, 16, -1]] * 3, "sizes": [CAR, PED]}
    with pytest.raises(
        FormatError,
        match=r"model\.bbox_head\.anchor_generator\.ranges: give one range, or one per size \(2\)",
    ):
        _head(anchor_generator=three_ranges)
    with pytest.raises(FormatError, match=r"model\.bbox_head\.anchor_generator: .*'rotation'"):
        _head(anchor_generator={"ranges": [[0, 0, -1, 16, 16, -1]], "sizes": [CAR, PED], "rotation": [0]})
    with pytest.raises(
        FormatError, match=r"anchor_generator\.generator: unknown anchor generator 'Aligned'.*known: "
    ):
        _head(
            anchor_generator={"ranges": [[0, 0, -1, 16, 16, -1]], "sizes": [CAR, PED], "generator": "Aligned"}
        )
    two_levels = {"ranges": [[0, 0, -1, 16, 16, -1]], "sizes": [CAR, PED], "scales": [1, 2]}
    with pytest.raises(FormatError, match=r"anchor_generator has 2 levels \(scales\).*one BEV map"):
        _head(anchor_generator=two_levels)
    head = _head()
    with pytest.raises(FormatError, match=r"\[0, 2\) = \[0, num_classes\) \(model\.bbox_head\.num_classes\)"):
        head.loss(_output(head), [torch.zeros(1, 7) + 1], [torch.tensor([2])])


def test_forward_equals_the_three_convs_and_trains_each() -> None:
    head = _head()
    features = torch.randn(2, head.in_channels, 8, 8, requires_grad=True)
    out = head(features)
    expected = (head.conv_cls(features), head.conv_reg(features), head.conv_dir_cls(features))
    for got, want in zip(out, expected, strict=True):
        torch.testing.assert_close(got, want)
    sum(o.sum() for o in out).backward()
    for conv in (head.conv_cls, head.conv_reg, head.conv_dir_cls):
        assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
        assert conv.bias is not None and conv.bias.grad is not None
        torch.testing.assert_close(conv.bias.grad, torch.full_like(conv.bias, 2 * 8 * 8))


def test_nearest_iou_calculator_is_mmdetection3d_bbox_overlaps_nearest_3d() -> None:
    from pc3d_det3d.anchor_head import IOU_CALCULATORS

    # A 4 x 2 m box turned by 1 rad (> 45 degrees) is, to the nearest axis-aligned box, 2 x 4 m:
    # against an unturned 4 x 2 m anchor on the same centre that overlaps 2 x 2 of 8 + 8 - 4.
    gt = torch.tensor([[0.0, 0.0, 0.0, 4.0, 2.0, 1.5, 1.0]])
    anchors = torch.tensor([[0.0, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0], [0.0, 0.0, 0.0, 4.0, 2.0, 1.5, 0.3]])
    nearest = IOU_CALCULATORS["nearest"](gt, anchors)
    assert nearest.shape == (1, 2) and nearest[0].tolist() == pytest.approx([1 / 3, 1 / 3])
    rotated = IOU_CALCULATORS["rotated"](gt, anchors)
    assert 1 / 3 < rotated[0, 0] < rotated[0, 1] < 1  # the exact overlap grows as the yaws meet
    head = _head(assigner={"pos_iou_thr": 0.6, "neg_iou_thr": 0.45, "iou_calculator": "nearest"})
    assert all(a.iou_calculator is IOU_CALCULATORS["nearest"] for a in head.assigners)
    assert _head().assigners[0].iou_calculator is IOU_CALCULATORS["rotated"]
    with pytest.raises(
        FormatError, match=r"assigner\[0\]\.iou_calculator: unknown overlap 'nearst'.*nearest"
    ):
        _head(assigner={"pos_iou_thr": 0.6, "neg_iou_thr": 0.45, "iou_calculator": "nearst"})


def test_targets_come_from_the_shared_pseudo_sampler() -> None:
    head = _head()
    assert isinstance(head.sampler, PseudoSampler)
    assert isinstance(head.anchor_generator, AnchorGeneratorLike)
    anchors = head.anchors(_output(head))
    car = torch.tensor([[7.0, 5.0, -1.78, 3.9, 1.6, 1.56, 0.0]])
    targets = head._targets(anchors, car, torch.tensor([0]))
    # Every anchor the assigner does not ignore weighs in the classification loss.
    car_anchors = torch.nonzero(
        (torch.arange(anchors.shape[0]) % head.num_anchors) // head.num_rotations == 0
    )[:, 0]
    ped_anchors = torch.nonzero(
        (torch.arange(anchors.shape[0]) % head.num_anchors) // head.num_rotations == 1
    )[:, 0]
    assigned = head.assigners[0].assign(anchors[car_anchors], car)
    expected = torch.zeros(anchors.shape[0])
    expected[car_anchors[assigned.gt_inds >= 0]] = 1.0
    expected[ped_anchors] = 1.0  # no pedestrian: all negatives
    assert torch.equal(targets["label_weights"], expected)
    assert torch.equal(targets["positive"].nonzero()[:, 0], car_anchors[assigned.gt_inds > 0])


def test_candidate_only_regression_gives_the_dense_detections() -> None:
    torch.manual_seed(0)
    head = _head(test_cfg={"nms_pre": 40, "score_thr": 0.0, "nms_thr": 0.01, "max_num": 10}).eval()
    for conv in (head.conv_cls, head.conv_reg, head.conv_dir_cls):
        torch.nn.init.normal_(conv.weight, std=0.5)
        torch.nn.init.normal_(conv.bias, std=0.5)
    features = torch.randn(2, head.in_channels, 8, 8)
    with torch.no_grad():
        dense = head.predict(head(features))
        head.regress_candidates_only = True
        calls = []
        head.register_forward_hook(lambda *args: calls.append(1))
        sparse = head.predict_features(features)
    assert calls == []  # the full-map forward never ran
    assert len(sparse) == 2 and all(len(d) > 0 for d in dense)
    for got, want in zip(sparse, dense, strict=True):
        torch.testing.assert_close(got.boxes.tensor, want.boxes.tensor, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(got.scores, want.scores, atol=1e-6, rtol=1e-6)
        assert torch.equal(got.labels, want.labels)
    # With autograd recording, or when nms_pre keeps every anchor, the dense path runs.
    head.predict_features(features)
    assert calls == [1]
