"""Point structures: named attributes, operations by hand, agreement with the box operations,
container behaviour and empty clouds."""

from __future__ import annotations

import copy
import math
import pickle

import numpy as np
import pytest
import torch

from pc3d.errors import FormatError, ShapeError
from pc3d.structures import BasePoints, DepthPoints, box_class, points_class

from ._common import BoxMode, CameraBoxes3D, CameraPoints, LiDARBoxes3D, LiDARPoints

POINT_CLASSES = (LiDARPoints, CameraPoints, DepthPoints)
CLASS_IDS = [c.__name__ for c in POINT_CLASSES]
pi = math.pi


def cloud() -> LiDARPoints:
    data = [[1.0, 2.0, 3.0, 0.5, 10, 20, 30], [4.0, 5.0, 6.0, 0.25, 40, 50, 60]]
    return LiDARPoints(data, attribute_dims={"intensity": 3, "color": [4, 5, 6]})


def test_named_attributes() -> None:
    pts = cloud()
    assert pts.points_dim == 7 and len(pts) == 2
    assert pts.intensity.tolist() == [0.5, 0.25] and pts.attr("intensity").tolist() == [0.5, 0.25]
    assert pts.color.tolist() == [[10, 20, 30], [40, 50, 60]]
    assert pts.coord.tolist() == [[1, 2, 3], [4, 5, 6]]
    with pytest.raises(KeyError, match="no attribute 'elongation'.*color.*intensity"):
        pts.attr("elongation")
    with pytest.raises(AttributeError, match="elongation"):
        _ = pts.elongation
    plain = DepthPoints([[0.0, 0.0, 0.0]])
    assert plain.attribute_dims is None and plain.points_dim == 3
    with pytest.raises(AttributeError):
        _ = plain.intensity


def test_coord_setter_and_bev() -> None:
    pts = cloud()
    pts.coord = np.zeros((2, 3))
    assert pts.tensor[:, :3].abs().sum().item() == 0 and pts.intensity.tolist() == [0.5, 0.25]
    with pytest.raises(ShapeError, match=r"\(2, 3\)"):
        pts.coord = np.zeros((3, 3))
    cam = CameraPoints([[1.0, 2.0, 3.0]])
    assert cam.bev.tolist() == [[1.0, 3.0]] and cloud().bev.tolist() == [[1, 2], [4, 5]]


def test_rotate_flip_translate_scale_by_hand() -> None:
    lidar = LiDARPoints([[1.0, 0.0, 2.0, 7.0]])
    rot_t = lidar.rotate(pi / 2)
    np.testing.assert_allclose(lidar.numpy(), [[0, 1, 2, 7]], atol=1e-6)
    assert rot_t.shape == (3, 3)
    cam = CameraPoints([[1.0, 2.0, 0.0]])
    cam.rotate(pi / 2)  # about y: +x turns toward -z
    np.testing.assert_allclose(cam.numpy(), [[0, 2, -1]], atol=1e-6)
    cam.rotate(pi / 2, axis=2)
    np.testing.assert_allclose(cam.numpy(), [[-2, 0, -1]], atol=1e-6)
    depth = DepthPoints([[1.0, 2.0, 3.0]])
    depth.flip("horizontal")
    depth.flip("vertical")
    np.testing.assert_allclose(depth.numpy(), [[-1, -2, 3]])
    lidar.flip("horizontal")
    np.testing.assert_allclose(lidar.numpy(), [[0, -1, 2, 7]], atol=1e-6)
    lidar.translate([1.0, 1.0, 1.0])
    lidar.scale(2.0)
    np.testing.assert_allclose(lidar.numpy(), [[2, 0, 6, 7]], atol=1e-6)
    per_point = LiDARPoints([[0.0, 0, 0], [1.0, 1, 1]])
    per_point.translate(torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]))
    assert per_point.tensor.tolist() == [[1, 0, 0], [1, 2, 1]]


@pytest.mark.parametrize("cls", POINT_CLASSES, ids=CLASS_IDS)
def test_points_follow_the_box_operations(cls: type[BasePoints]) -> None:
    """`boxes.rotate/flip(points=...)` and the points' own methods are the same motion."""
    boxes_cls = box_class(cls.mode)
    data = torch.randn(20, 4, generator=torch.Generator().manual_seed(0))
    by_boxes, by_self = cls(data), cls(data)
    boxes = boxes_cls([[0, 0, 0, 1, 1, 1, 0]])
    boxes.rotate(0.6, by_boxes)
    by_self.rotate(0.6)
    assert torch.allclose(by_boxes.tensor, by_self.tensor, atol=1e-6)
    for direction in ("horizontal", "vertical"):
        boxes.flip(direction, by_boxes)
        by_self.flip(direction)
    assert torch.equal(by_boxes.tensor, by_self.tensor)
    # Extra columns never move.
    assert torch.equal(by_self.tensor[:, 3], data[:, 3])


def test_in_range() -> None:
    pts = LiDARPoints([[1.0, 1.0, 1.0], [5.0, 1.0, 1.0], [1.0, 1.0, 9.0]])
    assert pts.in_range_3d([0, 0, 0, 2, 2, 2]).tolist() == [True, False, False]
    assert pts.in_range_bev(np.array([0, 0, 2, 2])).tolist() == [True, False, True]
    cam = CameraPoints([[1.0, 50.0, 1.0], [1.0, 0.0, 5.0]])
    assert cam.in_range_bev([0, 0, 2, 2]).tolist() == [True, False]


