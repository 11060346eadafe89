"""CenterPointHead and the CenterPoint configs: targets, decoding, NMS, training and config errors."""

from __future__ import annotations

import math

import pytest
import torch
from det3d_training import (
    CLASSES,
    SMALL_PILLARS,
    SMALL_VOXELS,
    assert_loss_falls,
    kitti_frames,
    train_on_kitti_frames,
)

from pc3d.config import ConfigError, build, load_config
from pc3d.errors import FormatError, ShapeError
from pc3d.plugin_manager import PluginManager
from pc3d_det3d.center_decode import CenterDecodeSettings, select_detections
from pc3d_det3d.center_head import CenterPointHead, CenterPointOutput
from pc3d_det3d.center_targets import encode_task_targets, gaussian_radius, split_by_task
from pc3d_det3d.voxelnet import VoxelDetector

PILLAR = "centerpoint_pillar-secfpn_kitti-3d-3class.yaml"
VOXEL = "centerpoint_voxel-secfpn_kitti-3d-3class.yaml"
# The shrunk networks with a narrow CenterPoint head; its in_channels are the detector's (the
# shrunk neck's), as in the zoo configs.
NARROW_HEAD = ["model.bbox_head.share_conv_channels=16", "model.bbox_head.head_channels=16"]
SMALL = [*(o for o in SMALL_PILLARS if not o.startswith("model.bbox_head.in_channels")), *NARROW_HEAD]
SMALL_VOXEL = [*(o for o in SMALL_VOXELS if not o.startswith("model.bbox_head.in_channels")), *NARROW_HEAD]


@pytest.fixture(scope="module")
def manager():
    return PluginManager(allow=["det3d"], block=[]).load()


def small_model(manager, *overrides: str, name: str = PILLAR) -> VoxelDetector:
    small = SMALL if name == PILLAR else SMALL_VOXEL
    config = load_config(name, [*small, *overrides], search_dirs=manager.config_dirs())
    return build(config.node("model"), kind="model", registry=manager.registry)


def hand_head(**overrides) -> CenterPointHead:
    """A 32 x 32 grid of 0.5 m cells over x in [0, 16), y in [-8, 8)."""
    settings: dict = {
        "in_channels": 8,
        "num_classes": 3,
        "point_cloud_range": [0, -8, -3, 16, 8, 1],
        "voxel_size": [0.25, 0.25, 4],
        "out_size_factor": 2,
        "tasks": [["Pedestrian", "Cyclist"], ["Car"]],
        "class_names": CLASSES,
        "test_cfg": {"nms_type": "none", "score_threshold": 0.3},
    }
    settings.update(overrides)
    return CenterPointHead(**settings)


def perfect_output(head: CenterPointHead, boxes: torch.Tensor, labels: torch.Tensor) -> CenterPointOutput:
    """The output a perfect head gives: logits of the target heatmaps and the target regression."""
    heatmaps, regressions = [], []
    for task, (index, local) in enumerate(split_by_task(labels, head.tasks)):
        targets = encode_task_targets(
            boxes[index],
            local,
            torch.zeros(len(index), dtype=torch.long),
            1,
            len(head.tasks[task]),
            head.grid,
            head.with_velocity,
        )
        heatmaps.append(torch.logit(targets.heatmap.clamp(1e-6, 1 - 1e-6)))
        regressions.append(targets.regression)
    return CenterPointOutput(tuple(heatmaps), tuple(regressions))


# -- targets ---------------------------------------------------------------------------------------


def test_gaussian_radius_is_cornernets_smallest_root() -> None:
    # A 4 x 4 box and overlap 0.5: moving both corners inwards (r2) gives the smallest radius.
    h = w = torch.tensor([4.0])
    r2 = (2 * 8 + math.sqrt(16**2 - 16 * 0.5 * 16)) / 2
    r3 = (-2 * 0.5 * 8 + math.sqrt((2 * 0.5 * 8) ** 2 + 4 * 4 * 0.5 * 0.5 * 16)) / 2
    assert gaussian_radius(h, w, 0.5).item() == pytest.approx(min(r2, r3), rel=1e-6)
    # Bigger boxes, bigger radii.
    radii = gaussian_radius(torch.tensor([2.0, 8.0, 32.0]), torch.tensor([2.0, 8.0, 32.0]))
    assert torch.all(radii[1:] > radii[:-1])


