"""KITTI `calib/*.txt` files, and box conversions between the LiDAR and rectified camera frames
with a frame's calibration.

Frames (KITTI's):
- LiDAR (Velodyne): x forward, y left, z up.
- Rectified camera 0 (`label_2` boxes live here): x right, y down, z forward.
  `lidar_to_cam = R0_rect @ Tr_velo_to_cam` maps LiDAR to it.
- Image 2 (left colour): pixels, `P2` projects rectified camera coordinates onto it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

from pc3d.errors import FormatError
from pc3d.io.values import first_non_finite, is_number

if TYPE_CHECKING:
    from pc3d.structures import CameraBoxes3D, LiDARBoxes3D

__all__ = ["KittiCalib", "camera_to_lidar_boxes", "lidar_to_camera_boxes", "read_kitti_calib"]

# Key in the file -> (field, number of values). KITTI tracking and raw data spell some keys
# differently (Tr_velo_cam, R_rect, Tr_imu_velo); they fill the same fields.
_CALIB_KEYS: dict[str, tuple[str, int]] = {
    "P0": ("P0", 12), "P1": ("P1", 12), "P2": ("P2", 12), "P3": ("P3", 12),
    "R0_rect": ("R0_rect", 9), "R_rect": ("R0_rect", 9),
    "Tr_velo_to_cam": ("Tr_velo_to_cam", 12), "Tr_velo_cam": ("Tr_velo_to_cam", 12),
    "Tr_imu_to_velo": ("Tr_imu_to_velo", 12), "Tr_imu_velo": ("Tr_imu_to_velo", 12),
}  # fmt: skip
_REQUIRED_CALIB = ("P0", "P1", "P2", "P3", "R0_rect", "Tr_velo_to_cam")


def _pad4(matrix: np.ndarray) -> np.ndarray:
    """A 3x3 or 3x4 matrix as 4x4 homogeneous (last row 0, 0, 0, 1)."""
    out = np.eye(4, dtype=np.float64)
    out[: matrix.shape[0], : matrix.shape[1]] = matrix
    return out


@dataclass(frozen=True)
class KittiCalib:
    """One KITTI calibration file; every matrix is `float64 ndarray[4, 4]` (3x4 and 3x3 padded
    with the homogeneous row/column).

    Attributes:
        P0: projection matrix of camera 0 (rectified camera 0 -> image 0); P1-P3 likewise.
        P1: camera 1.
        P2: camera 2, the left colour camera of `image_2`.
        P3: camera 3.
        R0_rect: rectifying rotation of camera 0.
        Tr_velo_to_cam: Velodyne -> (unrectified) camera 0.
        Tr_imu_to_velo: IMU -> Velodyne, or None when the file has none.
        path: the file read, if any.
    """

    P0: np.ndarray
    P1: np.ndarray
    P2: np.ndarray
    P3: np.ndarray
    R0_rect: np.ndarray
    Tr_velo_to_cam: np.ndarray
    Tr_imu_to_velo: np.ndarray | None = None
    path: Path | None = None

    @property
    def lidar_to_cam(self) -> np.ndarray:
        """`float64 [4, 4]`: LiDAR -> rectified camera, `R0_rect @ Tr_velo_to_cam` (the `rt_mat`
        of `convert_boxes(..., "lidar", "camera", rt_mat)`)."""
        return self.R0_rect @ self.Tr_velo_to_cam

    @property
    def cam_to_lidar(self) -> np.ndarray:
        """`float64 [4, 4]`: rectified camera -> LiDAR, the inverse of `lidar_to_cam`."""
        return np.linalg.inv(self.lidar_to_cam)

    @property
    def cam_to_img(self) -> np.ndarray:
        """`float64 [4, 4]`: `P2`, rectified camera -> left colour image (homogeneous pixels)."""
        return self.P2

    @property
    def lidar_to_img(self) -> np.ndarray:
        """`float64 [4, 4]`: `P2 @ R0_rect @ Tr_velo_to_cam`, LiDAR -> left colour image."""
        return self.P2 @ self.lidar_to_cam


def read_kitti_calib(path: str | os.PathLike[str]) -> KittiCalib:
    """Parse a KITTI `calib/*.txt` file (`KEY: v1 v2 ...` per line; the colon may be missing).

    P0-P3, R0_rect and Tr_velo_to_cam are required, Tr_imu_to_velo optional; unknown keys are
    ignored (raw-data calibrations carry more).

    Args:
        path: the file.

    Returns:
        The calibration, every matrix 4x4.

    Raises:
        FormatError: a required key missing, a key given twice, a wrong number of values, a
            non-numeric or non-finite value, or a singular rotation, naming the file, the line
            and the key.
    """
    path = Path(path)
    found: dict[str, tuple[np.ndarray, int]] = {}
    text = path.read_text(encoding="utf-8", errors="replace")
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if ":" in line:
            key, _, rest = line.partition(":")
        else:
            key, _, rest = line.strip().partition(" ")
        key = key.strip()
        if key not in _CALIB_KEYS:
            continue
        name, expected = _CALIB_KEYS[key]
        numbers = _calib_values(path, line_no, key, rest.split(), expected)
        if name in found:
            raise FormatError(
                f"{path}: line {line_no}: {key} repeats {name} (first given on line {found[name][1]})"
            )
        found[name] = (numbers.reshape(3, -1), line_no)
    missing = [key for key in _REQUIRED_CALIB if key not in found]
    if missing:
        raise FormatError(f"{path}: missing calibration key(s) {', '.join(missing)}")
    matrices = {name: _pad4(matrix) for name, (matrix, _) in found.items()}
    for name in ("R0_rect", "Tr_velo_to_cam"):
        if abs(np.linalg.det(matrices[name])) < 1e-6:
            raise FormatError(f"{path}: line {found[name][1]}: {name} is singular")
    return KittiCalib(**matrices, path=path)


def _calib_values(path: Path, line_no: int, key: str, values: list[str], expected: int) -> np.ndarray:
    if len(values) != expected:
        raise FormatError(f"{path}: line {line_no}: {key} has {len(values)} numbers, expected {expected}")
    try:
        numbers = np.array([float(v) for v in values], dtype=np.float64)
    except ValueError as err:
        bad = next(v for v in values if not is_number(v))
        raise FormatError(f"{path}: line {line_no}: {key} value {bad!r} is not a number") from err
    if first_non_finite(numbers) is not None:
        raise FormatError(f"{path}: line {line_no}: {key} holds NaN or infinite values")
    return numbers


def camera_to_lidar_boxes(boxes: CameraBoxes3D, calib: KittiCalib) -> LiDARBoxes3D:
    """Camera (rectified) boxes -> LiDAR boxes with the frame's calibration.

    Args:
        boxes: boxes in the rectified camera frame (e.g. `KittiLabels.to_camera_boxes()`).
        calib: the frame's calibration (`cam_to_lidar` is used).

    Returns:
        The boxes in the LiDAR frame.
    """
    return cast("LiDARBoxes3D", boxes.convert_to("lidar", calib.cam_to_lidar))


def lidar_to_camera_boxes(boxes: LiDARBoxes3D, calib: KittiCalib) -> CameraBoxes3D:
    """LiDAR boxes -> rectified camera boxes with the frame's calibration.

    Args:
        boxes: boxes in the LiDAR frame.
        calib: the frame's calibration (`lidar_to_cam` is used).

    Returns:
        The boxes in the rectified camera frame.
    """
    return cast("CameraBoxes3D", boxes.convert_to("camera", calib.lidar_to_cam))