def test_convert_to_keeps_attributes() -> None:
    pts = cloud()
    cam = pts.convert_to("camera")
    assert type(cam) is CameraPoints and cam.attribute_dims == pts.attribute_dims
    np.testing.assert_allclose(cam.coord.numpy(), [[-2, -3, 1], [-5, -6, 4]])
    assert torch.equal(cam.color, pts.color)
    back = cam.convert_to(BoxMode.LIDAR)
    assert torch.allclose(back.tensor, pts.tensor)
    assert points_class("depth") is DepthPoints


def test_indexing_cat_clone_to_numpy() -> None:
    pts = cloud()
    for item in (0, -1, slice(0, 1), torch.tensor([True, False]), torch.tensor([1]), np.array([0, 1]), [1]):
        picked = pts[item]
        assert type(picked) is LiDARPoints and picked.tensor.dim() == 2
        assert picked.attribute_dims == pts.attribute_dims
    assert pts[-1].intensity.tolist() == [0.25]
    joined = LiDARPoints.cat([pts, pts[0]])
    assert len(joined) == 3 and joined.intensity.tolist() == [0.5, 0.25, 0.5]
    with pytest.raises(FormatError, match="LiDARPoints with CameraPoints"):
        LiDARPoints.cat([pts, pts.convert_to("camera")])
    with pytest.raises(ShapeError, match="width 7"):
        LiDARPoints.cat([pts, LiDARPoints([[0.0, 0, 0]])])
    assert len(LiDARPoints.cat([])) == 0
    copy = pts.clone()
    copy.scale(3.0)
    assert not torch.equal(copy.tensor, pts.tensor)
    assert pts.to("cpu").device.type == "cpu"
    array = pts.numpy()
    assert array.dtype == np.float32 and array.shape == (2, 7)
    assert "LiDARPoints(num_points=2, points_dim=7" in repr(pts)
    assert len(pts.new_point(np.zeros((5, 7)))) == 5


@pytest.mark.parametrize("cls", POINT_CLASSES, ids=CLASS_IDS)
def test_empty_cloud_flows_through_everything(cls: type[BasePoints]) -> None:
    pts = cls(np.zeros((0, 4)), attribute_dims={"intensity": 3})
    assert pts.tensor.shape == (0, 4) and pts.intensity.shape == (0,) and pts.bev.shape == (0, 2)
    pts.rotate(0.4)
    pts.flip("horizontal")
    pts.translate([1, 2, 3])
    pts.scale(2.0)
    assert pts.in_range_3d([0, 0, 0, 1, 1, 1]).shape == (0,) and pts.in_range_bev([0, 0, 1, 1]).shape == (0,)
    for mode in BoxMode:
        assert pts.convert_to(mode).tensor.shape == (0, 4)
    assert len(cls.cat([pts, pts])) == 0 and len(pts[pts.tensor[:, 0] > 0]) == 0
    boxes = box_class(cls.mode)([[0, 0, 0, 1, 1, 1, 0]])
    assert boxes.points_in_boxes(pts).shape == (0,) and boxes.points_in_boxes_all(pts).shape == (0, 1)
    assert cls([]).tensor.shape == (0, 3)


def test_scene_rotation_keeps_lidar_camera_views_consistent() -> None:
    """Rotating a scene in LiDAR or the same scene in camera axes gives the same result.

    Each system turns right-handedly about its own yaw axis; the camera's points down, so a
    camera rotation by -a is the LiDAR rotation by +a (both increase the LiDAR yaw by a)."""
    boxes = LiDARBoxes3D([[10, 2, -1.5, 4, 2, 1.5, 0.4]])
    pts = LiDARPoints([[10.5, 2.2, -1.0], [30.0, 0.0, 0.0]])
    cam_boxes, cam_pts = boxes.convert_to("camera"), pts.convert_to("camera")
    boxes.rotate(0.8, pts)
    cam_boxes.rotate(-0.8, cam_pts)
    assert isinstance(cam_boxes, CameraBoxes3D)
    assert torch.allclose(cam_boxes.convert_to("lidar").tensor, boxes.tensor, atol=1e-5)
    assert torch.allclose(cam_pts.convert_to("lidar").tensor, pts.tensor, atol=1e-5)
    assert boxes.points_in_boxes(pts).tolist() == cam_boxes.points_in_boxes(cam_pts).tolist() == [0, -1]


def test_points_survive_pickle_and_deepcopy() -> None:
    """Data-loader workers pickle structures; named attributes must come back."""
    pts = cloud()
    for clone in (pickle.loads(pickle.dumps(pts)), copy.deepcopy(pts)):
        assert type(clone) is LiDARPoints and torch.equal(clone.tensor, pts.tensor)
        assert clone.intensity.tolist() == [0.5, 0.25]
    boxes = CameraBoxes3D([[1, 2, 3, 4, 1.5, 2, 0.3]])
    restored = pickle.loads(pickle.dumps(boxes))
    assert type(restored) is CameraBoxes3D and torch.equal(restored.tensor, boxes.tensor)


def test_column_indexing_is_refused() -> None:
    with pytest.raises(ShapeError, match="indexed by rows only"):
        cloud()[:, :3]
    with pytest.raises(ShapeError, match="indexed by rows only"):
        LiDARBoxes3D([[0, 0, 0, 1, 1, 1, 0]])[0, 1:]