def test_heatmap_targets_on_a_hand_made_scene() -> None:
    head = hand_head()
    # A car (class 2, task 1) centred at x = 5.3, y = 2.1: cell column 10.6 -> 10, row 20.2 -> 20.
    car = torch.tensor([[5.3, 2.1, -1.7, 3.9, 1.6, 1.5, 0.3]])
    targets = encode_task_targets(car, torch.tensor([0]), torch.tensor([0]), 1, 1, head.grid, min_radius=2)
    heat = targets.heatmap[0, 0]
    assert heat[20, 10].item() == 1.0
    assert torch.nonzero(heat == 1).tolist() == [[20, 10]]
    # 3.9 x 1.6 m = 7.8 x 3.2 cells: CornerNet's radius at overlap 0.1 rounds down to 1 -> min radius 2.
    expected = max(2, int(gaussian_radius(torch.tensor([3.2]), torch.tensor([7.8]), 0.1).item()))
    assert targets.radius.tolist() == [expected] == [2]
    sigma = (2 * 2 + 1) / 6
    assert heat[20, 11].item() == pytest.approx(math.exp(-1 / (2 * sigma**2)), rel=1e-5)
    assert heat[22, 12].item() == pytest.approx(math.exp(-8 / (2 * sigma**2)), rel=1e-5)
    assert heat[20, 13].item() == 0 and heat[23, 10].item() == 0  # outside the 5 x 5 window
    assert int((heat > 0).sum()) == 25
    # Regression at the centre cell only: sub-cell offset, gravity-centre z, log sizes, sin/cos.
    assert torch.nonzero(targets.mask[0]).tolist() == [[20, 10]]
    expected_code = [
        0.6,
        0.2,
        -1.7 + 0.75,
        math.log(3.9),
        math.log(1.6),
        math.log(1.5),
        math.sin(0.3),
        math.cos(0.3),
    ]
    assert targets.regression[0, :, 20, 10].tolist() == pytest.approx(expected_code, abs=1e-5)
    # A larger min radius widens the window; a box off the grid gives nothing.
    wide = encode_task_targets(car, torch.tensor([0]), torch.tensor([0]), 1, 1, head.grid, min_radius=4)
    assert int((wide.heatmap > 0).sum()) == 81
    outside = encode_task_targets(
        car + torch.tensor([20.0, 0, 0, 0, 0, 0, 0]), torch.tensor([0]), torch.tensor([0]), 1, 1, head.grid
    )
    assert outside.heatmap.max() == 0 and not outside.mask.any()


# -- decoding --------------------------------------------------------------------------------------


BOXES = torch.tensor(
    [
        [5.3, 2.1, -1.7, 3.9, 1.6, 1.5, 0.3],  # Car
        [10.2, -3.3, -1.6, 0.8, 0.6, 1.7, -1.0],  # Pedestrian
        [12.1, 4.4, -1.5, 1.7, 0.6, 1.7, 2.5],  # Cyclist
    ]
)
LABELS = torch.tensor([2, 0, 1])


@pytest.mark.parametrize("nms_type", ["none", "circle", "rotate"])
def test_decoding_a_perfect_output_gives_the_input_boxes(nms_type: str) -> None:
    head = hand_head(test_cfg={"nms_type": nms_type, "score_threshold": 0.3, "circle_radius": 1.0})
    (detections,) = head.predict(perfect_output(head, BOXES, LABELS))
    order = detections.labels.argsort()
    assert detections.labels[order].tolist() == [0, 1, 2]
    assert detections.boxes.tensor[order] == pytest.approx(BOXES[[1, 2, 0]], abs=1e-4)
    assert detections.scores.tolist() == pytest.approx([1.0] * 3, abs=1e-5)


