"""det2d plugin: StridedConvNet, single-level FCOS head, SingleStageDetector2D."""

from __future__ import annotations

import math

import pytest
import torch

from pc3d.config import ConfigError, build, load_config
from pc3d.errors import FormatError, ShapeError
from pc3d.plugins import PluginManager
from pc3d_det2d import (
    FCOSOutput,
    SingleLevelFCOSHead,
    SingleStageDetector2D,
    StridedConvNet,
    assign_fcos_targets,
    giou_loss_ltrb,
    sigmoid_focal_loss,
)

CONFIG = "fcos-single-level-tiny_coco.yaml"


@pytest.fixture(scope="module")
def manager():
    return PluginManager(allow=["det2d"], block=[]).load()


def test_assignment_prefers_the_smallest_box_and_measures_edges():
    # stride 4 on a 4x4 map: location (row i, col j) sits at pixel (4j + 2, 4i + 2).
    big = torch.tensor([0.0, 0.0, 16.0, 16.0])
    small = torch.tensor([4.0, 4.0, 12.0, 8.0])  # contains only locations (1, 1) and (1, 2)
    targets = assign_fcos_targets(
        [torch.stack([big, small])], [torch.tensor([0, 1])], (4, 4), stride=4, num_classes=2
    )
    labels = targets.labels.view(4, 4)
    expected = torch.zeros(4, 4, dtype=torch.long)
    expected[1, 1] = expected[1, 2] = 1
    assert torch.equal(labels, expected)
    # Location (1, 1) at pixel (6, 6): 2 px from the left, top and bottom of the small box, 6 px
    # from its right.
    assert torch.allclose(targets.box_ltrb[0, 5], torch.tensor([2.0, 2.0, 6.0, 2.0]))
    assert targets.centerness[0, 5] == pytest.approx(math.sqrt(2 / 6))
    assert targets.centerness[0, 0] == pytest.approx(math.sqrt((2 / 14) * (2 / 14)))


def test_assignment_background_and_bad_boxes():
    empty = assign_fcos_targets([torch.zeros(0, 4)], [torch.zeros(0, dtype=torch.long)], (2, 3), 8, 3)
    assert torch.equal(empty.labels, torch.full((1, 6), -1))
    assert float(empty.centerness.abs().sum()) == 0.0
    with pytest.raises(FormatError, match=r"gt_boxes\[0\]: every box needs finite x1 < x2"):
        assign_fcos_targets([torch.tensor([[5.0, 0.0, 5.0, 4.0]])], [torch.tensor([0])], (2, 2), 8, 3)
    with pytest.raises(FormatError, match=r"gt_labels\[0\] must lie in \[0, 3\)"):
        assign_fcos_targets([torch.tensor([[0.0, 0.0, 5.0, 4.0]])], [torch.tensor([3])], (2, 2), 8, 3)


def test_giou_and_focal_losses_on_known_values():
    box = torch.tensor([[2.0, 3.0, 4.0, 5.0]])
    assert giou_loss_ltrb(box, box).item() == pytest.approx(0.0, abs=1e-6)
    # Same point, prediction twice as large on every side: IoU = 1/4, enclosing = union.
    assert giou_loss_ltrb(box * 2, box).item() == pytest.approx(0.75, abs=1e-6)
    logits = torch.tensor([10.0, -10.0, 0.0])
    targets = torch.tensor([1.0, 0.0, 1.0])
    loss = sigmoid_focal_loss(logits, targets)
    assert loss[:2].max() < 1e-6
    assert loss[2].item() == pytest.approx(0.25 * math.log(2) * 0.25, rel=1e-5)


