"""The structure-aware entry points to pc3d.ops: points in boxes, overlaps and NMS of Boxes3D."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pc3d.errors import FormatError, ShapeError
from pc3d.ops import batched_nms_bev, box_iou_3d, box_iou_bev, nms_bev, points_in_boxes
from pc3d.structures import CameraBoxes3D, DepthBoxes3D, LiDARBoxes3D, LiDARPoints

SCAN = Path(__file__).resolve().parents[1] / "data" / "kitti" / "training" / "velodyne" / "000001.bin"


def clustered(num: int, objects: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Detector-like LiDAR boxes `[num, 7]` jittered around `objects` cars, and scores."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(objects, 2, generator=g) * torch.tensor([70.0, 80.0]) - torch.tensor([0.0, 40.0])
    heading = torch.rand(objects, generator=g) * 2 * math.pi - math.pi
    obj = torch.randint(0, objects, (num,), generator=g)
    xy = centres[obj] + torch.randn(num, 2, generator=g) * 0.8
    size = torch.tensor([3.9, 1.6]) * (0.8 + 0.4 * torch.rand(num, 2, generator=g))
    z = -1.7 + 0.2 * torch.randn(num, 1, generator=g)
    h = 1.5 + 0.2 * torch.rand(num, 1, generator=g)
    yaw = heading[obj] + torch.randn(num, generator=g) * 0.2
    return torch.cat([xy, z, size, h, yaw[:, None]], dim=1), torch.rand(num, generator=g)


def test_camera_and_depth_overlaps_give_the_lidar_numbers() -> None:
    a, _ = clustered(60, 5, 4)
    b, _ = clustered(40, 5, 4)
    b[:, :2] = a[:40, :2] + 0.5 * torch.randn(40, 2, generator=torch.Generator().manual_seed(5))
    la, lb = LiDARBoxes3D(a), LiDARBoxes3D(b)
    ca, cb = la.convert_to("camera"), lb.convert_to("camera")
    da, db = DepthBoxes3D(a), DepthBoxes3D(b)
    for method, kernel in ((LiDARBoxes3D.bev_overlaps, box_iou_bev), (LiDARBoxes3D.overlaps, box_iou_3d)):
        expected = kernel(a, b)
        assert (expected > 0).any()
        assert torch.allclose(method(la, lb), expected)
        assert torch.allclose(method(ca, cb), expected, atol=1e-5)
        assert torch.allclose(method(da, db), expected)
    # The classmethods dispatch on the boxes, whatever class they are called on.
    assert torch.allclose(LiDARBoxes3D.overlaps(ca, cb), box_iou_3d(a, b), atol=1e-5)
    with pytest.raises(FormatError, match="different systems"):
        LiDARBoxes3D.bev_overlaps(la, cb)
    with pytest.raises(FormatError, match="boxes2 must be a Boxes3D structure, got Tensor"):
        CameraBoxes3D.overlaps(ca, b)


def test_overlaps_by_hand_and_iof() -> None:
    # Two 2 x 2 x 2 cubes shifted by 1 along x: overlap 4 of 8 + 8 - 4 = 12.
    a = LiDARBoxes3D([[0, 0, 0, 2, 2, 2, 0]])
    b = LiDARBoxes3D([[1, 0, 0, 2, 2, 2, 0], [0, 0, 1, 2, 2, 2, math.pi / 2]])
    np.testing.assert_allclose(LiDARBoxes3D.overlaps(a, b).numpy(), [[4 / 12, 4 / 12]], atol=1e-6)
    np.testing.assert_allclose(LiDARBoxes3D.overlaps(a, b, mode="iof").numpy(), [[0.5, 0.5]], atol=1e-6)
    np.testing.assert_allclose(LiDARBoxes3D.bev_overlaps(a, b).numpy(), [[2 / 6, 1.0]], atol=1e-6)
    assert LiDARBoxes3D.overlaps(a[:0], b).shape == (0, 2)
    with pytest.raises(FormatError, match="mode"):
        LiDARBoxes3D.overlaps(a, b, mode="giou")


def test_height_overlaps_follow_each_vertical_axis() -> None:
    lidar = LiDARBoxes3D([[0, 0, 0, 1, 1, 2, 0], [0, 0, 1.5, 1, 1, 1, 0], [0, 0, 5, 1, 1, 1, 0]])
    expected = [[2, 0.5, 0], [0.5, 1, 0], [0, 0, 1]]
    np.testing.assert_allclose(LiDARBoxes3D.height_overlaps(lidar, lidar).numpy(), expected, atol=1e-6)
    # Camera: y points down, the bottom face has the largest y.
    cam = lidar.convert_to("camera")
    np.testing.assert_allclose(CameraBoxes3D.height_overlaps(cam, cam).numpy(), expected, atol=1e-6)
    with pytest.raises(FormatError, match="different systems"):
        LiDARBoxes3D.height_overlaps(lidar, cam)


def test_nms_of_every_system_keeps_the_lidar_boxes() -> None:
    boxes, scores = clustered(300, 6, 40)
    expected = nms_bev(boxes, scores, 0.2)
    assert torch.equal(LiDARBoxes3D(boxes).nms_bev(scores, 0.2), expected)
    assert torch.equal(LiDARBoxes3D(boxes).convert_to("camera").nms_bev(scores, 0.2), expected)
    assert torch.equal(DepthBoxes3D(boxes).nms_bev(scores, 0.2), expected)
    labels = torch.arange(300) % 3
    by_class = batched_nms_bev(boxes, scores, labels, 0.2, pre_max=200, post_max=50)
    assert torch.equal(
        LiDARBoxes3D(boxes).nms_bev(scores, 0.2, pre_max=200, post_max=50, labels=labels), by_class
    )


@pytest.fixture(scope="module")
def scan() -> torch.Tensor:
    return torch.from_numpy(np.fromfile(SCAN, dtype=np.float32).reshape(-1, 4))


def test_points_in_boxes_of_each_system_give_the_same_answer(scan: torch.Tensor) -> None:
    g = torch.Generator().manual_seed(1)
    centre = scan[torch.randint(0, len(scan), (20,), generator=g), :3]
    size = torch.tensor([3.9, 1.6, 1.6]) * (0.5 + torch.rand(20, 3, generator=g))
    yaw = torch.rand(20, 1, generator=g) * 2 * math.pi - math.pi
    boxes = torch.cat([centre - torch.tensor([0, 0, 0.8]), size, yaw], dim=1)
    lidar = LiDARBoxes3D(boxes)
    expected = points_in_boxes(scan, boxes)
    assert torch.equal(lidar.points_in_boxes_part(scan), expected)
    assert torch.equal(lidar.points_in_boxes_part(LiDARPoints(scan)), expected)
    assert torch.equal(lidar.points_in_boxes_part(scan[None]), expected)  # MMDetection3D's (1, M, 3)
    assert torch.equal(lidar.points_in_boxes_all(scan), points_in_boxes(scan, boxes, mode="all"))
    camera = lidar.convert_to("camera")
    cam_points = LiDARPoints(scan).convert_to("camera")
    # Camera boxes and points: the same permutation is applied to both, so the answer holds
    # except for points within rounding of a face (the conversion rounds yaw through atan2).
    agree = (camera.points_in_boxes_part(cam_points) == expected).float().mean()
    assert agree > 0.9999
    with pytest.raises(FormatError, match="convert the points"):
        lidar.points_in_boxes_part(cam_points)


def test_boxes_override_and_older_names() -> None:
    boxes = LiDARBoxes3D([[0, 0, 0, 2, 2, 2, 0]])
    points = torch.tensor([[0.0, 0.0, 1.0], [5.0, 0.0, 1.0]])
    assert boxes.points_in_boxes_part(points).tolist() == [0, -1]
    other = torch.tensor([[5.0, 0.0, 0.0, 2.0, 2.0, 2.0, 0.0], [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0]])
    assert boxes.points_in_boxes_part(points, boxes_override=other).tolist() == [1, 0]
    assert boxes.points_in_boxes_all(points, boxes_override=other).tolist() == [[False, True], [True, False]]
    # Camera overrides are camera boxes, like the boxes themselves.
    cam = boxes.convert_to("camera")
    cam_points = LiDARPoints(points).convert_to("camera")
    cam_other = LiDARBoxes3D(other).convert_to("camera").tensor
    assert cam.points_in_boxes_part(cam_points, boxes_override=cam_other).tolist() == [1, 0]
    assert boxes.points_in_boxes(points).tolist() == [0, -1]
    assert torch.equal(boxes.points_in_boxes_batch(points), boxes.points_in_boxes_all(points))
    with pytest.raises(ShapeError, match="boxes_override"):
        boxes.points_in_boxes_part(points, boxes_override=torch.zeros(2, 5))