def test_velocity_round_trip() -> None:
    head = hand_head(with_velocity=True)
    boxes = torch.cat([BOXES, torch.tensor([[1.5, -0.5], [0.0, 0.2], [-3.0, 1.0]])], dim=1)
    output = perfect_output(head, boxes, LABELS)
    assert [r.shape[1] for r in output.regressions] == [10, 10]
    (detections,) = head.predict(output)
    order = detections.labels.argsort()
    assert detections.boxes.tensor[order] == pytest.approx(boxes[[1, 2, 0]], abs=1e-4)
    with pytest.raises(FormatError, match="with_velocity needs vx, vy"):
        head.loss(output, [BOXES], [LABELS])


def test_max_pool_keeps_only_peaks() -> None:
    head = hand_head(test_cfg={"nms_type": "none", "score_threshold": 0.0, "max_per_task": 50})
    output = perfect_output(head, BOXES[:1], LABELS[:1])
    (detections,) = head.predict(output)
    # The car's Gaussian has one peak; the other cells of its window are not maxima of their 3x3.
    assert (detections.scores > 0.5).sum() == 1
    flat = CenterPointHead.predict(
        hand_head(test_cfg={"nms_type": "none", "score_threshold": 0.1, "pool_kernel": 1}), output
    )
    assert (flat[0].scores >= 0.1).sum() > 1


def test_circle_nms_is_per_class_in_bev_distance() -> None:
    settings = CenterDecodeSettings.from_mapping(
        {"circle_radius": [0.5, 0.5, 2.0]}, 3, "model.bbox_head.test_cfg"
    )
    box = [10.0, 0.0, -1.7, 3.9, 1.6, 1.5, 0.0]
    boxes = torch.tensor(
        [
            box,  # car, best
            [11.5, 0.0, *box[2:]],  # car 1.5 m away: within the car radius 2 m -> dropped
            [10.0, 2.5, *box[2:]],  # car 2.5 m away: kept
            [10.2, 0.0, -1.7, 0.8, 0.6, 1.7, 0.0],  # pedestrian on the car: another class, kept
            [10.2, 0.3, -1.7, 0.8, 0.6, 1.7, 0.0],  # pedestrian 0.3 m from the first: dropped
            [10.2, 0.0, -1.7, 0.8, 0.6, 1.7, 0.0],  # below the score threshold
        ]
    )
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.05])
    labels = torch.tensor([2, 2, 2, 0, 0, 0])
    kept = select_detections(boxes, scores, labels, settings)
    assert kept.scores.tolist() == pytest.approx([0.9, 0.7, 0.6])
    assert kept.labels.tolist() == [2, 2, 0]
    # Rotated NMS (IoU > 0.2): the car 1.5 m away overlaps the best one (BEV IoU 3.84 / 8.64 = 0.44),
    # the one 2.5 m away does not touch it; the pedestrians overlap by 0.24 / 0.72 = 0.33.
    rotate = CenterDecodeSettings.from_mapping({"nms_type": "rotate", "nms_threshold": 0.2}, 3, "k")
    kept = select_detections(boxes, scores, labels, rotate)
    assert kept.scores.tolist() == pytest.approx([0.9, 0.7, 0.6])
    none = CenterDecodeSettings.from_mapping({"nms_type": "none", "post_max": 4}, 3, "k")
    assert select_detections(boxes, scores, labels, none).scores.tolist() == pytest.approx(
        [0.9, 0.8, 0.7, 0.6]
    )


def randomised(head: CenterPointHead) -> CenterPointHead:
    """``head`` in eval mode with random convs and batch-norm statistics."""
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for m in head.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * 0.3)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.3)
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return head.eval()


