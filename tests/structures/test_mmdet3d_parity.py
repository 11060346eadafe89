"""Methods and defaults that follow MMDetection3D 1.4's box and point structures, on known values."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from pc3d.errors import FormatError, ShapeError
from pc3d.structures import MODE_NAMES

from ._common import BoxMode, CameraBoxes3D, CameraPoints, DepthBoxes3D, LiDARBoxes3D, LiDARPoints

pi = math.pi


def test_limit_yaw_defaults_to_a_period_of_pi() -> None:
    boxes = LiDARBoxes3D([[0, 0, 0, 1, 1, 1, 2.0], [0, 0, 0, 1, 1, 1, -2.0], [0, 0, 0, 1, 1, 1, 3.5]])
    boxes.limit_yaw()
    # [-pi/2, pi/2): a heading and its reverse are one orientation (2 pi would leave 2.0 and -2.0).
    np.testing.assert_allclose(boxes.yaw.numpy(), [2.0 - pi, -2.0 + pi, 3.5 - pi], atol=1e-6)
    boxes.limit_yaw(offset=0.5, period=2 * pi)
    np.testing.assert_allclose(boxes.yaw.numpy(), [2.0 - pi, -2.0 + pi, 3.5 - pi], atol=1e-6)


def test_in_range_3d_tests_the_gravity_centre() -> None:
    rng = [0, -40, -3, 70.4, 40, 1]
    # Bottoms at z 0.5 and -3.2, height 1: gravity centres at 1.0 (out: not < 1) and -2.7 (in).
    lidar = LiDARBoxes3D([[5, 0, 0.5, 4, 2, 1, 0], [5, 0, -3.2, 4, 2, 1, 0]])
    assert lidar.in_range_3d(rng).tolist() == [False, True]
    # Camera (y down): bottom y 1.5, height 1.5 -> gravity y 0.75, below the range's y_min 0.8.
    cam = CameraBoxes3D([[0, 1.5, 10, 4, 1.5, 2, 0], [0, 2.5, 10, 4, 1.5, 2, 0]])
    assert cam.in_range_3d([-10, 0.8, 0, 10, 2, 50]).tolist() == [False, True]
    # Same as testing gravity_center by hand.
    centre = cam.gravity_center
    assert centre[:, 1].tolist() == [0.75, 1.75]


def test_box_mode_names_and_aliases() -> None:
    assert BoxMode.CAM is BoxMode.CAMERA and BoxMode.LIDAR.value == "lidar" and BoxMode.DEPTH.value == "depth"
    assert list(BoxMode) == [BoxMode.LIDAR, BoxMode.CAMERA, BoxMode.DEPTH]  # the alias is no extra member
    assert MODE_NAMES == BoxMode.names() == ("lidar", "camera", "depth")
    for text in ("cam", "CAM", "camera", " Camera "):
        assert BoxMode.parse(text) is BoxMode.CAMERA
    # MMDetection3D's Box3DMode / Coord3DMode integers.
    assert [BoxMode(i) for i in range(3)] == [BoxMode.LIDAR, BoxMode.CAMERA, BoxMode.DEPTH]
    assert BoxMode.parse(1) is BoxMode.CAMERA
    for bad in (3, True, "radar", 1.0):
        with pytest.raises(FormatError, match="valid modes are 'lidar', 'camera', 'depth'"):
            BoxMode.parse(bad)  # type: ignore[arg-type]
    assert LiDARBoxes3D([[0, 0, 0, 1, 1, 1, 0]]).convert_to(BoxMode.CAM).mode is BoxMode.CAMERA


def test_box_mode_convert_is_mmdetection3ds_mode_convert() -> None:
    boxes = LiDARBoxes3D([[10, 2, -1, 4, 2, 1.5, 0.3]])
    cam = BoxMode.convert(boxes, BoxMode.LIDAR, BoxMode.CAM)
    assert isinstance(cam, CameraBoxes3D) and torch.allclose(cam.tensor, boxes.convert_to("camera").tensor)
    # Raw data are boxes unless is_point (Box3DMode's and Coord3DMode's defaults differ).
    raw = BoxMode.convert(boxes.tensor.numpy(), 0, 1)
    assert isinstance(raw, np.ndarray) and np.allclose(raw, cam.numpy(), atol=1e-6)
    points = BoxMode.convert(np.array([[1.0, 2.0, 3.0]]), "lidar", "cam", is_point=True)
    np.testing.assert_allclose(points, [[-2.0, -3.0, 1.0]])
    cloud = BoxMode.convert(LiDARPoints([[1.0, 2.0, 3.0]]), "lidar", "camera")
    assert isinstance(cloud, CameraPoints) and cloud.tensor.tolist() == [[-2.0, -3.0, 1.0]]
    assert LiDARBoxes3D.YAW_AXIS == 2 and CameraBoxes3D.YAW_AXIS == 1 and DepthBoxes3D.YAW_AXIS == 2


def test_box_mode_imports_without_torch() -> None:
    code = "import sys; from pc3d.structures.box_mode import MODE_NAMES; assert 'torch' not in sys.modules, MODE_NAMES"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_convert_to_correct_yaw_false_is_mmdetection3ds_closed_form() -> None:
    boxes = LiDARBoxes3D([[10, 2, -1, 4, 2, 1.5, 0.3]])
    # A calibration that adds a 0.1 rad turn about the vertical to the default permutation.
    turn = np.array([[math.cos(0.1), -math.sin(0.1), 0], [math.sin(0.1), math.cos(0.1), 0], [0, 0, 1]])
    rt_mat = np.array([[0, -1, 0], [0, 0, -1], [1, 0, 0]]) @ turn
    closed_form = boxes.convert_to("cam", rt_mat, correct_yaw=False)
    np.testing.assert_allclose(closed_form.yaw.numpy(), [-0.3 - pi / 2], atol=1e-6)  # -yaw - pi/2
    corrected = boxes.convert_to("cam", rt_mat)
    np.testing.assert_allclose(corrected.yaw.numpy(), [-0.4 - pi / 2], atol=1e-6)
    # Centres and sizes do not depend on it.
    assert torch.allclose(closed_form.tensor[:, :6], corrected.tensor[:, :6])


def test_enlarged_box_keeps_the_gravity_centre() -> None:
    lidar = LiDARBoxes3D([[1, 2, 0, 4, 2, 1.5, 0.3]])
    grown = lidar.enlarged_box(0.5)
    np.testing.assert_allclose(grown.tensor.numpy(), [[1, 2, -0.5, 5, 3, 2.5, 0.3]], atol=1e-6)
    assert torch.allclose(grown.gravity_center, lidar.gravity_center)
    cam = CameraBoxes3D([[0, 1.5, 10, 4, 1.5, 2, 0]])
    np.testing.assert_allclose(cam.enlarged_box(0.5).tensor.numpy(), [[0, 2.0, 10, 5, 2.5, 3, 0]], atol=1e-6)
    per_box = DepthBoxes3D([[0, 0, 0, 1, 1, 1, 0], [0, 0, 0, 1, 1, 1, 0]]).enlarged_box(
        torch.tensor([0.0, 1.0])
    )
    np.testing.assert_allclose(per_box.tensor[:, 2:6].numpy(), [[0, 1, 1, 1], [-1, 3, 3, 3]], atol=1e-6)
    with pytest.raises(ShapeError, match="extra_width"):
        lidar.enlarged_box(torch.ones(3))


def test_local_yaw_is_kittis_alpha() -> None:
    cam = CameraBoxes3D([[1, 1.5, 1, 4, 1.5, 2, 0.0], [-1, 1.5, 1, 4, 1.5, 2, 3.0]])
    # yaw - atan2(x, z) of the gravity centre, one turn back into [-pi, pi].
    np.testing.assert_allclose(cam.local_yaw.numpy(), [-pi / 4, 3.0 + pi / 4 - 2 * pi], atol=1e-6)


def test_surface_and_line_centres_per_box() -> None:
    boxes = DepthBoxes3D([[0, 0, 0, 2, 4, 6, 0], [10, 0, 0, 2, 4, 6, pi / 2]])
    surface, line = boxes.get_surface_line_center()
    assert surface.shape == (12, 3) and line.shape == (24, 3)
    np.testing.assert_allclose(
        surface[:6].numpy(), [[0, 0, 6], [0, 0, 0], [0, 2, 3], [0, -2, 3], [1, 0, 3], [-1, 0, 3]], atol=1e-5
    )
    # The second box is turned by pi/2: its own +y face centre lies along -x, +x along +y.
    np.testing.assert_allclose(
        surface[6:].numpy(),
        [[10, 0, 6], [10, 0, 0], [8, 0, 3], [12, 0, 3], [10, 1, 3], [10, -1, 3]],
        atol=1e-5,
    )
    np.testing.assert_allclose(
        line[[0, 8, 12, 20]].numpy(), [[1, 0, 6], [1, 2, 3], [10, 1, 6], [8, 1, 3]], atol=1e-5
    )


def test_small_api_of_boxes() -> None:
    boxes = LiDARBoxes3D([[0, 0, 0, 1, 1, 1, 0], [1, 1, 1, 2, 2, 2, 0.5]])
    assert boxes.shape == (2, 7)
    assert (
        boxes.cpu().tensor.device.type == "cpu" and boxes.clone().tensor.data_ptr() != boxes.tensor.data_ptr()
    )
    src = torch.zeros(1, 7, requires_grad=True)
    built = LiDARBoxes3D(src + torch.tensor([0, 0, 0, 1, 1, 1, 0.0]))
    assert built.tensor.requires_grad and not built.detach().tensor.requires_grad


def test_rotate_returns_the_matrix_of_the_points_kind() -> None:
    boxes = LiDARBoxes3D([[1, 0, 0, 1, 1, 1, 0]])
    points_np = np.array([[1.0, 0.0, 0.0, 7.0]], dtype=np.float32)
    out, rot = boxes.rotate(pi / 2, points_np)
    assert out is points_np and isinstance(rot, np.ndarray) and rot.dtype == np.float32
    np.testing.assert_allclose(points_np, [[0, 1, 0, 7]], atol=1e-6)
    out_t, rot_t = boxes.rotate(pi / 2, torch.tensor([[1.0, 0.0, 0.0]]))
    assert isinstance(rot_t, torch.Tensor)
    assert boxes.rotate(0.1) is None


def test_points_height_and_color_properties() -> None:
    points = LiDARPoints([[0, 0, 0, 0.5], [1, 1, 1, 0.25]], attribute_dims={"intensity": 3})
    assert points.height is None and points.color is None
    points.height = np.array([1.5, 2.5])
    assert points.points_dim == 5 and points.attribute_dims == {"intensity": 3, "height": 4}
    assert points.height.tolist() == [1.5, 2.5]
    points.height = torch.tensor([[3.0], [4.0]])  # written in place, no new column
    assert points.points_dim == 5 and points.tensor[:, 4].tolist() == [3.0, 4.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        points.color = np.array([[0, 128, 255], [1, 2, 3]])
    assert points.attribute_dims["color"] == [5, 6, 7] and points.color.tolist() == [[0, 128, 255], [1, 2, 3]]
    with pytest.warns(UserWarning, match="beyond"):
        points.color = np.array([[0, 0, 300], [0, 0, 0]])
    with pytest.raises(ShapeError, match=r"height must have shape \(2,\)"):
        points.height = np.zeros(3)


def test_points_shuffle_coord_and_devices() -> None:
    torch.manual_seed(0)
    points = CameraPoints(torch.arange(30.0).reshape(10, 3))
    before = points.tensor.clone()
    perm = points.shuffle()
    assert sorted(perm.tolist()) == list(range(10)) and torch.equal(points.tensor, before[perm])
    points.coord = torch.zeros(30)  # any N * 3 numbers, as MMDetection3D's setter
    assert points.coord.abs().sum() == 0
    assert points.cpu().tensor.device.type == "cpu" and points.detach().shape == (10, 3)
    # Camera points take the x-z plane as BEV.
    assert CameraPoints([[1.0, 2.0, 3.0]]).in_range_bev([0, 2, 2, 4]).tolist() == [True]