def test_decoding_a_perfect_output_gives_each_box_once():
    head = SingleLevelFCOSHead(in_channels=4, num_classes=3, stride=4)
    boxes = [torch.tensor([[2.0, 3.0, 18.0, 13.0], [20.0, 16.0, 30.0, 31.0]]), torch.zeros(0, 4)]
    labels = [torch.tensor([2, 0]), torch.zeros(0, dtype=torch.long)]
    targets = assign_fcos_targets(boxes, labels, (8, 8), stride=4, num_classes=3)
    positive = targets.labels >= 0  # [B, 64]
    one_hot = torch.nn.functional.one_hot(targets.labels.clamp(min=0), 3) * positive[..., None]
    perfect = FCOSOutput(
        torch.where(one_hot.bool(), 10.0, -10.0).transpose(1, 2).reshape(2, 3, 8, 8),
        targets.box_ltrb.clamp(min=1e-3).transpose(1, 2).reshape(2, 4, 8, 8),
        torch.where(positive, 10.0, -10.0).reshape(2, 1, 8, 8),
    )
    first, second = head.predict(perfect, score_threshold=0.5)
    order = torch.argsort(first.labels)
    assert torch.equal(first.labels[order], torch.tensor([0, 2]))
    assert torch.allclose(first.boxes[order], boxes[0][[1, 0]], atol=1e-4)
    assert len(second) == 0


def test_shapes_gradient_and_stride_check():
    model = SingleStageDetector2D(StridedConvNet(3, [8, 16], [2, 2]), SingleLevelFCOSHead(16, 3, 4, 16, 1))
    images = torch.randn(2, 3, 32, 24, requires_grad=True)
    output = model(images)
    assert output.cls_logits.shape == (2, 3, 8, 6)
    assert output.box_ltrb.shape == (2, 4, 8, 6) and bool((output.box_ltrb > 0).all())
    assert output.centerness.shape == (2, 1, 8, 6)
    boxes = [torch.tensor([[2.0, 2.0, 20.0, 14.0]]), torch.zeros(0, 4)]
    labels = [torch.tensor([2]), torch.zeros(0, dtype=torch.long)]
    model.loss(images, boxes, labels)["loss"].backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    with pytest.raises(ShapeError, match="head.stride is 8 but backbone.out_stride is 4"):
        SingleStageDetector2D(StridedConvNet(3, [8, 16], [2, 2]), SingleLevelFCOSHead(16, 3, 8))


def test_config_builds_and_trains_on_a_tiny_fixed_batch(manager):
    torch.manual_seed(0)
    config = load_config(
        CONFIG,
        ["model.backbone.channels=[8, 16]", "model.backbone.strides=[2, 2]",
         "model.head={type: SingleLevelFCOSHead, in_channels: 16, num_classes: 2, stride: 4, "
         "feat_channels: 16, num_convs: 1}"],
        search_dirs=manager.config_dirs(),
    )
    model = build(config.node("model"), kind="model", registry=manager.registry)
    images = torch.zeros(2, 3, 32, 32)
    images[0, :, 4:20, 6:26] = 1.0  # a bright rectangle (class 0)
    images[1, 0, 12:28, 8:20] = 1.0  # a red one (class 1)
    boxes = [torch.tensor([[6.0, 4.0, 26.0, 20.0]]), torch.tensor([[8.0, 12.0, 20.0, 28.0]])]
    labels = [torch.tensor([0]), torch.tensor([1])]
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(20):
        loss = model.loss(images, boxes, labels)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.5 * losses[0], losses
    model.eval()
    detections = model.predict(images, score_threshold=0.0, max_detections=5)
    assert [len(d) <= 5 for d in detections] == [True, True]
    for found in detections:
        assert found.boxes.shape[1] == 4 and bool((found.boxes >= 0).all() and (found.boxes <= 32).all())
        assert torch.all(found.scores[:-1] >= found.scores[1:])


def test_shipped_config_builds(manager):
    config = load_config(CONFIG, search_dirs=manager.config_dirs())
    model = build(config.node("model"), kind="model", registry=manager.registry)
    assert model(torch.zeros(1, 3, 64, 64)).cls_logits.shape == (1, 80, 8, 8)
    bad = load_config(CONFIG, ["model.head.stride=16"], search_dirs=manager.config_dirs())
    with pytest.raises(ConfigError, match="head.stride is 16 but backbone.out_stride is 8"):
        build(bad.node("model"), kind="model", registry=manager.registry)
