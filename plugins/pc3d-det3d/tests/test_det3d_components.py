"""det3d plugin: pillar encoder, BEV backbone, CenterPoint-style head and detector."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from det3d_training import adam_losses, assert_loss_falls

from pc3d.config import ConfigError, build, load_config
from pc3d.errors import FormatError, ShapeError
from pc3d.evaluation import Map3DMetric
from pc3d.plugin_manager import PluginManager
from pc3d.structures import CameraBoxes3D, LiDARBoxes3D, LiDARPoints
from pc3d_det3d import (
    BEVBackbone,
    BEVDetector,
    BEVGrid,
    CenterHead,
    CenterHeadOutput,
    Detections3D,
    DynamicPillarEncoder,
    decode_center_output,
    encode_center_targets,
    gaussian_focal_loss,
)

# Imports and data path shaped like the core's tests: a plugin's tests find tests/data themselves.
KITTI = Path(__file__).resolve().parents[3] / "tests" / "data" / "kitti" / "training"
CONFIG = "pillar-center-tiny_kitti-3class.yaml"
# Shrinks the shipped config to a 32 x 32 pillar grid so training steps take milliseconds.
SMALL = [
    "model.voxel_encoder.point_cloud_range=[0, -8, -3, 16, 8, 1]",
    "model.voxel_encoder.pillar_size=[0.5, 0.5]",
    "model.voxel_encoder.out_channels=16",
    "model.backbone.in_channels=16",
    "model.backbone.channels=[16, 32]",
    "model.backbone.strides=[2, 1]",
    "model.backbone.layers_per_stage=1",
    "model.head.in_channels=32",
    "model.head.head_channels=32",
]


@pytest.fixture(scope="module")
def registry():
    manager = PluginManager(allow=["det3d"], block=[]).load()
    return manager.registry


@pytest.fixture(scope="module")
def config_dirs():
    return PluginManager(allow=["det3d"], block=[]).load().config_dirs()


def box_points(box: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` points (x, y, z, reflectance) uniformly inside a LiDAR box (bottom centre)."""
    local = (torch.rand(count, 3, generator=generator) - 0.5) * box[3:6]
    local[:, 2] += box[5] / 2
    cos, sin = math.cos(box[6]), math.sin(box[6])
    x = cos * local[:, 0] - sin * local[:, 1] + box[0]
    y = sin * local[:, 0] + cos * local[:, 1] + box[1]
    return torch.stack([x, y, local[:, 2] + box[2], torch.rand(count, generator=generator)], 1)


