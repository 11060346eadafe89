"""KITTI calibration and labels: hand-made and real files, conversions to LiDAR checked against
numpy arithmetic on the calibration numbers, projection back onto the image, bad input."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pc3d.errors import FormatError, ShapeError
from pc3d.io.kitti import (
    KittiCalib,
    format_kitti_labels,
    load_kitti_frame,
    parse_kitti_labels,
    project_boxes_to_image,
    project_points_to_image,
    read_kitti_calib,
    read_kitti_labels,
    read_png_size,
    write_kitti_labels,
)
from pc3d.io.points import load_points
from pc3d.ops import box_iou_2d
from pc3d.structures import CameraBoxes3D, LiDARBoxes3D

KITTI = Path(__file__).resolve().parents[1] / "data" / "kitti" / "training"
FRAMES_WITH_SCANS = ("000000", "000001", "000002", "000004")


def _numbers_after(path: Path, key: str) -> np.ndarray:
    """The numbers on the line of `key`, read with plain string handling (independent of pc3d)."""
    for line in path.read_text().splitlines():
        if line.startswith(key + ":"):
            return np.array(line.split(":", 1)[1].split(), dtype=np.float64)
    raise AssertionError(f"{key} not in {path}")


def _rot_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def _write_calib(
    path: Path, r0: np.ndarray, tr: np.ndarray, p2: np.ndarray, velo_key: str = "Tr_velo_to_cam:"
) -> Path:
    def fmt(m: np.ndarray) -> str:
        return " ".join(f"{v:.12e}" for v in m.reshape(-1))

    lines = [f"P{k}: {fmt(p2 if k == 2 else np.eye(3, 4))}" for k in range(4)]
    lines += [f"R0_rect: {fmt(r0)}", f"{velo_key} {fmt(tr)}", f"Tr_imu_to_velo: {fmt(np.eye(3, 4))}"]
    path.write_text("\n".join(lines) + "\n")
    return path


# ---------------------------------------------------------------------------------- calib


def test_hand_made_calibration(tmp_path: Path) -> None:
    r0 = _rot_z(0.01)
    # LiDAR (x fwd, y left, z up) -> camera (x right, y down, z fwd), then a translation.
    tr = np.array([[0, -1.0, 0, 0.1], [0, 0, -1.0, -0.2], [1.0, 0, 0, 0.3]])
    p2 = np.array([[700.0, 0, 600, 40], [0, 700, 180, 0.2], [0, 0, 1, 0.003]])
    calib = read_kitti_calib(_write_calib(tmp_path / "calib.txt", r0, tr, p2))
    assert isinstance(calib, KittiCalib)
    for matrix in (calib.P0, calib.P2, calib.R0_rect, calib.Tr_velo_to_cam, calib.Tr_imu_to_velo):
        assert matrix.shape == (4, 4)
        np.testing.assert_array_equal(matrix[3], [0, 0, 0, 1])
    np.testing.assert_allclose(calib.R0_rect[:3, :3], r0, atol=1e-12)
    np.testing.assert_allclose(calib.cam_to_img[:3], p2)
    expected = np.eye(4)
    expected[:3, :3] = r0
    tr4 = np.vstack([tr, [0, 0, 0, 1]])
    np.testing.assert_allclose(calib.lidar_to_cam, expected @ tr4, atol=1e-12)
    np.testing.assert_allclose(calib.cam_to_lidar @ calib.lidar_to_cam, np.eye(4), atol=1e-12)
    # A point 10 m ahead of the LiDAR is ~10 m in front of the camera (+z), 0.3 m further.
    ahead = calib.lidar_to_cam @ [10, 0, 0, 1]
    assert ahead[2] == pytest.approx(10.3)
    np.testing.assert_allclose(calib.lidar_to_img[:3], p2 @ expected @ tr4, atol=1e-9)


def test_other_key_spellings(tmp_path: Path) -> None:
    path = _write_calib(tmp_path / "c.txt", np.eye(3), np.eye(3, 4) * 2, np.eye(3, 4), velo_key="Tr_velo_cam")
    text = path.read_text().replace("R0_rect:", "R_rect").replace("Tr_imu_to_velo:", "Tr_imu_velo:")
    path.write_text(text + "S_02: 1 2\n")  # unknown keys are ignored
    calib = read_kitti_calib(path)
    np.testing.assert_array_equal(calib.Tr_velo_to_cam[:3, :3], 2 * np.eye(3))
    assert calib.Tr_imu_to_velo is not None


def test_real_calibration_numbers() -> None:
    path = KITTI / "calib" / "000001.txt"
    calib = read_kitti_calib(path)
    np.testing.assert_array_equal(calib.P2[:3].reshape(-1), _numbers_after(path, "P2"))
    np.testing.assert_array_equal(calib.R0_rect[:3, :3].reshape(-1), _numbers_after(path, "R0_rect"))
    assert calib.P2[0, 3] == pytest.approx(44.85728)
    assert calib.Tr_velo_to_cam[2, 3] == pytest.approx(-0.2717806)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t.replace("P3:", "# P3:"), "missing calibration key(s) P3"),
        (
            lambda t: "\n".join(line for line in t.splitlines() if not line.startswith("Tr_velo")),
            "Tr_velo_to_cam",
        ),
        (
            lambda t: t.replace("R0_rect: 9.999239000000e-01", "R0_rect:"),
            "line 5: R0_rect has 8 numbers, expected 9",
        ),
        (
            lambda t: t.replace("P2: 7.215377000000e+02", "P2: 7.2x5e+02"),
            "line 3: P2 value '7.2x5e+02' is not a number",
        ),
        (lambda t: t + "P1: " + " ".join(["1"] * 12) + "\n", "line 9: P1 repeats P1 (first given on line 2)"),
        (lambda t: t.replace("P0: 7.215377000000e+02", "P0: nan"), "line 1: P0 holds NaN"),
    ],
)
def test_malformed_calibration(tmp_path: Path, edit: object, expected: str) -> None:
    path = tmp_path / "calib.txt"
    path.write_text(edit((KITTI / "calib" / "000001.txt").read_text()))  # type: ignore[operator]
    with pytest.raises(FormatError) as err:
        read_kitti_calib(path)
    assert str(path) in str(err.value) and expected in str(err.value), str(err.value)


# --------------------------------------------------------------------------------- labels


def test_real_labels_keep_and_flag_dont_care() -> None:
    labels = read_kitti_labels(KITTI / "label_2" / "000001.txt")
    assert len(labels) == 7
    assert labels.types.tolist() == ["Truck", "Car", "Cyclist"] + ["DontCare"] * 4
    assert labels.dont_care.tolist() == [False] * 3 + [True] * 4
    assert labels.line_numbers.tolist() == [1, 2, 3, 4, 5, 6, 7]
    # Car line: 0.00 0 1.85 387.63 181.54 423.81 203.12 1.67 1.87 3.69 -16.53 2.39 58.49 1.57
    car = labels[1]
    assert car.occluded.tolist() == [0] and car.alpha[0] == pytest.approx(1.85)
    np.testing.assert_allclose(car.bbox2d[0], [387.63, 181.54, 423.81, 203.12], rtol=1e-6)
    np.testing.assert_allclose(car.dims_hwl[0], [1.67, 1.87, 3.69], rtol=1e-6)
    np.testing.assert_allclose(car.location[0], [-16.53, 2.39, 58.49], rtol=1e-6)
    assert np.isnan(labels.score).all()
    assert labels[labels.dont_care].bbox2d.shape == (4, 4)

    boxes = labels.to_camera_boxes()
    assert isinstance(boxes, CameraBoxes3D) and len(boxes) == 3 == len(labels.objects())
    # CameraBoxes3D sizes are l, h, w
    np.testing.assert_allclose(
        boxes.tensor[1].numpy(), [-16.53, 2.39, 58.49, 3.69, 1.67, 1.87, 1.57], rtol=1e-6
    )


def test_labels_with_scores_and_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "det.txt"
    path.write_text(
        "Car -1 -1 -1.57 100.00 120.00 200.00 180.00 1.50 1.60 3.90 1.00 1.70 20.00 -1.57 0.9310\n"
        "Pedestrian -1 -1 0.20 300.00 100.00 330.00 190.00 1.80 0.60 0.80 -2.00 1.60 15.00 0.10 0.4200\n"
    )
    labels = read_kitti_labels(path)
    np.testing.assert_allclose(labels.score, [0.931, 0.42], rtol=1e-6)
    again = read_kitti_labels(write_kitti_labels(tmp_path / "again.txt", labels))
    for name in ("bbox2d", "dims_hwl", "location", "rotation_y", "score", "truncated", "occluded"):
        np.testing.assert_allclose(getattr(again, name), getattr(labels, name), rtol=1e-6, err_msg=name)
    assert again.types.tolist() == ["Car", "Pedestrian"]


def test_detections_are_written_with_four_decimals_ground_truth_with_two(tmp_path: Path) -> None:
    text = (
        "Car 0.00 0 -1.5712 100.1234 120.0000 200.0000 180.0000 1.5012 1.6034 3.9056 1.0071 1.7049 20.0123 "
        "-1.5708 0.9310\n"
        "Car 0.15 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59\n"
    )
    written = format_kitti_labels(parse_kitti_labels(text, dtype=np.float64)).splitlines()
    # A box rounded to 0.01 m can cross the 0.7 IoU threshold: detections keep 4 decimals.
    assert written[0] == text.splitlines()[0]
    assert written[1] == text.splitlines()[1]


def test_one_parser_keeps_file_values_in_float64_and_checks_scores(tmp_path: Path) -> None:
    car = "Car 0.15 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59"
    text = f"{car}\n\nDontCare -1 -1 -10 1 2 3 4 -1 -1 -1 -1000 -1000 -1000 -10\n{car} 0.5\n"
    default = parse_kitti_labels(text)
    assert default.truncated.dtype == np.float32 and float(default.truncated[0]) != 0.15
    exact = parse_kitti_labels(text, "det.txt", dtype=np.float64)
    assert exact.truncated.dtype == np.float64 and exact.truncated[0] == 0.15  # as written
    assert exact.bbox2d[0].tolist() == [587.01, 173.33, 614.12, 200.12]
    assert exact.line_numbers.tolist() == [1, 3, 4] and exact.dont_care.tolist() == [False, True, False]
    assert exact.has_score.tolist() == [False, False, True] and exact.score[2] == 0.5
    assert exact.where(2) == "det.txt:4" and exact.occluded.dtype == np.int64
    with pytest.raises(
        FormatError, match=r"det\.txt:1: expected 16 fields, found 15 \(a detection needs its score"
    ):
        parse_kitti_labels(text, "det.txt", scores=True)
    with pytest.raises(
        FormatError, match=r"gt\.txt:4: expected 15 fields, found 16 \(ground truth has no score"
    ):
        parse_kitti_labels(text, "gt.txt", scores=False)
    with pytest.raises(FormatError, match=r"gt\.txt:1: field 16 \(score\) is not finite: 'nan'"):
        parse_kitti_labels(f"{car} nan\n", "gt.txt")
    with pytest.raises(FormatError, match=r"x\.txt:1: occluded must be an integer, found '0\.5'"):
        parse_kitti_labels(car.replace("0.15 0", "0.15 0.5", 1), "x.txt")


def test_empty_label_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_text("\n")
    labels = read_kitti_labels(path)
    assert len(labels) == 0
    assert labels.to_camera_boxes().tensor.shape == (0, 7)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "Car 0.00 0 1.85 387.63 181.54 423.81 203.12 1.67 1.87 3.69 -16.53 2.39 58.49",
            ":2: expected 15 or 16 fields (16 with a score), found 14",
        ),
        (
            "Car 0.00 0 1.85 387.63 181.54 423.81 203.12 1.67 abc 3.69 -16.53 2.39 58.49 1.57",
            ":2: field 10 (width) is not a number: 'abc'",
        ),
        (
            "Car 0.00 0 1.85 387.63 181.54 423.81 203.12 1.67 1.87 -3.69 -16.53 2.39 58.49 1.57",
            ":2: negative size: Car has length -3.69",
        ),
        (
            "Van x 0 1.85 387.63 181.54 423.81 203.12 1.67 1.87 3.69 -16.53 2.39 58.49 1.57",
            "field 2 (truncated) is not a number: 'x'",
        ),
    ],
)
def test_malformed_labels(tmp_path: Path, line: str, expected: str) -> None:
    path = tmp_path / "label.txt"
    path.write_text(
        "DontCare -1 -1 -10 503.89 169.71 590.61 190.13 -1 -1 -1 -1000 -1000 -1000 -10\n" + line + "\n"
    )
    with pytest.raises(FormatError) as err:
        read_kitti_labels(path)
    assert str(path) in str(err.value) and expected in str(err.value), str(err.value)


# --------------------------------------------------------------------- camera -> LiDAR


def test_real_car_converted_to_lidar_matches_numpy() -> None:
    calib_path = KITTI / "calib" / "000001.txt"
    r0 = np.eye(4)
    r0[:3, :3] = _numbers_after(calib_path, "R0_rect").reshape(3, 3)
    tr = np.eye(4)
    tr[:3] = _numbers_after(calib_path, "Tr_velo_to_cam").reshape(3, 4)
    location = np.array([-16.53, 2.39, 58.49, 1.0])  # the Car's bottom centre in label_2/000001.txt
    expected = (np.linalg.inv(r0 @ tr) @ location)[:3]

    frame = load_kitti_frame(KITTI, 1)
    lidar = frame.labels.to_lidar_boxes(frame.calib)
    assert isinstance(lidar, LiDARBoxes3D)
    car = lidar.tensor[1].double().numpy()
    np.testing.assert_allclose(car[:3], expected, atol=2e-4)
    assert car[0] == pytest.approx(58.8, abs=0.05) and car[1] == pytest.approx(16.56, abs=0.05)
    # LiDAR sizes are l, w, h; the yaw is -rotation_y - pi/2 up to the calibration's small tilt.
    np.testing.assert_allclose(car[3:6], [3.69, 1.87, 1.67], rtol=1e-6)
    assert math.remainder(car[6] - (-1.57 - math.pi / 2), 2 * math.pi) == pytest.approx(0, abs=0.02)


@pytest.mark.parametrize("frame_id", FRAMES_WITH_SCANS)
def test_every_labelled_object_contains_lidar_points(frame_id: str) -> None:
    frame = load_kitti_frame(KITTI, frame_id)
    boxes = frame.labels.to_lidar_boxes(frame.calib)
    points = load_points(KITTI / "velodyne" / f"{frame_id}.bin")
    inside = boxes.points_in_boxes_all(points).sum(dim=0).numpy()
    types = frame.labels.objects().types
    wanted = np.isin(types, ["Car", "Pedestrian", "Cyclist"])
    assert wanted.any()
    assert (inside[wanted] > 0).all(), dict(zip(types.tolist(), inside.tolist(), strict=True))


def test_lidar_to_camera_round_trip() -> None:
    frame = load_kitti_frame(KITTI, "000004")
    camera = frame.labels.to_camera_boxes()
    back = frame.labels.to_lidar_boxes(frame.calib).convert_to("camera", frame.calib.lidar_to_cam)
    np.testing.assert_allclose(back.tensor.numpy(), camera.tensor.numpy(), atol=1e-3)


# --------------------------------------------------------------------------- projection


@pytest.mark.parametrize("frame_id", ["000000", "000001", "000002", "000003", "000004", "000005"])
def test_projected_label_boxes_match_their_2d_boxes(frame_id: str) -> None:
    calib = read_kitti_calib(KITTI / "calib" / f"{frame_id}.txt")
    labels = read_kitti_labels(KITTI / "label_2" / f"{frame_id}.txt").objects()
    projection = project_boxes_to_image(labels.to_camera_boxes(), calib.cam_to_img, image_size=(1242, 375))
    assert projection.corners.shape == (len(labels), 8, 2)
    untruncated = labels.truncated == 0
    assert untruncated.any()
    iou = box_iou_2d(
        torch.from_numpy(projection.boxes2d[untruncated]),
        torch.from_numpy(labels.bbox2d[untruncated]).double(),
    ).numpy()
    assert (iou > 0.7).all(), iou
    assert projection.visible.all()


def test_projection_by_hand_and_behind_the_camera() -> None:
    f, cx, cy = 100.0, 50.0, 40.0
    proj = np.array([[f, 0, cx, 0], [0, f, cy, 0], [0, 0, 1, 0]])
    # length 2 along x, height 2, width 2 along z; bottom centre (0, 1, 10): spans x -1..1,
    # y -1..1, z 9..11.
    boxes = CameraBoxes3D([[0, 1, 10, 2, 2, 2, 0], [0, 1, 0.5, 2, 2, 2, 0], [0, 1, -5, 2, 2, 2, 0]])
    result = project_boxes_to_image(boxes, proj)
    np.testing.assert_allclose(result.boxes2d[0], [cx - f / 9, cy - f / 9, cx + f / 9, cy + f / 9])
    np.testing.assert_allclose(np.sort(result.depth[0]), [9] * 4 + [11] * 4)
    # Box 1 spans z -0.5..1.5: corners at -0.5 are NaN; the 2D box is cut at the near plane 0.1.
    assert np.isnan(result.corners[1]).any() and not np.isnan(result.corners[1]).all()
    np.testing.assert_allclose(result.boxes2d[1], [cx - f / 0.1, cy - f / 0.1, cx + f / 0.1, cy + f / 0.1])
    # Box 2 lies entirely behind the camera.
    assert result.visible.tolist() == [True, True, False]
    assert np.isnan(result.boxes2d[2]).all() and np.isnan(result.corners[2]).all()

    clipped = project_boxes_to_image(boxes, proj, image_size=(60, 45))
    np.testing.assert_allclose(clipped.boxes2d[0], [cx - f / 9, cy - f / 9, 60, 45])
    np.testing.assert_allclose(clipped.boxes2d[1], [0, 0, 60, 45])
    outside = project_boxes_to_image(CameraBoxes3D([[100, 1, 10, 2, 2, 2, 0]]), proj, image_size=(60, 45))
    assert not outside.visible[0] and np.isnan(outside.boxes2d[0]).all()
    empty = project_boxes_to_image(CameraBoxes3D(np.zeros((0, 7))), proj)
    assert empty.boxes2d.shape == (0, 4) and empty.corners.shape == (0, 8, 2)


def test_projection_input_checks() -> None:
    proj = np.eye(3, 4)
    with pytest.raises(FormatError, match="camera-frame boxes"):
        project_boxes_to_image(LiDARBoxes3D([[1, 2, 3, 1, 1, 1, 0]]), proj)
    with pytest.raises(ShapeError, match=r"\[N, 8, 3\]"):
        project_boxes_to_image(np.zeros((2, 7)), proj)
    with pytest.raises(ShapeError, match="3x3, 3x4 or 4x4"):
        project_points_to_image(np.zeros((2, 3)), np.eye(2))
    uv, depth = project_points_to_image(np.array([[1.0, 2.0, 4.0], [0, 0, -1]]), np.eye(3))
    np.testing.assert_allclose(uv[0], [0.25, 0.5])
    assert np.isnan(uv[1]).all() and depth.tolist() == [4.0, -1.0]


# ---------------------------------------------------------------------------------- frames


def test_frame_loading_and_image_size(tmp_path: Path) -> None:
    frame = load_kitti_frame(KITTI, "000001")
    assert frame.points.num_points == (KITTI / "velodyne" / "000001.bin").stat().st_size // 16
    pil = pytest.importorskip("PIL.Image")
    with pil.open(KITTI / "image_2" / "000001.png") as image:
        assert frame.image_size == image.size == read_png_size(frame.image_path)
    assert load_kitti_frame(KITTI, "000000").image_path is None
    with pytest.raises(
        FileNotFoundError,
        match=r"frame 000003: .*velodyne/000003\.bin does not exist.*000000, 000001, 000002, 000004",
    ):
        load_kitti_frame(KITTI, 3)
    (tmp_path / "x.png").write_bytes(b"GIF89a" + bytes(30))
    with pytest.raises(FormatError, match="not a PNG"):
        read_png_size(tmp_path / "x.png")