@pytest.mark.parametrize("final_kernel", [3, 1])
def test_regression_at_cells_equals_the_dense_branches_there(final_kernel: int) -> None:
    head = randomised(hand_head(final_kernel=final_kernel))
    task = head.task_heads[0]
    shared = torch.randn(2, head.share_conv_channels, 32, 32, generator=torch.Generator().manual_seed(4))
    # Corners, edges (where the zero padding matters) and inside cells, in both frames.
    cells = torch.tensor(
        [[0, 31, 31 * 32, 32 * 32 - 1, 5, 7 * 32], [16 * 32 + 16, 1, 31 * 32 + 5, 3 * 32 + 31, 0, 0]]
    )
    with torch.no_grad():
        dense = task(shared)[1].flatten(2)  # [2, 8, 1024]
        got = task.regression_at(shared, cells)  # [2, 6, 8]
    want = dense.gather(2, cells[:, None, :].expand(-1, dense.shape[1], -1)).transpose(1, 2)
    assert got.shape == (2, 6, 8)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(task.regression_at(shared, cells.flip(1)), want, atol=1e-3)


def test_the_inference_copy_regresses_only_at_the_heatmap_peaks() -> None:
    cfg = {"nms_type": "circle", "circle_radius": 1.0, "score_threshold": 0.0, "max_per_task": 20}
    head = randomised(hand_head(test_cfg=cfg))
    features = torch.randn(2, 8, 32, 32, generator=torch.Generator().manual_seed(5))
    calls: list[int] = []
    for task in head.task_heads:
        task.register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        dense = head.predict(head(features))
        assert len(calls) == 2
        head.regress_candidates_only = True
        sparse = head.predict_features(features)
    assert len(calls) == 2  # the task heads' full-map forward did not run again
    assert all(len(d.scores) > 5 for d in dense)
    for got, want in zip(sparse, dense, strict=True):
        torch.testing.assert_close(got.boxes.tensor, want.boxes.tensor, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(got.scores, want.scores)
        assert torch.equal(got.labels, want.labels)
    # With autograd recording the dense path runs; so it does when the peaks' windows would
    # cover more cells than the map has (here 200 peaks x 9 > 32 x 32).
    head.predict_features(features)
    assert len(calls) == 4
    wide = randomised(hand_head(test_cfg={**cfg, "max_per_task": 200}))
    wide.regress_candidates_only = True
    wide.task_heads[0].register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        wide.predict_features(features)
    assert len(calls) == 5


def test_the_optimised_detector_finds_the_plain_ones_boxes_on_a_kitti_frame(manager) -> None:
    cfg = "model.bbox_head.test_cfg={score_threshold: 0.0, max_per_task: 50, nms_type: rotate}"
    torch.manual_seed(0)
    model = randomised_detector(small_model(manager, cfg))
    fast = model.optimize_for_inference()
    assert fast.bbox_head.regress_candidates_only and not model.bbox_head.regress_candidates_only
    calls: list[int] = []
    for task in fast.bbox_head.task_heads:
        task.register_forward_hook(lambda *args: calls.append(1))
    points = kitti_frames()[0]["points"]
    with torch.no_grad():
        want, got = model.predict([points])[0], fast.predict([points])[0]
    assert calls == []  # the peaks' path ran (50 peaks x 9 < the 24 x 44 map)
    assert len(want.scores) > 5
    torch.testing.assert_close(got.scores, want.scores, atol=1e-4, rtol=1e-4)
    # Cells over empty ground share a score, so tied peaks may come out in another order; every
    # box whose score is unique (no other within 1e-5) must be found at the same place.
    gaps = (want.scores[:, None] - want.scores[None, :]).abs().fill_diagonal_(float("inf"))
    unique = gaps.min(dim=1).values > 1e-5
    assert int(unique.sum()) > 5
    distance = torch.cdist(want.boxes.tensor[unique], got.boxes.tensor[unique]).diagonal()
    assert float(distance.max()) < 1e-3
    assert torch.equal(got.labels[unique], want.labels[unique])


def randomised_detector(model: VoxelDetector) -> VoxelDetector:
    """``model`` in eval mode with non-trivial batch-norm statistics (folding has work to do)."""
    gen = torch.Generator().manual_seed(6)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()


def test_decode_settings_errors_name_the_key() -> None:
    key = "model.bbox_head.test_cfg"
    with pytest.raises(FormatError, match=r"model\.bbox_head\.test_cfg: unknown key\(s\) \['nms'\]"):
        CenterDecodeSettings.from_mapping({"nms": "circle"}, 3, key)
    with pytest.raises(FormatError, match=r"test_cfg\.nms_type: 'box' is not one of circle, rotate, none"):
        CenterDecodeSettings.from_mapping({"nms_type": "box"}, 3, key)
    with pytest.raises(FormatError, match=r"test_cfg\.circle_radius: give one radius or 3"):
        CenterDecodeSettings.from_mapping({"circle_radius": [1.0, 2.0]}, 3, key)
    with pytest.raises(FormatError, match="pool_kernel: a positive odd number"):
        CenterDecodeSettings.from_mapping({"pool_kernel": 2}, 3, key)


def test_head_errors() -> None:
    with pytest.raises(FormatError, match=r"model\.bbox_head\.tasks: the tasks must split the 3 classes"):
        hand_head(tasks=[[0], [1]])
    with pytest.raises(FormatError, match=r"model\.bbox_head\.tasks\[1\]: 'Truck' is not one of class_names"):
        hand_head(tasks=[["Car"], ["Truck"]])
    with pytest.raises(FormatError, match=r"model\.bbox_head\.code_weights: expected 8 weights"):
        hand_head(code_weights=[1.0] * 10)
    head = hand_head()
    with pytest.raises(ShapeError, match=r"check model\.bbox_head\.out_size_factor"):
        head(torch.zeros(1, 8, 64, 64))
    output = head(torch.zeros(1, 8, 32, 32))
    with pytest.raises(FormatError, match=r"\(model\.bbox_head\.num_classes\); got 3"):
        head.loss(output, [BOXES], [torch.tensor([0, 1, 3])])


# -- detectors from the configs ----------------------------------------------------------------------


def test_both_configs_build_a_centerpoint(manager) -> None:
    for name, grid, stride in ((PILLAR, (248, 216), 0.32), (VOXEL, (200, 176), 0.4)):
        config = load_config(name, search_dirs=manager.config_dirs())
        model = build(config.node("model"), kind="model", registry=manager.registry)
        assert isinstance(model, VoxelDetector) and isinstance(model.bbox_head, CenterPointHead)
        assert model.class_names == CLASSES and model.bbox_head.tasks == [[0, 1], [2]]
        assert model.bbox_head.grid.shape == grid
        assert model.bbox_head.grid.cell_size == pytest.approx((stride, stride))


def test_a_head_without_counts_is_completed_once() -> None:
    head = hand_head(in_channels=None, num_classes=None)
    # class_names gives the class count; the channels wait for complete().
    assert head.num_classes == 3 and not head.is_complete and not hasattr(head, "in_channels")
    with pytest.raises(FormatError, match="no layers yet"):
        head(torch.zeros(1, 8, 32, 32))
    head.complete(3, 8)
    assert head.is_complete and head.tasks == [[0, 1], [2]]
    assert [h.shape for h in head(torch.zeros(1, 8, 32, 32)).heatmaps] == [(1, 2, 32, 32), (1, 1, 32, 32)]
    # The same parameters, under the same names, as a head given its counts.
    given = hand_head()
    assert {k: v.shape for k, v in head.state_dict().items()} == {
        k: v.shape for k, v in given.state_dict().items()
    }
    head.complete(3, 8)  # the same counts again: nothing changes
    with pytest.raises(
        FormatError, match=r"model\.bbox_head\.in_channels is 8 but the detector gives the head 16"
    ):
        head.complete(3, 16)
    with pytest.raises(
        FormatError, match=r"model\.bbox_head\.class_names lists 3 classes but the detector gives the head 2"
    ):
        head.complete(2, 8)
    # Without class_names, tasks by index and both counts from complete().
    bare = hand_head(in_channels=None, num_classes=None, class_names=None, tasks=[[0], [1]])
    assert not hasattr(bare, "num_classes")
    bare.complete(2, 4)
    assert (bare.num_classes, bare.in_channels, bare.tasks) == (2, 4, [[0], [1]])
    with pytest.raises(FormatError, match=r"model\.bbox_head\.in_channels must be at least 1"):
        hand_head(in_channels=None).complete(3, 0)
    with pytest.raises(FormatError, match=r"split the 3 classes \(model\.class_names\)"):
        hand_head(in_channels=None, num_classes=None, class_names=None, tasks=[[0]]).complete(3, 8)


def test_class_count_mismatch_fails_at_build_naming_the_key(manager) -> None:
    two_classes = [
        "model.bbox_head.tasks=[[Pedestrian, Cyclist]]",
        "model.bbox_head.test_cfg.circle_radius=1.0",
    ]
    for overrides, message in (
        (
            ["model.bbox_head.num_classes=2"],
            "model.bbox_head.num_classes is 2 but model.bbox_head.class_names lists 3 classes",
        ),
        # The head's classes follow class_names; its tasks name a class that is gone.
        (["class_names=[Pedestrian, Car]"], "model.bbox_head.tasks[0]: 'Cyclist' is not one of class_names"),
        (
            ["model.bbox_head.class_names=[Car, Cyclist, Pedestrian]"],
            "model.bbox_head.class_names is ['Car', 'Cyclist', 'Pedestrian'] but model.class_names is "
            "['Pedestrian', 'Cyclist', 'Car']",
        ),
        (
            ["model.bbox_head.class_names=[Pedestrian, Cyclist]", *two_classes],
            "model.class_names lists 3 classes but model.bbox_head.class_names lists 2",
        ),
    ):
        config = load_config(PILLAR, [*SMALL, *overrides], search_dirs=manager.config_dirs())
        with pytest.raises(ConfigError) as info:
            build(config.node("model"), kind="model", registry=manager.registry)
        assert PILLAR in str(info.value) and message in str(info.value), str(info.value)
    # Without class_names in the head, the detector compares them.
    config = load_config(
        PILLAR,
        [
            *SMALL,
            "model.bbox_head.num_classes=2",
            "model.bbox_head.class_names=null",
            "model.bbox_head.tasks=[[0, 1]]",
            "model.bbox_head.test_cfg.circle_radius=1.0",
        ],
        search_dirs=manager.config_dirs(),
    )
    with pytest.raises(
        ConfigError, match=r"model\.class_names lists 3 classes but model\.bbox_head\.num_classes is 2"
    ):
        build(config.node("model"), kind="model", registry=manager.registry)


def test_a_detector_without_class_names_takes_the_heads(manager) -> None:
    model = small_model(manager, "model.class_names=null")
    assert model.class_names == CLASSES and model.bbox_head.num_classes == 3


@pytest.mark.parametrize("name", [PILLAR, VOXEL])
def test_training_on_the_shipped_kitti_frames_lowers_the_loss(manager, name: str) -> None:
    torch.manual_seed(0)
    model = small_model(manager, name=name)
    losses, points = train_on_kitti_frames(model, 10, max_points=3000)
    assert_loss_falls(losses, 0.5)
    model.eval()
    detections = model.predict(points)
    assert len(detections) == 4
    for detection in detections:
        assert detection.boxes.tensor.shape[1] == 7 and len(detection.scores) <= 83
        assert bool((detection.labels >= 0).all() and (detection.labels < 3).all())


def test_frames_without_boxes_or_points_train_and_predict(manager) -> None:
    torch.manual_seed(0)
    model = small_model(manager, "model.bbox_head.test_cfg.score_threshold=0.3")
    frame = kitti_frames(max_points=3000)[1]
    empty_points = torch.zeros(0, 4)
    no_boxes, no_labels = torch.zeros(0, 7), torch.zeros(0, dtype=torch.long)
    loss = model.loss([frame["points"], empty_points], [no_boxes, no_boxes], [no_labels, no_labels])
    assert all(math.isfinite(v.item()) for v in loss.values())
    loss["loss"].backward()
    assert loss["loss_bbox"].item() == 0
    # A batch of one frame without points trains too.
    alone = model.loss([empty_points], [no_boxes], [no_labels])
    assert math.isfinite(alone["loss"].item())
    model.eval()
    (detections,) = model.predict([empty_points])
    assert len(detections.scores) == 0 and detections.boxes.tensor.shape == (0, 7)