def scene(boxes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    ground = torch.rand(400, 4, generator=generator) * torch.tensor([16.0, 16.0, 0.1, 1.0])
    ground += torch.tensor([0.0, -8.0, -1.75, 0.0])
    return torch.cat([ground, *(box_points(b, 150, generator) for b in boxes)])


@pytest.fixture()
def batch():
    generator = torch.Generator().manual_seed(0)
    boxes = [
        torch.tensor([[10.0, 3.0, -1.7, 4.0, 1.8, 1.5, 0.4], [12.0, -5.0, -1.7, 0.8, 0.6, 1.8, 0.0]]),
        torch.tensor([[6.0, -2.0, -1.7, 1.8, 0.6, 1.7, 1.2]]),
    ]
    labels = [torch.tensor([0, 1]), torch.tensor([2])]
    return [scene(b, generator) for b in boxes], boxes, labels


# -- grid and encoder ----------------------------------------------------------------------------


def test_grid_shape_downsample_and_bad_cell_size():
    grid = BEVGrid((0.0, -39.68, -3.0, 69.12, 39.68, 1.0), (0.32, 0.32))
    assert grid.shape == (248, 216)
    assert grid.downsample(4).shape == (62, 54)
    assert grid.downsample(4).cell_size == pytest.approx((1.28, 1.28))
    with pytest.raises(ValueError, match="does not divide the x extent"):
        BEVGrid((0.0, 0.0, -3.0, 10.0, 10.0, 1.0), (0.3, 0.5))
    with pytest.raises(ShapeError, match="cannot be downsampled by 3"):
        grid.downsample(3)


def test_pillar_encoder_puts_features_in_the_right_pillar():
    torch.manual_seed(0)
    encoder = DynamicPillarEncoder([0, -2, -3, 4, 2, 1], [1.0, 1.0], in_channels=4, out_channels=8)
    # x = 2.5 -> column 2; y = -1.5 -> row 0. The second point lies outside the range (x >= 4).
    cloud = torch.tensor([[2.5, -1.5, 0.0, 0.5], [4.5, 0.0, 0.0, 0.5]])
    bev = encoder([cloud, torch.zeros(0, 4)])
    assert bev.shape == (2, 8, 4, 4)
    occupied = bev.abs().sum(dim=1) > 0
    expected = torch.zeros(2, 4, 4, dtype=torch.bool)
    expected[0, 0, 2] = True
    assert torch.equal(occupied, expected)
    # Range edges: max is exclusive, a point just below it lands in the last pillar.
    edges = torch.tensor([[3.9999, 1.9999, 0.9, 0.0], [4.0, 0.0, 0.0, 0.0], [0.0, -2.0, -3.0, 0.0]])
    occupied = encoder([edges]).abs().sum(dim=1)[0] > 0
    assert occupied.nonzero().tolist() == [[0, 0], [3, 3]]


def test_pillar_encoder_takes_the_max_over_a_pillar_and_passes_gradients():
    torch.manual_seed(0)
    encoder = DynamicPillarEncoder([0, 0, -3, 2, 2, 1], [1.0, 1.0], in_channels=4, out_channels=6)
    cloud = torch.tensor([[0.2, 0.2, 0.0, 0.1], [0.7, 0.6, -1.0, 0.9], [1.5, 1.5, 0.0, 0.3]])
    bev = encoder([cloud])
    hidden = torch.relu(encoder.norm(encoder.linear(_decorate(cloud[:2], centre=(0.5, 0.5)))))
    assert torch.allclose(bev[0, :, 0, 0], hidden.max(dim=0).values, atol=1e-6)
    bev.sum().backward()
    assert encoder.linear.weight.grad is not None and encoder.linear.weight.grad.abs().sum() > 0


def _decorate(points: torch.Tensor, centre: tuple[float, float]) -> torch.Tensor:
    xyz = points[:, :3]
    return torch.cat([points, xyz - xyz.mean(0), (xyz[:, :1] - centre[0]), (xyz[:, 1:2] - centre[1])], dim=1)


def test_pillar_encoder_rejects_nan_and_bad_shapes():
    encoder = DynamicPillarEncoder([0, 0, -3, 2, 2, 1], [1.0, 1.0])
    good = torch.zeros(3, 4)
    bad = torch.zeros(5, 4)
    bad[3, 1] = float("nan")
    with pytest.raises(FormatError, match=r"points\[1\] row 3"):
        encoder([good, bad])
    with pytest.raises(ShapeError, match=r"points\[0\]: expected Tensor\[N, 4\], got \(3, 3\)"):
        encoder([torch.zeros(3, 3)])
    with pytest.raises(ShapeError, match="empty batch"):
        encoder([])


def test_backbone_shapes_and_argument_checks():
    backbone = BEVBackbone(in_channels=8, channels=[8, 16], strides=[2, 2], layers_per_stage=2)
    assert backbone.out_stride == 4
    assert backbone(torch.zeros(2, 8, 32, 24)).shape == (2, 16, 8, 6)
    with pytest.raises(ValueError, match="same non-zero length"):
        BEVBackbone(in_channels=8, channels=[8, 16], strides=[2])


# -- head: targets, loss, decoding ---------------------------------------------------------------


def test_targets_peak_at_centres_and_regress_the_box():
    grid = BEVGrid((0.0, 0.0, -3.0, 8.0, 8.0, 1.0), (1.0, 1.0))
    boxes = [torch.tensor([[2.25, 5.5, -1.0, 4.0, 2.0, 1.5, 0.3], [20.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0]])]
    targets = encode_center_targets(boxes, [torch.tensor([1, 0])], grid, num_classes=2)
    assert targets.heatmap.shape == (1, 2, 8, 8)
    assert targets.heatmap[0, 1, 5, 2] == 1.0  # row = y cell 5, column = x cell 2
    assert targets.heatmap[0, 1].max() == 1.0 and int((targets.heatmap[0, 1] == 1).sum()) == 1
    assert targets.heatmap[0, 0].max() == 0.0  # the second box lies outside the grid: no target
    assert targets.mask.sum() == 1 and targets.mask[0, 5, 2]
    expected = torch.tensor(
        [0.25, 0.5, -1.0, math.log(4.0), math.log(2.0), math.log(1.5), math.sin(0.3), math.cos(0.3)]
    )
    assert torch.allclose(targets.regression[0, :, 5, 2], expected, atol=1e-6)


def test_targets_reject_bad_labels_and_sizes():
    grid = BEVGrid((0.0, 0.0, -3.0, 8.0, 8.0, 1.0), (1.0, 1.0))
    box = torch.tensor([[2.0, 2.0, 0.0, 1.0, 1.0, 1.0, 0.0]])
    with pytest.raises(FormatError, match=r"gt_labels must lie in \[0, 2\)"):
        encode_center_targets([box], [torch.tensor([2])], grid, num_classes=2)
    with pytest.raises(FormatError, match=r"\(model.head.num_classes\); got -1, 2 in the batch"):
        encode_center_targets(
            [box, box], [torch.tensor([-1]), torch.tensor([2])], grid, 2, 1.0, "model.head.num_classes"
        )
    flat = box.clone()
    flat[0, 4] = 0.0
    with pytest.raises(FormatError, match="must be positive"):
        encode_center_targets([flat], [torch.tensor([0])], grid, num_classes=2)
    with pytest.raises(ShapeError, match=r"gt_labels\[0\]"):
        encode_center_targets([box], [torch.tensor([0, 1])], grid, num_classes=2)


def test_decoding_perfect_output_recovers_the_boxes():
    grid = BEVGrid((0.0, -8.0, -3.0, 16.0, 8.0, 1.0), (0.5, 0.5))
    boxes = [
        torch.tensor([[3.3, 2.1, -1.6, 3.9, 1.6, 1.5, 2.5], [10.7, -6.2, -1.2, 0.7, 0.5, 1.8, -0.4]]),
        torch.tensor([[7.0, 0.4, -1.0, 1.7, 0.6, 1.6, -3.0]]),
    ]
    labels = [torch.tensor([0, 1]), torch.tensor([2])]
    targets = encode_center_targets(boxes, labels, grid, num_classes=3)
    perfect = CenterHeadOutput(torch.where(targets.heatmap == 1, 10.0, -10.0), targets.regression)
    detections = decode_center_output(perfect, grid, score_threshold=0.5)
    for found, gt, gt_labels in zip(detections, boxes, labels):
        assert len(found) == len(gt)
        order = torch.argsort(found.labels)
        assert torch.equal(found.labels[order], gt_labels)
        assert isinstance(found.boxes, LiDARBoxes3D)
        assert torch.allclose(found.boxes[order].tensor, gt, atol=1e-4)
        assert torch.all(found.scores > 0.99)


def test_focal_loss_is_small_for_confident_correct_logits():
    target = torch.zeros(1, 1, 5, 5)
    target[0, 0, 2, 2] = 1.0
    target[0, 0, 2, 3] = 0.6
    good = torch.where(target == 1, 8.0, -8.0)
    assert float(gaussian_focal_loss(good, target)) < 1e-3
    assert float(gaussian_focal_loss(-good, target)) > 5.0
    assert float(gaussian_focal_loss(torch.zeros(1, 1, 5, 5), target)) > float(
        gaussian_focal_loss(good * 0.25, target)
    )


def test_head_rejects_output_of_the_wrong_shape():
    head = CenterHead(in_channels=8, num_classes=3)
    grid = BEVGrid((0.0, 0.0, -3.0, 8.0, 8.0, 1.0), (1.0, 1.0))
    wrong = CenterHeadOutput(torch.zeros(1, 2, 8, 8), torch.zeros(1, 8, 8, 8))
    with pytest.raises(ShapeError, match=r"CenterHead: heatmap is \(1, 2, 8, 8\)"):
        head.loss(wrong, [torch.zeros(0, 7)], [torch.zeros(0, dtype=torch.long)], grid)


def test_targets_take_lidar_boxes_and_refuse_other_systems():
    grid = BEVGrid((0.0, 0.0, -3.0, 8.0, 8.0, 1.0), (1.0, 1.0))
    row = [[2.25, 5.5, -1.0, 4.0, 2.0, 1.5, 0.3]]
    labels = [torch.tensor([1])]
    from_structure = encode_center_targets([LiDARBoxes3D(row)], labels, grid, num_classes=2)
    from_tensor = encode_center_targets([torch.tensor(row)], labels, grid, num_classes=2)
    assert torch.equal(from_structure.heatmap, from_tensor.heatmap)
    assert torch.equal(from_structure.regression, from_tensor.regression)
    with pytest.raises(FormatError, match=r"gt_boxes\[0\]: expected LiDARBoxes3D, got CameraBoxes3D"):
        encode_center_targets([CameraBoxes3D(row)], labels, grid, num_classes=2)


def test_detections_hold_lidar_boxes_aligned_with_scores_and_labels():
    boxes = LiDARBoxes3D([[1.0, 2.0, -1.0, 4.0, 2.0, 1.5, 0.3]])
    found = Detections3D(boxes, torch.tensor([0.9]), torch.tensor([0]))
    assert len(found) == 1 and found.to("cpu").boxes.tensor.shape == (1, 7)
    with pytest.raises(FormatError, match="must be LiDARBoxes3D"):
        Detections3D(boxes.tensor, torch.tensor([0.9]), torch.tensor([0]))
    with pytest.raises(ShapeError, match=r"1 boxes but scores \(2,\)"):
        Detections3D(boxes, torch.tensor([0.9, 0.8]), torch.tensor([0]))


def test_map3d_metric_reads_the_typed_detections():
    """``Map3DMetric`` (pc3d.evaluation) takes ``Detections3D`` and ``LiDARBoxes3D`` ground truth
    as the det3d dataset and model give them: a perfect prediction scores 1, a shifted one 0."""
    gt = LiDARBoxes3D([[5.0, 1.0, -1.6, 3.9, 1.6, 1.5, 0.2], [9.0, -3.0, -1.2, 0.8, 0.6, 1.8, 0.0]])
    labels = torch.tensor([0, 1])
    batch = {"gt_boxes": [gt], "gt_labels": [labels]}
    metric = Map3DMetric(iou_thresholds=[0.5], class_names=["Car", "Pedestrian"])
    metric.update([Detections3D(gt.clone(), torch.tensor([0.9, 0.8]), labels)], batch)
    assert metric.compute()["mAP_0.50"] == pytest.approx(1.0)
    shifted = gt.clone()
    shifted.translate([3.0, 0.0, 0.0])
    metric.reset()
    metric.update([Detections3D(shifted, torch.tensor([0.9, 0.8]), labels)], batch)
    assert metric.compute()["mAP_0.50"] == pytest.approx(0.0)


# -- the detector, built from the shipped config ------------------------------------------------


def test_shipped_config_builds_and_runs_on_a_real_kitti_scan(registry, config_dirs):
    config = load_config(CONFIG, search_dirs=config_dirs)
    model = build(config.node("model"), kind="model", registry=registry)
    assert isinstance(model, BEVDetector)
    assert model.grid.shape == (62, 54)
    scan = np.fromfile(KITTI / "velodyne" / "000001.bin", dtype=np.float32).reshape(-1, 4)
    output = model([torch.from_numpy(scan)])
    assert output.heatmap.shape == (1, 3, 62, 54)
    assert output.regression.shape == (1, 8, 62, 54)
    assert torch.isfinite(output.heatmap).all() and torch.isfinite(output.regression).all()


def test_detector_trains_on_a_tiny_fixed_batch(registry, config_dirs, batch):
    torch.manual_seed(0)
    config = load_config(CONFIG, SMALL, search_dirs=config_dirs)
    model = build(config.node("model"), kind="model", registry=registry)
    points, boxes, labels = batch
    assert_loss_falls(adam_losses(model, points, boxes, labels, 12), 0.3)
    model.eval()
    # LiDARPoints (what KittiDataset gives) and plain tensors are the same input.
    clouds = [LiDARPoints(p, attribute_dims={"intensity": 3}) for p in points]
    assert torch.equal(model(clouds).heatmap, model(points).heatmap)
    detections = model.predict(clouds, score_threshold=0.0, max_detections=5)
    assert [d.boxes.tensor.shape[1] for d in detections] == [7, 7]


def test_the_detector_names_its_classes_and_checks_them_against_the_head(registry, config_dirs):
    config = load_config(CONFIG, SMALL, search_dirs=config_dirs)
    model = build(config.node("model"), kind="model", registry=registry)
    assert model.class_names == ["Car", "Pedestrian", "Cyclist"] == config["class_names"]
    fewer = load_config(CONFIG, [*SMALL, "class_names=[Car]"], search_dirs=config_dirs)
    with pytest.raises(
        ConfigError,
        match=r"model.class_names lists 1 classes \(Car\) but model.head.num_classes is 3; "
        r"set model.head.num_classes to 1",
    ):
        build(fewer.node("model"), kind="model", registry=registry)
    one = load_config(
        CONFIG, [*SMALL, "class_names=[Car]", "model.head.num_classes=1"], search_dirs=config_dirs
    )
    assert build(one.node("model"), kind="model", registry=registry).class_names == ["Car"]
    unnamed = load_config(CONFIG, [*SMALL, "model.class_names=null"], search_dirs=config_dirs)
    assert build(unnamed.node("model"), kind="model", registry=registry).class_names == ["0", "1", "2"]


def test_channel_mismatch_is_reported_against_the_config(registry, config_dirs):
    config = load_config(CONFIG, ["model.head.in_channels=48"], search_dirs=config_dirs)
    with pytest.raises(ConfigError) as info:
        build(config.node("model"), kind="model", registry=registry)
    message = str(info.value)
    assert "model (from " in message and CONFIG in message
    assert "head.in_channels is 48 but backbone.out_channels is 64" in message


def test_a_label_outside_num_classes_names_the_config_key(registry, config_dirs, batch):
    config = load_config(CONFIG, SMALL, search_dirs=config_dirs)
    model = build(config.node("model"), kind="model", registry=registry)
    points, boxes, labels = batch
    with pytest.raises(FormatError) as info:
        model.loss(points, boxes, [labels[0], torch.tensor([5])])
    assert str(info.value) == (
        "gt_labels must lie in [0, 3) = [0, num_classes) (model.head.num_classes); got 5 in the batch"
    )
