"""RetinaNet, FCOS and Faster R-CNN: output shapes, losses, decoding a perfect prediction back to
the ground truth, a few training steps, and config-level mismatch errors."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from pc3d.config import ConfigError, build, load_config
from pc3d.errors import FormatError, ShapeError
from pc3d.nn import FPN, ResNet
from pc3d_det2d import FCOS, FasterRCNN, RetinaNet
from pc3d_det2d.faster_rcnn import RoIBoxHead, build_rpn_head, roi_levels
from pc3d_det2d.fcos import FCOSHead, fcos_points
from pc3d_det2d.retinanet import RetinaHead

GT_BOXES = [
    torch.tensor([[8.0, 10.0, 30.0, 26.0], [36.0, 30.0, 60.0, 58.0]]),
    torch.tensor([[20.0, 4.0, 44.0, 40.0]]),
]
GT_LABELS = [torch.tensor([0, 2]), torch.tensor([1])]
SIZES = torch.tensor([[64, 64], [64, 56]])


def backbone_neck(
    indices: tuple[int, ...], num_outs: int, extra: bool | str = "on_input"
) -> tuple[ResNet, FPN]:
    backbone = ResNet(depth=18, base_channels=8, out_indices=indices)
    neck = FPN(
        list(backbone.out_channels),
        16,
        num_outs,
        add_extra_convs=extra,
        in_strides=list(backbone.out_strides),
    )
    return backbone, neck


# The small one-stage head both RetinaNet and FCOS get: three classes, 16 channels, one conv per
# branch, on four FPN levels.
DENSE_HEAD = {
    "num_classes": 3,
    "in_channels": 16,
    "feat_channels": 16,
    "stacked_convs": 1,
    "strides": (8, 16, 32, 64),
}


def retinanet() -> RetinaNet:
    backbone, neck = backbone_neck((1, 2, 3), 4)
    return RetinaNet(backbone, neck, RetinaHead(**DENSE_HEAD, octave_base_scale=2.0))


def fcos() -> FCOS:
    backbone, neck = backbone_neck((1, 2, 3), 4, "on_output")
    ranges = [[-1, 16], [16, 32], [32, 64], [64, -1]]
    return FCOS(backbone, neck, FCOSHead(**DENSE_HEAD, regress_ranges=ranges))


def faster_rcnn() -> FasterRCNN:
    backbone, neck = backbone_neck((0, 1, 2, 3), 5, False)
    rpn = build_rpn_head(
        in_channels=16,
        feat_channels=16,
        strides=(4, 8, 16, 32, 64),
        anchor_scales=(4.0,),
        nms_pre=200,
        max_per_img=50,
    )
    roi = RoIBoxHead(
        num_classes=3,
        in_channels=16,
        strides=(4, 8, 16, 32),
        fc_channels=32,
        finest_scale=28.0,
        num_samples=64,
    )
    return FasterRCNN(backbone, neck, rpn, roi)


def images() -> torch.Tensor:
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def assert_matches_gt(found, boxes: torch.Tensor, labels: torch.Tensor) -> None:
    # Each gt appears among the confident detections with its class and box.
    confident = found.scores > 0.5
    assert int(confident.sum()) == boxes.shape[0]
    order = torch.argsort(found.boxes[confident][:, 0] * 1000 + found.boxes[confident][:, 1])
    expect = torch.argsort(boxes[:, 0] * 1000 + boxes[:, 1])
    torch.testing.assert_close(found.boxes[confident][order], boxes[expect], atol=1e-3, rtol=0)
    assert found.labels[confident][order].tolist() == labels[expect].tolist()


def test_retinanet_shapes_loss_and_gradients() -> None:
    torch.manual_seed(0)
    model = retinanet()
    feats = model.extract_features(images())
    cls, reg = model.head(feats)
    a = model.head.num_anchors
    assert a == 9
    assert [tuple(c.shape) for c in cls] == [
        (2, a * 3, 8, 8),
        (2, a * 3, 4, 4),
        (2, a * 3, 2, 2),
        (2, a * 3, 1, 1),
    ]
    assert [tuple(r.shape) for r in reg] == [
        (2, a * 4, 8, 8),
        (2, a * 4, 4, 4),
        (2, a * 4, 2, 2),
        (2, a * 4, 1, 1),
    ]
    losses = model.loss(images(), GT_BOXES, GT_LABELS, SIZES)
    assert set(losses) == {"loss_cls", "loss_bbox", "loss"} and all(
        torch.isfinite(v) for v in losses.values()
    )
    losses["loss"].backward()
    assert model.backbone.stem[0].weight.grad.abs().sum() > 0  # reaches the first layer
    assert model.head.cls_out.weight.grad.abs().sum() > 0


def _perfect_retina_outputs(
    head: RetinaHead, featmap_sizes: list[tuple[int, int]]
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    anchors_l = head.anchor_generator.grid_anchors(featmap_sizes)
    anchors = torch.cat(anchors_l)
    target, assigned, positive = head.targets(anchors, featmap_sizes, GT_BOXES, GT_LABELS, SIZES)
    k = head.num_classes
    logits = torch.full((2, anchors.shape[0], k), -12.0)
    pos = positive.nonzero()
    logits[pos[:, 0], pos[:, 1], target[positive]] = 12.0
    deltas = head.bbox_coder.encode(anchors[None].expand_as(assigned), assigned)
    cls, reg, start = [], [], 0
    for (h, w), an in zip(featmap_sizes, anchors_l):
        n = an.shape[0]
        cls.append(logits[:, start : start + n].reshape(2, h, w, -1).permute(0, 3, 1, 2))
        reg.append(deltas[:, start : start + n].reshape(2, h, w, -1).permute(0, 3, 1, 2))
        start += n
    return cls, reg


def test_retinanet_decodes_a_perfect_prediction_to_the_gt_and_its_loss_is_small() -> None:
    head = retinanet().head
    sizes = [(8, 8), (4, 4), (2, 2), (1, 1)]
    cls, reg = _perfect_retina_outputs(head, sizes)
    found = head.decode(cls, reg, SIZES)
    for b in range(2):
        assert_matches_gt(found[b], GT_BOXES[b], GT_LABELS[b])
    perfect = head.loss_from_outputs(cls, reg, GT_BOXES, GT_LABELS, SIZES)
    assert perfect["loss_bbox"] < 1e-5 and perfect["loss_cls"] < 1e-3
    noisy = head.loss_from_outputs(
        [torch.zeros_like(c) for c in cls], [r + 0.3 for r in reg], GT_BOXES, GT_LABELS, SIZES
    )
    assert noisy["loss_cls"] > 0.1 and noisy["loss_bbox"] > 0.1


def test_fcos_targets_decoding_and_loss() -> None:
    model = fcos()
    head = model.head
    cls, reg, ctr = head(model.extract_features(images()))
    assert [tuple(c.shape) for c in cls] == [(2, 3, 8, 8), (2, 3, 4, 4), (2, 3, 2, 2), (2, 3, 1, 1)]
    assert all(tuple(r.shape[1:2]) == (4,) and bool((r >= 0).all()) for r in reg)
    sizes = [(8, 8), (4, 4), (2, 2), (1, 1)]
    target, ltrb, centerness = head.targets(sizes, GT_BOXES, GT_LABELS, SIZES, torch.device("cpu"))
    points = torch.cat(fcos_points(sizes, head.strides, torch.device("cpu")))
    positive = (target >= 0) & (target < 3)
    # Image 1 is 56 px wide: locations right of it are padding (-1), not background.
    assert bool((target[1][points[:, 0] >= 56] == -1).all()) and bool((target[0] >= 0).all())
    # Every gt gets positives, and a positive's distances rebuild its gt box.
    for b in range(2):
        p = points[positive[b]]
        rebuilt = torch.cat([p - ltrb[b][positive[b]][:, :2], p + ltrb[b][positive[b]][:, 2:]], 1)
        assert {tuple(x.tolist()) for x in rebuilt} == {tuple(x.tolist()) for x in GT_BOXES[b]}
    assert bool((centerness[positive] > 0).all()) and bool((centerness[positive] <= 1).all())

    def maps(flat: torch.Tensor) -> list[torch.Tensor]:
        out, start = [], 0
        for h, w in sizes:
            out.append(flat[:, start : start + h * w].reshape(2, h, w, -1).permute(0, 3, 1, 2))
            start += h * w
        return out

    logits = torch.full((2, points.shape[0], 3), -12.0)
    pos = positive.nonzero()
    logits[pos[:, 0], pos[:, 1], target[positive]] = 12.0
    ctr_logit = torch.where(positive, 12.0, -12.0)[..., None]
    found = head.decode(maps(logits), maps(ltrb), maps(ctr_logit), SIZES)
    for b in range(2):
        assert_matches_gt(found[b], GT_BOXES[b], GT_LABELS[b])
    # Perfect distances have GIoU loss 0; the centerness loss is the targets' own entropy there.
    perfect = head.loss_from_outputs(maps(logits), maps(ltrb), maps(ctr_logit), GT_BOXES, GT_LABELS, SIZES)
    assert perfect["loss_bbox"] < 1e-5 and perfect["loss_cls"] < 1e-3


def test_faster_rcnn_roi_levels_loss_and_perfect_box_head_decoding() -> None:
    torch.manual_seed(0)
    model = faster_rcnn()
    rois = torch.tensor(
        [[0, 0, 20, 20], [0, 0, 56, 56], [0, 0, 120, 120], [0, 0, 500, 500]], dtype=torch.float32
    )
    assert roi_levels(rois, 4, 28.0).tolist() == [0, 1, 2, 3]
    losses = model.loss(images(), GT_BOXES, GT_LABELS, SIZES)
    assert {"loss_rpn_cls", "loss_rpn_bbox", "loss_roi_cls", "loss_roi_bbox", "loss"} == set(losses)
    losses["loss"].backward()
    assert (
        model.roi_head.fc1.weight.grad.abs().sum() > 0 and model.rpn_head.cls_conv.weight.grad.abs().sum() > 0
    )

    head = model.roi_head
    gts = torch.cat(GT_BOXES)
    labels = torch.cat(GT_LABELS)
    image = torch.tensor([0, 0, 1])
    proposals = gts + torch.tensor([[2.0, -1.0, 3.0, 1.5]])  # off by a few pixels
    logits = torch.full((3, 4), -10.0)
    logits[torch.arange(3), labels] = 10.0
    deltas = torch.zeros(3, 3, 4)
    deltas[torch.arange(3), labels] = head.bbox_coder.encode(proposals, gts)
    found = head.decode(proposals, image, logits, deltas.reshape(3, 12), SIZES, 2)
    assert_matches_gt(found[0], GT_BOXES[0], GT_LABELS[0])
    assert_matches_gt(found[1], GT_BOXES[1], GT_LABELS[1])


@pytest.mark.parametrize("make", [retinanet, fcos, faster_rcnn], ids=["retinanet", "fcos", "faster_rcnn"])
def test_a_few_steps_on_a_fixed_batch_lower_the_loss_and_predict_runs(make) -> None:
    torch.manual_seed(0)
    model = make()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    x = images()
    first = None
    for _ in range(12):
        loss = model.loss(x, GT_BOXES, GT_LABELS, SIZES)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        first = float(loss.detach()) if first is None else first
    assert float(loss.detach()) < 0.8 * first
    model.eval()
    found = model.predict(x, SIZES)
    assert len(found) == 2
    for f, (h, w) in zip(found, SIZES.tolist()):
        assert f.boxes.shape[1] == 4 and len(f) <= 100
        if len(f):
            assert float(f.boxes[:, 2].max()) <= w and float(f.boxes[:, 3].max()) <= h
            assert bool((f.scores[:-1] >= f.scores[1:]).all()) or len(set(f.labels.tolist())) > 1


def test_channel_and_stride_mismatches_are_clear() -> None:
    backbone, neck = backbone_neck((1, 2, 3), 4)
    wrong = FPN([8, 16, 32], 16, 4, add_extra_convs=True, in_strides=[8, 16, 32])
    head = RetinaHead(num_classes=3, in_channels=16, strides=(8, 16, 32, 64))
    with pytest.raises(
        ShapeError,
        match=r"neck.in_channels is \[8, 16, 32\] but the backbone's outputs have channels \[16, 32, 64\]",
    ):
        RetinaNet(backbone, wrong, head)
    with pytest.raises(ShapeError, match="strides"):
        RetinaNet(backbone, neck, RetinaHead(num_classes=3, in_channels=16, strides=(4, 8, 16, 32)))


@pytest.mark.parametrize(
    "name", ["retinanet_r18-fpn_shapes.yaml", "fcos_r18-fpn_shapes.yaml", "faster-rcnn_r18-fpn_shapes.yaml"]
)
def test_shipped_configs_build_their_models(name: str) -> None:
    config = load_config(name)
    model = build(config.node("model"), "model")
    assert type(model).__name__ == config.get("model.type")
    bad = load_config(
        name,
        ["model.neck.in_channels=[1, 2, 3]"]
        if "faster" not in name
        else ["model.neck.in_channels=[1, 2, 3, 4]"],
    )
    with pytest.raises(ConfigError, match="neck.in_channels"):
        build(bad.node("model"), "model")


@pytest.mark.parametrize("make", [retinanet, fcos, faster_rcnn], ids=["retinanet", "fcos", "faster_rcnn"])
def test_an_image_without_objects_is_all_background(make) -> None:
    torch.manual_seed(0)
    model = make()
    empty_boxes = [GT_BOXES[0], torch.zeros((0, 4))]
    empty_labels = [GT_LABELS[0], torch.zeros((0,), dtype=torch.long)]
    losses = model.loss(images(), empty_boxes, empty_labels, SIZES)
    assert all(bool(torch.isfinite(v)) for v in losses.values()), losses
    losses["loss"].backward()
    with pytest.raises(ShapeError, match="2 images but 1 gt_boxes"):
        model.loss(images(), empty_boxes[:1], empty_labels, SIZES)


@pytest.mark.parametrize(
    ("make", "key"),
    [
        (retinanet, "model.head.num_classes"),
        (fcos, "model.head.num_classes"),
        (faster_rcnn, "model.roi_head.num_classes"),
    ],
    ids=["retinanet", "fcos", "faster_rcnn"],
)
def test_a_label_outside_num_classes_names_the_config_key(make, key) -> None:
    model = make()
    # 3 is num_classes itself: without the check the focal and cross-entropy targets would read it
    # as background and train silently on wrong labels.
    for bad, shown in ((torch.tensor([3]), "3"), (torch.tensor([-1, 7]), "-1, 7")):
        with pytest.raises(FormatError) as info:
            model.loss(
                images(),
                GT_BOXES[:1] + [torch.tensor([[20.0, 4.0, 44.0, 40.0]] * len(bad))],
                [GT_LABELS[0], bad],
                SIZES,
            )
        assert (
            str(info.value)
            == f"gt_labels must lie in [0, 3) = [0, num_classes) ({key}); got {shown} in the batch"
        )


def test_head_arguments_out_of_range_are_named() -> None:
    heads = {"num_classes": 3, "in_channels": 16}
    cases: list[tuple[Callable[..., object], dict[str, object], str]] = [
        (RetinaHead, {**heads, "feat_channels": 0}, r"RetinaHead: feat_channels must be an int >= 1, got 0"),
        (
            RetinaHead,
            {**heads, "stacked_convs": -1},
            r"RetinaHead: stacked_convs must be an int >= 0, got -1",
        ),
        (FCOSHead, {**heads, "stacked_convs": 0}, r"FCOSHead: stacked_convs must be an int >= 1, got 0"),
        (FCOSHead, {**heads, "iou_threshold": 1.5}, r"FCOSHead: iou_threshold must lie in \(0, 1\], got 1.5"),
        (
            RoIBoxHead,
            {**heads, "score_threshold": -0.1},
            r"RoIBoxHead: score_threshold must lie in \[0, 1\), got -0.1",
        ),
        (
            RoIBoxHead,
            {**heads, "pos_fraction": 0.0},
            r"RoIBoxHead: pos_fraction must lie in \(0, 1\], got 0.0",
        ),
        (build_rpn_head, {"in_channels": 16, "nms_pre": 0}, r"RPNHead: nms_pre must be an int >= 1, got 0"),
    ]
    for factory, kwargs, message in cases:
        with pytest.raises(FormatError, match=message):
            factory(**kwargs)
    config = load_config("retinanet_r18-fpn_shapes.yaml", ["model.head.max_per_img=0"])
    with pytest.raises(ConfigError, match=r"model.head .*RetinaHead: max_per_img must be an int >= 1, got 0"):
        build(config.node("model"), "model")


def test_a_detector_without_its_head_hooks_cannot_be_built() -> None:
    from pc3d_det2d.detector import FPNDetector2D

    class NoHeads(FPNDetector2D):
        pass

    with pytest.raises(TypeError, match="abstract"):
        NoHeads()
