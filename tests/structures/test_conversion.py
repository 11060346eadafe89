"""Conversions between LiDAR, Camera and Depth: values by hand, round trips over all six ordered
pairs (with the default permutations and with real KITTI calibration), geometric agreement of
converted corners, and the input kinds (structures, tensors, numpy, lists)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pc3d.structures import box_class, convert_boxes, convert_points, default_rt_mat, limit_period

from ._common import ROW, BoxMode, CameraBoxes3D, CameraPoints, DepthBoxes3D, LiDARBoxes3D, LiDARPoints
from ._kitti import homogeneous, lidar_to_cam, read_calib

MODES = (BoxMode.LIDAR, BoxMode.CAMERA, BoxMode.DEPTH)
PAIRS = list(itertools.permutations(MODES, 2))
PAIR_IDS = [f"{a.value}->{b.value}" for a, b in PAIRS]


def wrap_angle(a: np.ndarray | torch.Tensor) -> np.ndarray:
    """Angle differences folded into [-pi, pi)."""
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi


def assert_same_boxes(a: np.ndarray, b: np.ndarray, atol: float, yaw_atol: float) -> None:
    np.testing.assert_allclose(a[:, :6], b[:, :6], atol=atol, rtol=1e-5)
    np.testing.assert_allclose(wrap_angle(a[:, 6] - b[:, 6]), 0, atol=yaw_atol)
    np.testing.assert_allclose(a[:, 7:], b[:, 7:], atol=atol)


# Real matrices for every ordered pair, from the KITTI calibration of frame 000001. Each system is
# related to LiDAR by a real transform: Camera by R0_rect @ Tr_velo_to_cam, Depth by the default
# permutation applied after Tr_imu_to_velo's inverse (a real rigid motion, LiDAR -> IMU).
def _to_lidar() -> dict[BoxMode, np.ndarray]:
    calib = read_calib("000001")
    imu_to_velo = homogeneous(calib["Tr_imu_to_velo"])
    depth_from_lidar = homogeneous(
        default_rt_mat("lidar", "depth").numpy().astype(np.float64)
    ) @ np.linalg.inv(imu_to_velo)
    return {
        BoxMode.LIDAR: np.eye(4),
        BoxMode.CAMERA: np.linalg.inv(lidar_to_cam("000001")),
        BoxMode.DEPTH: np.linalg.inv(depth_from_lidar),
    }


TO_LIDAR = _to_lidar()


def real_rt(src: BoxMode, dst: BoxMode) -> np.ndarray:
    """A real 4x4 transform taking `src` coordinates to `dst` coordinates."""
    return np.linalg.inv(TO_LIDAR[dst]) @ TO_LIDAR[src]


coords = st.floats(-60, 60, allow_nan=False, width=32)
sizes = st.floats(0.125, 15, allow_nan=False, width=32)
yaws = st.floats(-9.5, 9.5, allow_nan=False, width=32)
box_rows = st.tuples(coords, coords, coords, sizes, sizes, sizes, yaws, coords, coords)
box_arrays = st.lists(box_rows, min_size=0, max_size=12).map(
    lambda rows: np.array(rows, dtype=np.float32).reshape(-1, 9)
)


# ------------------------------------------------------------------------------ by hand
def test_lidar_to_camera_by_hand() -> None:
    cam = LiDARBoxes3D([[1, 2, 3, 4, 2, 1.5, 0.3]]).convert_to(BoxMode.CAMERA)
    assert isinstance(cam, CameraBoxes3D)
    assert_same_boxes(cam.numpy(), np.array([[-2, -3, 1, 4, 1.5, 2, -0.3 - math.pi / 2]]), 1e-6, 1e-6)


# Each pair worked out on paper from the axis tables (MMDetection3D's closed forms):
# centre permutation, size order, and yaw formula.
HAND = {
    ("lidar", "camera"): ((-2, -3, 1), (4, 1.5, 2), -0.3 - math.pi / 2),
    ("lidar", "depth"): ((-2, 1, 3), (4, 2, 1.5), 0.3 + math.pi / 2),
    ("camera", "lidar"): ((3, -1, -2), (4, 1.5, 2), -0.3 - math.pi / 2),
    ("camera", "depth"): ((1, 3, -2), (4, 1.5, 2), -0.3),
    ("depth", "lidar"): ((2, -1, 3), (4, 2, 1.5), 0.3 - math.pi / 2),
    ("depth", "camera"): ((1, -3, 2), (4, 1.5, 2), -0.3),
}


@pytest.mark.parametrize(("src", "dst"), list(HAND))
def test_each_pair_by_hand(src: str, dst: str) -> None:
    centre, dims, yaw = HAND[(src, dst)]
    out = convert_boxes(np.array([[1, 2, 3, 4, 2, 1.5, 0.3]]), src, dst)
    assert_same_boxes(out, np.array([[*centre, *dims, yaw]]), 1e-6, 1e-6)
    # Points follow the same permutation as box centres.
    np.testing.assert_allclose(convert_points(np.array([[1.0, 2.0, 3.0]]), src, dst), [centre], atol=1e-6)


def test_yaw_is_wrapped_into_minus_pi_pi() -> None:
    out = convert_boxes(torch.tensor([[0, 0, 0, 1, 1, 1, 3.0]]), "lidar", "camera")
    assert -math.pi <= out[0, 6].item() < math.pi
    np.testing.assert_allclose(out[0, 6].item(), -3.0 - math.pi / 2 + 2 * math.pi, atol=1e-6)


def test_real_calibration_moves_centre_like_points() -> None:
    rt = lidar_to_cam("000001")
    lidar = LiDARBoxes3D([[10.0, 2.0, -1.6, 4.0, 1.8, 1.5, 0.4]])
    cam = lidar.convert_to("camera", rt)
    expected = (rt @ np.array([10.0, 2.0, -1.6, 1.0]))[:3]
    np.testing.assert_allclose(cam.bottom_center[0].numpy(), expected, atol=1e-5)
    # The height moved to y_size: the gravity centres agree up to the calibration's small tilt.
    gravity = (rt @ np.append(lidar.gravity_center[0].numpy(), 1.0))[:3]
    np.testing.assert_allclose(cam.gravity_center[0].numpy(), gravity, atol=0.02)
    # The heading vector turns with the calibration: read its angle in the camera's x-z plane.
    heading = rt[:3, :3] @ np.array([math.cos(0.4), math.sin(0.4), 0.0])
    expected_yaw = math.atan2(-heading[2], heading[0])
    assert abs(cam.yaw.item() - expected_yaw) < 1e-6
    # That differs from the default -yaw - pi/2 by the calibration's own yaw (0.0125 degrees in
    # this frame: its 0.85 degree rotation is almost all tilt), far above float32 rounding.
    default_yaw = lidar.convert_to("camera").yaw.item()
    assert 1e-4 < abs(cam.yaw.item() - default_yaw) < 0.05


def test_same_mode_returns_copy_or_applies_matrix() -> None:
    boxes = LiDARBoxes3D([[1, 2, 3, 4, 2, 1.5, 0.3]])
    same = boxes.convert_to("lidar")
    assert same is not boxes and torch.equal(same.tensor, boxes.tensor)
    moved = boxes.convert_to("lidar", [[0, -1, 0, 5], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    assert_same_boxes(moved.numpy(), np.array([[3, 1, 3, 4, 2, 1.5, 0.3 + math.pi / 2]]), 1e-6, 1e-6)


# ------------------------------------------------------------------------------ round trips
@settings(max_examples=40, deadline=None)
@given(boxes=box_arrays)
@pytest.mark.parametrize(("src", "dst"), PAIRS, ids=PAIR_IDS)
def test_round_trip_default(src: BoxMode, dst: BoxMode, boxes: np.ndarray) -> None:
    there = convert_boxes(boxes, src, dst)
    back = convert_boxes(there, dst, src)
    assert there.shape == boxes.shape and back.dtype == np.float32
    assert_same_boxes(back, boxes, atol=1e-4, yaw_atol=1e-4)
    # Extra columns are carried unchanged.
    np.testing.assert_array_equal(there[:, 7:], boxes[:, 7:])


@settings(max_examples=40, deadline=None)
@given(boxes=box_arrays)
@pytest.mark.parametrize(("src", "dst"), PAIRS, ids=PAIR_IDS)
def test_round_trip_real_calibration(src: BoxMode, dst: BoxMode, boxes: np.ndarray) -> None:
    rt = real_rt(src, dst)
    structure = box_class(src)(boxes)
    there = structure.convert_to(dst, rt)
    back = there.convert_to(src, np.linalg.inv(rt))
    assert type(there) is box_class(dst) and type(back) is box_class(src)
    # The calibration tilts the vertical by ~0.5 degrees; the heading's projection back loses
    # only second-order terms of that tilt.
    assert_same_boxes(back.numpy(), structure.numpy(), atol=2e-3, yaw_atol=2e-3)


@settings(max_examples=30, deadline=None)
@given(pts=arrays(np.float32, st.tuples(st.integers(0, 20), st.just(4)), elements=coords))
@pytest.mark.parametrize(("src", "dst"), PAIRS, ids=PAIR_IDS)
def test_points_round_trip(src: BoxMode, dst: BoxMode, pts: np.ndarray) -> None:
    for rt in (None, real_rt(src, dst)):
        back_rt = None if rt is None else np.linalg.inv(rt)
        back = convert_points(convert_points(pts, src, dst, rt), dst, src, back_rt)
        np.testing.assert_allclose(back, pts, atol=1e-3)
        np.testing.assert_array_equal(back[:, 3], pts[:, 3])


# ------------------------------------------------------------------------------ geometry
def match_corner_sets(a: np.ndarray, b: np.ndarray) -> float:
    """Largest distance from a corner of one box to the nearest corner of the other, over boxes."""
    d = np.linalg.norm(a[:, :, None, :] - b[:, None, :, :], axis=-1)  # [N, 8, 8]
    return float(max(d.min(axis=2).max(), d.min(axis=1).max())) if len(a) else 0.0


def yaw_only_rt(angle: float, shift: tuple[float, float, float], src: BoxMode, dst: BoxMode) -> np.ndarray:
    """A rigid 4x4 `src` -> `dst`: a turn about `src`'s vertical axis, then the default permutation."""
    c, s = math.cos(angle), math.sin(angle)
    turn = [[c, -s, 0], [s, c, 0], [0, 0, 1]] if src.z_up else [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    mat = np.eye(4)
    mat[:3, :3] = default_rt_mat(src, dst).numpy() @ np.array(turn)
    mat[:3, 3] = shift
    return mat


@settings(max_examples=30, deadline=None)
@given(boxes=box_arrays, angle=st.floats(-math.pi, math.pi), shift=st.tuples(coords, coords, coords))
@pytest.mark.parametrize(("src", "dst"), PAIRS, ids=PAIR_IDS)
def test_converted_corners_are_transformed_corners(
    src: BoxMode, dst: BoxMode, boxes: np.ndarray, angle: float, shift: tuple[float, float, float]
) -> None:
    """The converted box occupies exactly the transformed space (any rigid motion about the
    vertical composed with the axis permutation)."""
    for rt in (None, yaw_only_rt(angle, shift, src, dst)):
        structure = box_class(src)(boxes)
        converted = structure.convert_to(dst, rt)
        corners = structure.corners.reshape(-1, 3).numpy()
        moved = convert_points(corners, src, dst, rt).reshape(-1, 8, 3)
        assert match_corner_sets(converted.corners.numpy(), moved) < 1e-3


@pytest.mark.parametrize(("src", "dst"), PAIRS, ids=PAIR_IDS)
def test_real_calibration_corners_agree_up_to_tilt(src: BoxMode, dst: BoxMode) -> None:
    """With a real calibration the converted box stays upright in `dst`, so its corners differ
    from the transformed corners only by the calibration's tilt of the vertical (< 1 degree)."""
    boxes = box_class(src)(np.array([[5, 1, -1, 4.0, 2.0, 1.5, 0.7], [-3, 8, 2, 0.8, 0.6, 1.8, -2.0]]))
    rt = real_rt(src, dst)
    residual = default_rt_mat(src, dst).numpy().T @ rt[:3, :3]  # the calibration's own rotation
    up = np.array([0.0, 0.0, 1.0]) if src.z_up else np.array([0.0, -1.0, 0.0])
    tilt = math.acos(min(1.0, float(up @ residual @ up)))
    assert 0.005 < tilt < 0.02
    reach = float(np.linalg.norm(boxes.corners.numpy() - boxes.bottom_center.numpy()[:, None], axis=-1).max())
    moved = convert_points(boxes.corners.reshape(-1, 3).numpy(), src, dst, rt).reshape(-1, 8, 3)
    assert match_corner_sets(boxes.convert_to(dst, rt).corners.numpy(), moved) < 1.05 * tilt * reach + 1e-3


# ------------------------------------------------------------------------------ kinds
def test_kinds_are_preserved() -> None:
    row = [*ROW, 0.5, -0.5]
    as_list = convert_boxes(row, "lidar", "camera")
    assert isinstance(as_list, list) and len(as_list) == 9
    nested = convert_boxes([row, row], "lidar", "camera")
    assert isinstance(nested, list) and len(nested) == 2 and nested[0] == pytest.approx(as_list)
    f64 = convert_boxes(np.array([row]), "lidar", "depth")
    assert isinstance(f64, np.ndarray) and f64.dtype == np.float64
    tensor = convert_boxes(torch.tensor([row], dtype=torch.float64), "lidar", "depth")
    assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float64
    np.testing.assert_allclose(tensor.numpy(), f64, atol=1e-9)
    structure = convert_boxes(LiDARBoxes3D([row]), "lidar", "depth")
    assert isinstance(structure, DepthBoxes3D) and structure.box_dim == 9
    np.testing.assert_allclose(structure.numpy(), f64, atol=1e-5)
    pts = convert_points(
        LiDARPoints([[1.0, 2.0, 3.0, 0.5]], attribute_dims={"intensity": 3}), "lidar", "camera"
    )
    assert isinstance(pts, CameraPoints) and pts.attribute_dims == {"intensity": 3}
    np.testing.assert_allclose(pts.numpy(), [[-2, -3, 1, 0.5]])


def test_input_is_not_modified() -> None:
    boxes = np.array([[1, 2, 3, 4, 2, 1.5, 0.3]], dtype=np.float32)
    original = boxes.copy()
    convert_boxes(boxes, "lidar", "camera", lidar_to_cam("000001"))
    convert_points(boxes[:, :3], "lidar", "camera")
    np.testing.assert_array_equal(boxes, original)


@pytest.mark.parametrize("shape", [(3, 3), (3, 4), (4, 4)])
def test_every_matrix_shape(shape: tuple[int, int]) -> None:
    rt = lidar_to_cam("000001")[: shape[0], : shape[1]]
    out = convert_boxes(np.array([[10.0, 2.0, -1.6, 4.0, 1.8, 1.5, 0.4]]), "lidar", "camera", rt)
    expected = rt[:3, :3] @ [10.0, 2.0, -1.6] + (rt[:3, 3] if shape[1] == 4 else 0)
    np.testing.assert_allclose(out[0, :3], expected, atol=1e-5)


def test_axis_aligned_boxes_stay_axis_aligned() -> None:
    """Boxes without yaw keep yaw 0; a quarter turn of the axes swaps their two BEV sizes."""
    lidar = LiDARBoxes3D([[0, 0, 0, 4.0, 2.0, 1.5]])
    assert not lidar.with_yaw
    cam = lidar.convert_to("camera")
    assert not cam.with_yaw and cam.yaw.item() == 0
    # Length 4 lay along LiDAR x = camera z: the camera box is 2 wide in x, 4 deep in z.
    np.testing.assert_allclose(cam.dims.numpy(), [[2.0, 1.5, 4.0]])
    depth = DepthBoxes3D([[0, 0, 0, 4.0, 2.0, 1.5]]).convert_to("camera")
    np.testing.assert_allclose(depth.dims.numpy(), [[4.0, 1.5, 2.0]])


def test_limit_period_on_both_kinds() -> None:
    values = np.array([3.5, -3.5, math.pi, -math.pi])
    expected = np.array([3.5 - 2 * math.pi, -3.5 + 2 * math.pi, -math.pi, -math.pi])
    np.testing.assert_allclose(limit_period(values, 0.5, 2 * math.pi), expected)
    np.testing.assert_allclose(limit_period(torch.from_numpy(values), 0.5, 2 * math.pi).numpy(), expected)
    np.testing.assert_allclose(limit_period(np.array([3.5]), 0.0, math.pi), [3.5 - math.pi])


@pytest.mark.parametrize(("src", "dst"), PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("with_yaw", [True, False])
def test_numpy_kernels_equal_the_tensor_ones(src: BoxMode, dst: BoxMode, with_yaw: bool) -> None:
    from pc3d.structures.coord_transform import convert_box_tensor, convert_point_tensor

    gen = np.random.default_rng(3)
    boxes = np.concatenate(
        [gen.uniform(-40, 40, (50, 3)), gen.uniform(0.2, 5, (50, 3)), gen.uniform(-4, 4, (50, 3))], axis=1
    ).astype(np.float32)
    points = gen.uniform(-40, 40, (80, 5)).astype(np.float32)
    for rt_mat in (None, real_rt(src, dst)):
        array = convert_box_tensor(boxes, src, dst, rt_mat, with_yaw=with_yaw)
        tensor = convert_box_tensor(torch.from_numpy(boxes), src, dst, rt_mat, with_yaw=with_yaw)
        assert isinstance(array, np.ndarray) and array.dtype == np.float32
        assert_same_boxes(array, tensor.numpy(), atol=1e-4, yaw_atol=1e-5)
        moved = convert_point_tensor(points, src, dst, rt_mat)
        assert isinstance(moved, np.ndarray) and moved.dtype == np.float32
        np.testing.assert_allclose(
            moved, convert_point_tensor(torch.from_numpy(points), src, dst, rt_mat), atol=1e-4
        )
    assert not np.shares_memory(convert_point_tensor(points, src, src), points)


def test_the_conversion_kernels_import_without_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, numpy as np; from pc3d.structures.coord_transform import convert_box_tensor; "
        "out = convert_box_tensor(np.zeros((1, 7), np.float32), 'camera', 'lidar'); "
        "assert 'torch' not in sys.modules and out.shape == (1, 7), sorted(sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
