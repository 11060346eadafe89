"""Box structures: construction, properties by hand, in-place operations checked against the
geometry of their corners, points-in-boxes, container behaviour and empty input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pc3d.errors import FormatError, ShapeError
from pc3d.structures import Boxes3D, box_class, points_class

from ._common import ROW, BoxMode, CameraBoxes3D, CameraPoints, DepthBoxes3D, LiDARBoxes3D, LiDARPoints

BOX_CLASSES = (LiDARBoxes3D, CameraBoxes3D, DepthBoxes3D)
CLASS_IDS = [c.__name__ for c in BOX_CLASSES]
pi = math.pi


# ------------------------------------------------------------------------------ construction
@pytest.mark.parametrize("cls", BOX_CLASSES, ids=CLASS_IDS)
def test_construct_from_every_kind(cls: type[Boxes3D]) -> None:
    row = ROW
    expected = torch.tensor([row])
    for data in (
        [row],
        np.array([row]),
        np.array([row], dtype=np.float32),
        torch.tensor([row], dtype=torch.float64),
    ):
        boxes = cls(data)
        assert boxes.tensor.dtype == torch.float32 and boxes.tensor.shape == (1, 7)
        assert torch.equal(boxes.tensor, expected) and boxes.with_yaw and len(boxes) == 1
    assert box_class(cls.mode) is cls and cls(expected).mode is cls.mode


def test_construction_copies_the_input() -> None:
    data = np.array([ROW], dtype=np.float32)
    tensor = torch.from_numpy(data.copy())
    for source in (data, tensor):
        boxes = LiDARBoxes3D(source)
        boxes.translate([1.0, 1.0, 1.0])
    assert data[0, 0] == 1.0 and tensor[0, 0].item() == 1.0


def test_empty_input() -> None:
    for data in ([], np.zeros((0, 7)), torch.zeros(0), torch.zeros(0, 9)):
        boxes = LiDARBoxes3D(data)
        assert boxes.tensor.shape == (0, 9 if getattr(data, "shape", (0,))[-1] == 9 else 7)
    assert LiDARBoxes3D([], box_dim=9).tensor.shape == (0, 9)
    assert CameraBoxes3D(np.zeros((0, 6))).tensor.shape == (0, 7)


def test_origin_shifts_to_the_bottom_centre() -> None:
    gravity = LiDARBoxes3D([[1, 2, 3, 4, 2, 1.5, 0.3]], origin=(0.5, 0.5, 0.5))
    np.testing.assert_allclose(gravity.bottom_center.numpy(), [[1, 2, 3 - 0.75]])
    np.testing.assert_allclose(gravity.gravity_center.numpy(), [[1, 2, 3]])
    cam = CameraBoxes3D([[1, 2, 3, 4, 1.5, 2, 0.3]], origin=(0.5, 0.5, 0.5))
    np.testing.assert_allclose(cam.bottom_center.numpy(), [[1, 2 + 0.75, 3]])
    np.testing.assert_allclose(cam.gravity_center.numpy(), [[1, 2, 3]])
    # A corner origin moves the centre by half the sizes along the box's own axes.
    corner = DepthBoxes3D([[0, 0, 0, 4, 2, 1, 0]], origin=(0, 0, 0))
    np.testing.assert_allclose(corner.bottom_center.numpy(), [[2, 1, 0]])
    # Those axes turn with the yaw: the given point is still the box's corner 0.
    for cls in (LiDARBoxes3D, CameraBoxes3D, DepthBoxes3D):
        turned = cls([[5, 6, 7, 4, 2, 1, 1.1]], origin=(0, 0, 0))
        np.testing.assert_allclose(turned.corners[0, 0].numpy(), [5, 6, 7], atol=1e-5)
        gravity = cls([[5, 6, 7, 4, 2, 1, 1.1]], origin=(0.5, 0.5, 0.5))
        np.testing.assert_allclose(gravity.gravity_center[0].numpy(), [5, 6, 7], atol=1e-5)


def test_boxes_without_yaw() -> None:
    six = LiDARBoxes3D([[1, 2, 3, 4, 2, 1.5]])
    assert six.tensor.shape == (1, 7) and six.yaw.item() == 0 and not six.with_yaw
    flagged = CameraBoxes3D([[1, 2, 3, 4, 1.5, 2, 0.7, 9.0]], with_yaw=False)
    assert flagged.yaw.item() == 0 and flagged.tensor[0, 7].item() == 9.0 and not flagged.with_yaw


# ------------------------------------------------------------------------------ properties
def test_unit_box_corners_in_every_system() -> None:
    lidar = LiDARBoxes3D([[0, 0, 0, 1, 1, 1, 0]]).corners[0].numpy()
    h = 0.5
    expected_lidar = [
        [-h, -h, 0],
        [-h, -h, 1],
        [-h, h, 1],
        [-h, h, 0],
        [h, -h, 0],
        [h, -h, 1],
        [h, h, 1],
        [h, h, 0],
    ]
    np.testing.assert_allclose(lidar, expected_lidar, atol=1e-7)
    np.testing.assert_allclose(
        DepthBoxes3D([[0, 0, 0, 1, 1, 1, 0]]).corners[0].numpy(), expected_lidar, atol=1e-7
    )
    cam = CameraBoxes3D([[0, 0, 0, 1, 1, 1, 0]]).corners[0].numpy()
    # Camera: bottom centre at y = 0, the box extends up to y = -1; corners 0, 1, 4, 5 on top.
    expected_cam = [
        [-h, -1, -h],
        [-h, -1, h],
        [-h, 0, h],
        [-h, 0, -h],
        [h, -1, -h],
        [h, -1, h],
        [h, 0, h],
        [h, 0, -h],
    ]
    np.testing.assert_allclose(cam, expected_cam, atol=1e-7)


def test_rotated_corners_by_hand() -> None:
    # A 4 x 2 LiDAR box turned by 90 degrees: its length now runs along y.
    lidar = LiDARBoxes3D([[10, 0, 0, 4, 2, 1, pi / 2]]).corners[0].numpy()
    np.testing.assert_allclose(lidar[[0, 4, 7, 3], :2], [[11, -2], [11, 2], [9, 2], [9, -2]], atol=1e-6)
    # Camera yaw -pi/2 heads along +z: the 4 m length runs along z.
    cam = CameraBoxes3D([[0, 0, 10, 4, 1, 2, -pi / 2]]).corners[0].numpy()
    np.testing.assert_allclose(cam[[0, 4]][:, [0, 2]], [[1, 8], [1, 12]], atol=1e-6)


def test_heights_lidar_vs_camera() -> None:
    lidar = LiDARBoxes3D([[0, 0, -1, 4, 2, 1.5, 0]])
    assert (lidar.bottom_height.item(), lidar.top_height.item(), lidar.height.item()) == (-1, 0.5, 1.5)
    np.testing.assert_allclose(lidar.gravity_center.numpy(), [[0, 0, -0.25]])
    cam = CameraBoxes3D([[0, 1.7, 10, 4, 1.5, 2, 0]])
    # y points down: the top face is 1.5 m above the bottom, at smaller y.
    np.testing.assert_allclose(
        [cam.bottom_height.item(), cam.top_height.item(), cam.height.item()], [1.7, 0.2, 1.5], atol=1e-6
    )
    np.testing.assert_allclose(cam.gravity_center.numpy(), [[0, 0.95, 10]], atol=1e-6)
    depth = DepthBoxes3D([[0, 0, 0.5, 1, 2, 3, 0]])
    assert depth.top_height.item() == 3.5 and depth.volume.item() == 6


def test_bev_and_nearest_bev_by_hand() -> None:
    lidar = LiDARBoxes3D([[1, 2, 3, 4, 2, 1.5, pi / 2]])
    np.testing.assert_allclose(lidar.bev.numpy(), [[1, 2, 4, 2, pi / 2]], atol=1e-6)
    # Turned by 90 degrees: the axis-aligned box swaps its sizes.
    np.testing.assert_allclose(lidar.nearest_bev.numpy(), [[0, 0, 2, 4]], atol=1e-6)
    slight = LiDARBoxes3D([[1, 2, 3, 4, 2, 1.5, 0.3]])
    np.testing.assert_allclose(slight.nearest_bev.numpy(), [[-1, 1, 3, 3]], atol=1e-6)
    cam = CameraBoxes3D([[1, 2, 3, 4, 1.5, 2, 0.3]])
    # Camera BEV is the (x, z) plane with the yaw negated (y points down).
    np.testing.assert_allclose(cam.bev.numpy(), [[1, 3, 4, 2, -0.3]], atol=1e-6)
    np.testing.assert_allclose(cam.nearest_bev.numpy(), [[-1, 2, 3, 4]], atol=1e-6)
    turned = CameraBoxes3D([[1, 2, 3, 4, 1.5, 2, -1.2]])
    np.testing.assert_allclose(turned.nearest_bev.numpy(), [[0, 1, 2, 5]], atol=1e-6)


def test_limit_yaw() -> None:
    boxes = LiDARBoxes3D([[0, 0, 0, 1, 1, 1, 3.5], [0, 0, 0, 1, 1, 1, -7.0]])
    # The default period became pi (MMDetection3D's); a period of 2 pi keeps the heading.
    boxes.limit_yaw(period=2 * pi)
    np.testing.assert_allclose(boxes.yaw.numpy(), [3.5 - 2 * pi, -7.0 + 2 * pi], atol=1e-6)
    boxes.limit_yaw(offset=0.0, period=pi)
    np.testing.assert_allclose(boxes.yaw.numpy(), [3.5 - pi, -7.0 + 3 * pi], atol=1e-6)


def test_in_range_uses_each_systems_plane() -> None:
    lidar = LiDARBoxes3D([[5, 1, -1, 4, 2, 1.5, 0], [90, 1, -1, 4, 2, 1.5, 0]])
    assert lidar.in_range_bev([0, -40, 70.4, 40]).tolist() == [True, False]
    assert lidar.in_range_3d([0, -40, -3, 70.4, 40, 1]).tolist() == [True, False]
    cam = lidar.convert_to("camera")
    # Camera BEV is (x, z): the same range in camera axes.
    assert cam.in_range_bev([-40, 0, 40, 70.4]).tolist() == [True, False]


# ------------------------------------------------------------------------------ operations
def random_boxes(cls: type[Boxes3D], n: int, seed: int, width: int = 7) -> Boxes3D:
    gen = torch.Generator().manual_seed(seed)
    data = torch.rand(n, width, generator=gen) * 10 - 5
    data[:, 3:6] = torch.rand(n, 3, generator=gen) * 4 + 0.5
    data[:, 6] = torch.rand(n, generator=gen) * 2 * pi - pi
    return cls(data)


def assert_same_corner_sets(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-4) -> None:
    d = torch.cdist(a, b)  # [N, 8, 8]
    assert float(d.min(dim=2).values.max()) < atol and float(d.min(dim=1).values.max()) < atol


@pytest.mark.parametrize("cls", BOX_CLASSES, ids=CLASS_IDS)
@settings(max_examples=25, deadline=None)
@given(angle=st.floats(-2 * pi, 2 * pi), seed=st.integers(0, 10_000))
def test_rotate_moves_corners_rigidly(cls: type[Boxes3D], angle: float, seed: int) -> None:
    boxes = random_boxes(cls, 6, seed)
    before = boxes.corners
    assert boxes.rotate(angle) is None
    probe = torch.zeros(0, 3)
    _, rot_t = cls([]).rotate(angle, probe)
    assert_same_corner_sets(boxes.corners, before @ rot_t)
    # The rotation is about the vertical axis and increases the yaw.
    vertical = cls.yaw_axis
    assert torch.allclose(rot_t[vertical], torch.eye(3)[vertical])
    expected_yaw = random_boxes(cls, 6, seed).yaw + angle
    assert torch.allclose(
        torch.remainder(boxes.yaw - expected_yaw + pi, 2 * pi) - pi, torch.zeros(6), atol=1e-5
    )


@pytest.mark.parametrize("cls", BOX_CLASSES, ids=CLASS_IDS)
def test_rotate_by_matrix_equals_rotate_by_angle(cls: type[Boxes3D]) -> None:
    by_angle, by_matrix = random_boxes(cls, 5, 1), random_boxes(cls, 5, 1)
    pts = torch.rand(10, 3)
    _, rot_t = by_angle.rotate(0.7, pts.clone())
    by_matrix.rotate(rot_t)
    assert torch.allclose(by_angle.tensor, by_matrix.tensor, atol=1e-5)


def test_rotate_by_hand() -> None:
    lidar = LiDARBoxes3D([[1, 0, 0, 4, 2, 1.5, 0]])
    lidar.rotate(pi / 2)
    np.testing.assert_allclose(lidar.numpy(), [[0, 1, 0, 4, 2, 1.5, pi / 2]], atol=1e-6)
    cam = CameraBoxes3D([[1, 0, 0, 4, 1.5, 2, 0]])
    # A positive angle turns camera +x toward -z and increases the yaw, like the LiDAR yaw.
    cam.rotate(pi / 2)
    np.testing.assert_allclose(cam.numpy(), [[0, 0, -1, 4, 1.5, 2, pi / 2]], atol=1e-6)


@pytest.mark.parametrize("cls", BOX_CLASSES, ids=CLASS_IDS)
@pytest.mark.parametrize("direction", ["horizontal", "vertical"])
def test_flip_mirrors_corners(cls: type[Boxes3D], direction: str) -> None:
    boxes = random_boxes(cls, 8, 3)
    mirrored = boxes.corners.clone()
    axis = cls.flip_axes[direction]
    mirrored[..., axis] = -mirrored[..., axis]
    boxes.flip(direction)
    assert_same_corner_sets(boxes.corners, mirrored)
    assert axis in cls.bev_axes


def test_flip_axes_match_mmdetection3d() -> None:
    assert LiDARBoxes3D.flip_axes == {"horizontal": 1, "vertical": 0}
    assert CameraBoxes3D.flip_axes == {"horizontal": 0, "vertical": 2}
    assert DepthBoxes3D.flip_axes == {"horizontal": 0, "vertical": 1}
    lidar = LiDARBoxes3D([[1, 2, 3, 4, 2, 1.5, 0.3]])
    lidar.flip("horizontal")
    np.testing.assert_allclose(lidar.numpy(), [[1, -2, 3, 4, 2, 1.5, -0.3]], atol=1e-6)
    lidar.flip("vertical")
    np.testing.assert_allclose(lidar.numpy(), [[-1, -2, 3, 4, 2, 1.5, pi + 0.3]], atol=1e-6)


@pytest.mark.parametrize("cls", BOX_CLASSES, ids=CLASS_IDS)
def test_translate_and_scale(cls: type[Boxes3D]) -> None:
    boxes = random_boxes(cls, 4, 5)
    before = boxes.corners
    boxes.translate([1.0, -2.0, 0.5])
    assert torch.allclose(boxes.corners, before + torch.tensor([1.0, -2.0, 0.5]), atol=1e-5)
    per_box = torch.arange(12, dtype=torch.float32).reshape(4, 3)
    boxes.translate(per_box)
    assert torch.allclose(
        boxes.corners, before + torch.tensor([1.0, -2.0, 0.5]) + per_box[:, None], atol=1e-5
    )
    moved = boxes.corners
    boxes.scale(1.5)
    assert torch.allclose(boxes.corners, moved * 1.5, atol=1e-5)


def test_velocity_follows_rotate_flip_scale_but_not_conversion() -> None:
    boxes = LiDARBoxes3D([[1, 0, 0, 4, 2, 1.5, 0, 2.0, 0.0]])
    boxes.rotate(pi / 2)
    np.testing.assert_allclose(boxes.tensor[0, 7:].numpy(), [0, 2], atol=1e-6)
    boxes.flip("horizontal")
    np.testing.assert_allclose(boxes.tensor[0, 7:].numpy(), [0, -2], atol=1e-6)
    boxes.scale(2.0)
    np.testing.assert_allclose(boxes.tensor[0, 7:].numpy(), [0, -4], atol=1e-6)
    cam = CameraBoxes3D([[0, 0, 0, 4, 1.5, 2, 0, 1.0, 3.0]])
    cam.flip("vertical")  # negates z and the z velocity
    np.testing.assert_allclose(cam.tensor[0, 7:].numpy(), [1.0, -3.0])
    # Conversions carry extra columns unchanged, as MMDetection3D does.
    assert boxes.convert_to("camera").tensor[0, 7:].tolist() == boxes.tensor[0, 7:].tolist()


def test_axis_aligned_rotation_encloses() -> None:
    boxes = DepthBoxes3D([[0, 0, 0, 4, 2, 1]], with_yaw=False)
    boxes.rotate(pi / 4)
    side = 6 * math.sqrt(0.5)  # 4 cos 45 + 2 sin 45
    np.testing.assert_allclose(boxes.numpy(), [[0, 0, 0, side, side, 1, 0]], atol=1e-5)


# ------------------------------------------------------------------------------ points in boxes
def test_points_in_boxes_by_hand() -> None:
    boxes = LiDARBoxes3D([[0, 0, 0, 2, 2, 2, pi / 4], [10, 0, 0, 1, 1, 1, 0]])
    points = torch.tensor([[1.2, 0, 1], [0, 0, 2.5], [1.5, 1.5, 1], [10, 0.4, 0.5], [10, 0.6, 0.5]])
    assert boxes.points_in_boxes(points).tolist() == [0, -1, -1, 1, -1]
    assert boxes.points_in_boxes_part(points).tolist() == [0, -1, -1, 1, -1]  # MMDetection3D's name
    mask = boxes.points_in_boxes_all(points.numpy())
    assert mask.shape == (5, 2) and mask.tolist()[3] == [False, True]
    # The same scene in camera axes gives the same answer.
    cam = boxes.convert_to("camera")
    cam_points = LiDARPoints(points).convert_to("camera")
    assert cam.points_in_boxes(cam_points).tolist() == [0, -1, -1, 1, -1]
    assert torch.equal(cam.points_in_boxes_all(cam_points.tensor), mask)


def sample_inside(boxes: Boxes3D, per_box: int, seed: int) -> torch.Tensor:
    """Points strictly inside each box: a convex mix of its corners, pulled toward the centre."""
    gen = torch.Generator().manual_seed(seed)
    weights = torch.rand(len(boxes), per_box, 8, generator=gen) ** 4
    weights = weights / weights.sum(dim=-1, keepdim=True)
    inside = weights @ boxes.corners  # [N, per_box, 3]
    centre = boxes.gravity_center[:, None]
    return (centre + 0.9 * (inside - centre)).reshape(-1, 3)


@pytest.mark.parametrize("cls", BOX_CLASSES, ids=CLASS_IDS)
def test_points_stay_inside_through_scene_operations(cls: type[Boxes3D]) -> None:
    boxes = random_boxes(cls, 3, 11)
    # Spread the boxes apart so that every point lies in exactly one box.
    boxes.translate(torch.tensor([[-20.0, 0, 0], [0, 0, 0], [20.0, 0, 0]]))
    pts = points_class(cls.mode)(sample_inside(boxes, 50, 0))
    owner = torch.arange(3).repeat_interleave(50)
    assert torch.equal(boxes.points_in_boxes(pts), owner)
    as_tensor, as_numpy = pts.tensor.clone(), pts.numpy().copy()
    returned, _ = boxes.rotate(0.9, pts)
    assert returned is pts
    boxes.flip("horizontal", pts)
    boxes.flip("vertical", pts)
    boxes.translate([3.0, -1.0, 2.0])
    pts.translate([3.0, -1.0, 2.0])
    boxes.scale(1.7)
    pts.scale(1.7)
    assert torch.equal(boxes.points_in_boxes(pts), owner)
    # Tensors and arrays passed as points are moved in place the same way.
    for raw in (as_tensor, as_numpy):
        other = random_boxes(cls, 3, 11)
        other.translate(torch.tensor([[-20.0, 0, 0], [0, 0, 0], [20.0, 0, 0]]))
        other.rotate(0.9, raw)
        other.flip("horizontal", raw)
        assert torch.equal(other.points_in_boxes(raw), owner)
    assert torch.allclose(as_tensor, torch.from_numpy(as_numpy), atol=1e-5)


def test_points_of_another_system_are_refused() -> None:
    boxes = CameraBoxes3D([[0, 0, 10, 4, 1.5, 2, 0]])
    with pytest.raises(FormatError, match="LiDARPoints.*CameraBoxes3D"):
        boxes.points_in_boxes(LiDARPoints([[10.0, 0, -1]]))
    with pytest.raises(FormatError, match="convert the points"):
        boxes.rotate(0.1, LiDARPoints([[10.0, 0, -1]]))
    assert boxes.points_in_boxes(CameraPoints([[0.0, -0.5, 10.0]])).tolist() == [0]


# ------------------------------------------------------------------------------ container
@pytest.mark.parametrize("cls", BOX_CLASSES, ids=CLASS_IDS)
def test_indexing_keeps_class_and_matrix_shape(cls: type[Boxes3D]) -> None:
    boxes = random_boxes(cls, 5, 2, width=9)
    for item, rows in [
        (2, [2]),
        (-1, [4]),
        (-2, [3]),
        (slice(1, 3), [1, 2]),
        (torch.tensor([True, False, True, False, False]), [0, 2]),
        (torch.tensor([4, 0]), [4, 0]),
        (np.array([1, 3]), [1, 3]),
        ([0, 1], [0, 1]),
        ([False] * 5, []),
    ]:
        picked = boxes[item]
        assert type(picked) is cls and picked.tensor.shape == (len(rows), 9)
        assert torch.equal(picked.tensor, boxes.tensor[rows])
    with pytest.raises(IndexError):
        boxes[5]


def test_cat_len_clone_to_numpy_repr() -> None:
    a, b = random_boxes(LiDARBoxes3D, 2, 0), random_boxes(LiDARBoxes3D, 3, 1)
    joined = LiDARBoxes3D.cat([a, b])
    assert type(joined) is LiDARBoxes3D and len(joined) == 5
    assert torch.equal(joined.tensor, torch.cat([a.tensor, b.tensor]))
    joined.tensor[0, 0] = 100.0
    assert a.tensor[0, 0].item() != 100.0
    assert len(Boxes3D.cat([a])) == 2 and len(LiDARBoxes3D.cat([])) == 0
    copy = a.clone()
    copy.translate([1, 1, 1])
    assert not torch.equal(copy.tensor, a.tensor)
    moved = a.to("cpu")
    assert moved.device.type == "cpu" and type(moved) is LiDARBoxes3D
    array = a.numpy()
    assert isinstance(array, np.ndarray) and array.dtype == np.float32 and array.shape == (2, 7)
    text = repr(a)
    assert text.startswith("LiDARBoxes3D(num_boxes=2, box_dim=7") and "tensor(" in text
    new = a.new_box([[0, 0, 0, 1, 1, 1, 0]])
    assert type(new) is LiDARBoxes3D and len(new) == 1
    assert [row.shape for row in a] == [torch.Size([7])] * 2


def test_cat_refuses_mixed_inputs() -> None:
    with pytest.raises(FormatError, match="LiDARBoxes3D with CameraBoxes3D"):
        Boxes3D.cat([LiDARBoxes3D([[0, 0, 0, 1, 1, 1, 0]]), CameraBoxes3D([[0, 0, 0, 1, 1, 1, 0]])])
    with pytest.raises(ShapeError, match="width 7 and 9"):
        LiDARBoxes3D.cat([LiDARBoxes3D([[0, 0, 0, 1, 1, 1, 0]]), LiDARBoxes3D([[0, 0, 0, 1, 1, 1, 0, 0, 0]])])
    with pytest.raises(FormatError, match="cannot tell the system"):
        Boxes3D.cat([])
    with pytest.raises(TypeError, match="abstract"):
        Boxes3D([[0, 0, 0, 1, 1, 1, 0]])


@pytest.mark.parametrize("cls", BOX_CLASSES, ids=CLASS_IDS)
def test_zero_boxes_flow_through_everything(cls: type[Boxes3D]) -> None:
    boxes = cls(torch.zeros(0, 7))
    assert (
        boxes.corners.shape == (0, 8, 3) and boxes.bev.shape == (0, 5) and boxes.nearest_bev.shape == (0, 4)
    )
    assert (
        boxes.gravity_center.shape == (0, 3) and boxes.volume.shape == (0,) and boxes.top_height.shape == (0,)
    )
    pts = points_class(cls.mode)(torch.rand(4, 3))
    returned, _ = boxes.rotate(0.3, pts)
    assert len(returned) == 4
    boxes.flip("vertical", pts)
    boxes.translate([1, 2, 3])
    boxes.scale(2.0)
    boxes.limit_yaw()
    assert boxes.in_range_bev([0, 0, 1, 1]).shape == (0,) and boxes.in_range_3d([0, 0, 0, 1, 1, 1]).shape == (
        0,
    )
    assert boxes.points_in_boxes(pts).tolist() == [-1] * 4
    assert boxes.points_in_boxes_all(pts).shape == (4, 0)
    assert boxes.points_in_boxes(torch.zeros(0, 3)).shape == (0,)
    for mode in BoxMode:
        assert boxes.convert_to(mode).tensor.shape == (0, 7)
    assert len(cls.cat([boxes, boxes])) == 0 and len(boxes[torch.zeros(0, dtype=torch.bool)]) == 0
    assert cls(torch.zeros(2, 7) + torch.tensor([0, 0, 0, 1, 1, 1, 0])).points_in_boxes(
        torch.zeros(0, 3)
    ).shape == (0,)


def test_gradients_flow_through_construction_corners_and_conversion() -> None:
    """Box losses (e.g. corner losses) differentiate through the structures, as in MMDetection3D."""
    pred = torch.tensor([ROW], requires_grad=True)
    boxes = LiDARBoxes3D(pred, origin=(0.5, 0.5, 0.5))
    boxes.corners[:, 0].sum().backward()  # corner 0 moves with every column but the extras
    assert pred.grad is not None and bool((pred.grad != 0).all())
    pred.grad = None
    LiDARBoxes3D(pred).convert_to("camera").yaw.sum().backward()
    assert pred.grad[0, 6].item() == pytest.approx(-1.0)  # camera yaw = -yaw - pi/2
    assert LiDARBoxes3D(pred).numpy().shape == (1, 7)
