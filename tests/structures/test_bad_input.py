"""Bad input to the structures gets an error that names what is wrong."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pc3d.errors import FormatError, Pc3dError, ShapeError
from pc3d.structures import DepthPoints, convert_boxes, convert_points

from ._common import ROW, BoxMode, CameraBoxes3D, CameraPoints, DepthBoxes3D, LiDARBoxes3D, LiDARPoints


@pytest.mark.parametrize(
    ("data", "shape"),
    [([[1.0, 2.0, 3.0, 4.0, 2.0]], r"\(1, 5\)"), (ROW, r"\(7,\)"), (np.zeros((2, 3, 7)), r"\(2, 3, 7\)")],
)
def test_wrong_width_or_rank(data: object, shape: str) -> None:
    with pytest.raises(ShapeError, match=rf"LiDARBoxes3D needs shape \(N, 7\+C\).*got {shape}"):
        LiDARBoxes3D(data)


def test_box_dim_disagreeing_with_data() -> None:
    with pytest.raises(ShapeError, match="box_dim=9 but the data has 7 columns"):
        LiDARBoxes3D([ROW], box_dim=9)


def test_negative_size_names_row_and_column() -> None:
    data = [ROW, [1.0, 2.0, 3.0, 4.0, 1.5, -2.0, 0.3]]
    with pytest.raises(FormatError, match=r"CameraBoxes3D row 1: z_size \(width\) \(column 5\) is -2.0"):
        CameraBoxes3D(data)
    with pytest.raises(FormatError, match=r"row 0: y_size \(width\) \(column 4\)"):
        LiDARBoxes3D([[0, 0, 0, 1, -1, 1, 0]])
    with pytest.raises(FormatError, match=r"row 0: x_size \(column 3\)"):
        DepthBoxes3D([[0, 0, 0, -1, 1, 1, 0]])


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_name_row_and_column(bad: float) -> None:
    data = np.array([ROW, ROW, ROW])
    data[2, 6] = bad
    # One message format for every bad value, shared with pc3d.ops: "<what> row <r>: <column> ...".
    with pytest.raises(FormatError, match=rf"LiDARBoxes3D row 2: yaw \(column 6\) is {bad}; 1 row\(s\)"):
        LiDARBoxes3D(data)
    data = np.array([ROW + [0.0, 0.0]])
    data[0, 8] = bad
    with pytest.raises(FormatError, match=r"row 0: column 8 \(column 8\)"):
        LiDARBoxes3D(data)


def test_nan_points_name_row_and_coordinate() -> None:
    pts = np.zeros((5, 4), dtype=np.float32)
    pts[3, 1] = np.nan
    pts[4, 3] = np.nan  # an unknown intensity: not a bad point
    with pytest.raises(FormatError, match=r"LiDARPoints row 3: y \(column 1\) is nan; 1 row\(s\)"):
        LiDARPoints(pts)
    pts[2, 2] = -np.inf
    with pytest.raises(FormatError, match=r"CameraPoints row 2: z \(column 2\) is -inf; 2 row\(s\)"):
        CameraPoints(pts)


@pytest.mark.parametrize("cls", [LiDARPoints, CameraPoints, DepthPoints])
def test_nan_attributes_are_carried_along(cls: type) -> None:
    # x, y, z must be finite; other columns may hold NaN (as MMDetection3D's points may).
    pts = np.arange(20, dtype=np.float32).reshape(5, 4)
    pts[4, 3] = np.nan
    pts[1, 3] = np.inf
    points = cls(pts, attribute_dims={"intensity": 3})
    assert torch.isnan(points.intensity[4]) and torch.isinf(points.intensity[1])
    converted = points.convert_to("lidar" if cls is not LiDARPoints else "camera")
    assert torch.isnan(converted.tensor[4, 3]) and torch.isfinite(converted.coord).all()
    points.rotate(0.3)
    points.flip("horizontal")
    points.translate([1.0, 2.0, 3.0])
    assert torch.isfinite(points.coord).all() and torch.isnan(points.tensor[4, 3])
    assert len(points[points.in_range_3d([-100, -100, -100, 100, 100, 100])]) == 5
    assert torch.isnan(points.new_point(pts).tensor[4, 3])


def test_points_shape_and_attribute_errors() -> None:
    with pytest.raises(ShapeError, match=r"LiDARPoints needs shape \(N, 3\+C\).*got \(4, 2\)"):
        LiDARPoints(np.zeros((4, 2)))
    with pytest.raises(ShapeError, match="attribute 'color' points at column 6.*width 6"):
        LiDARPoints(np.zeros((4, 6)), attribute_dims={"color": [3, 4, 6]})
    with pytest.raises(ShapeError, match="attribute 'intensity' points at column 1"):
        LiDARPoints(np.zeros((4, 4)), attribute_dims={"intensity": 1})
    with pytest.raises(ShapeError, match="translation must have shape"):
        LiDARPoints(np.zeros((4, 3))).translate([1.0, 2.0])


def test_non_numeric_data() -> None:
    with pytest.raises(FormatError, match="LiDARBoxes3D must be numeric"):
        LiDARBoxes3D([["a", 1, 2, 3, 4, 5, 6]])
    with pytest.raises(FormatError, match="must be numeric"):
        LiDARBoxes3D([[1, 2, 3], [1, 2]])


@pytest.mark.parametrize("text", ["radar", "", "lidar2", "bev"])
def test_unknown_mode_names_the_valid_ones(text: str) -> None:
    with pytest.raises(
        Pc3dError, match=rf"unknown box mode {text!r}; valid modes are 'lidar', 'camera', 'depth'"
    ):
        BoxMode(text)
    with pytest.raises(FormatError, match="valid modes are"):
        BoxMode.parse(text)
    with pytest.raises(FormatError, match=rf"unknown box mode {text!r}"):
        convert_boxes([ROW], "lidar", text)
    with pytest.raises(FormatError, match=rf"unknown box mode {text!r}"):
        LiDARBoxes3D([ROW]).convert_to(text)


def test_mode_strings_accepted() -> None:
    assert BoxMode("lidar") is BoxMode.LIDAR and BoxMode("Camera") is BoxMode.CAMERA
    assert BoxMode.parse("DEPTH") is BoxMode.DEPTH and BoxMode.parse(" cam ") is BoxMode.CAMERA
    assert BoxMode.parse(BoxMode.LIDAR) is BoxMode.LIDAR and BoxMode.LIDAR == "lidar"


@pytest.mark.parametrize("shape", [(2, 2), (4, 3), (3, 5), (16,), (1, 4, 4)])
def test_bad_rt_mat_shape(shape: tuple[int, ...]) -> None:
    rt = np.eye(max(shape))[tuple(slice(0, s) for s in shape)] if len(shape) == 2 else np.zeros(shape)
    message = rf"rt_mat must be 3x3, 3x4 or 4x4, got shape {re_shape(shape)}"
    with pytest.raises(ShapeError, match=message):
        convert_boxes(np.array([ROW]), "lidar", "camera", rt)
    with pytest.raises(ShapeError, match=message):
        LiDARBoxes3D([ROW]).convert_to("camera", torch.from_numpy(rt))
    with pytest.raises(ShapeError, match=message):
        convert_points(np.zeros((2, 3)), "camera", "lidar", rt)


def re_shape(shape: tuple[int, ...]) -> str:
    return "\\(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + "\\)"


def test_non_finite_rt_mat() -> None:
    rt = np.eye(4)
    rt[0, 3] = np.nan
    with pytest.raises(FormatError, match="rt_mat holds NaN"):
        convert_boxes(np.array([ROW]), "lidar", "camera", rt)


def test_structure_of_another_system_than_src() -> None:
    with pytest.raises(FormatError, match=r"boxes are CameraBoxes3D \(camera\) but src is 'lidar'"):
        convert_boxes(CameraBoxes3D([ROW]), "lidar", "depth")
    with pytest.raises(FormatError, match=r"points are LiDARPoints \(lidar\) but src is 'camera'"):
        convert_points(LiDARPoints([[0.0, 0, 0]]), "camera", "depth")


def test_raw_array_of_wrong_width_in_conversion() -> None:
    with pytest.raises(ShapeError, match=r"boxes must have shape \(N, 7\+C\), got \(2, 6\)"):
        convert_boxes(np.zeros((2, 6)), "lidar", "camera")
    with pytest.raises(ShapeError, match=r"points must have shape \(N, 3\+C\), got \(2, 2\)"):
        convert_points(np.zeros((2, 2)), "lidar", "camera")
    with pytest.raises(FormatError, match="boxes must be a structure, Tensor, ndarray or list, got str"):
        convert_boxes("boxes.json", "lidar", "camera")


def test_bad_operation_arguments() -> None:
    boxes = LiDARBoxes3D([ROW])
    with pytest.raises(
        FormatError, match="flip direction must be 'horizontal' or 'vertical', got 'diagonal'"
    ):
        boxes.flip("diagonal")
    with pytest.raises(FormatError, match="flip direction"):
        CameraPoints([[0.0, 0, 0]]).flip("up")
    with pytest.raises(ShapeError, match="scalar angle or a 3x3 rotation matrix, got shape \\(2,\\)"):
        boxes.rotate([0.1, 0.2])
    with pytest.raises(ShapeError, match=r"translation must have shape \(3,\) or \(1, 3\), got \(2,\)"):
        boxes.translate([1.0, 2.0])
    with pytest.raises(FormatError, match="scale factor must be a positive finite number, got -1"):
        boxes.scale(-1)
    with pytest.raises(ShapeError, match="range must hold 4 numbers"):
        boxes.in_range_bev([0, 0, 1])
    with pytest.raises(ShapeError, match="range must hold 6 numbers"):
        boxes.in_range_3d([0, 0, 0, 1])
    with pytest.raises(ShapeError, match=r"origin must be 3 relative coordinates"):
        LiDARBoxes3D([ROW], origin=(0.5, 0.5))
    with pytest.raises(ShapeError, match=r"points must have shape \(M, 3\+C\)"):
        boxes.points_in_boxes(np.zeros((4, 2)))
    with pytest.raises(FormatError, match="points must be BasePoints, a Tensor or an ndarray, got list"):
        boxes.rotate(0.1, [[0.0, 0.0, 0.0]])


@pytest.mark.parametrize("make", [lambda: LiDARBoxes3D([ROW, ROW]), lambda: LiDARPoints(torch.rand(2, 4))])
def test_non_finite_motions_are_refused_and_leave_the_data_as_it_was(make) -> None:
    """A NaN angle, offset or factor would turn every coordinate it touches into NaN, silently."""
    structure = make()
    before = structure.tensor.clone()
    nan, inf = math.nan, math.inf
    with pytest.raises(FormatError, match=r"rotation( angle)? must be finite, got nan$"):
        structure.rotate(nan)
    with pytest.raises(FormatError, match="must be finite, got"):
        structure.rotate(torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, inf]]))
    with pytest.raises(FormatError, match=r"translation must be finite, got \[inf, 0.0, 0.0\]"):
        structure.translate([inf, 0.0, 0.0])
    with pytest.raises(FormatError, match=r"translation must be finite, got \[0.0, nan, 0.0\]"):
        structure.translate(np.array([[0.0, 0.0, 0.0], [0.0, nan, 0.0]]))  # one offset per row
    for factor in (nan, inf, 0.0, -2.0, "big"):
        with pytest.raises(FormatError, match="scale factor must be a positive finite number"):
            structure.scale(factor)
    assert torch.equal(structure.tensor, before)
    structure.translate([1.0, 0.0, 0.0])
    structure.scale(2)
    assert torch.allclose(structure.tensor[:, 0], (before[:, 0] + 1) * 2)
