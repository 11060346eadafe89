"""A few lines of numpy reading the KITTI samples shipped in tests/data, independent of pc3d.io,
so that the structure tests check the conversions against the raw files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

KITTI = Path(__file__).resolve().parents[1] / "data" / "kitti" / "training"
FRAMES_WITH_SCANS = ("000000", "000001", "000002", "000004")


def read_calib(frame: str) -> dict[str, np.ndarray]:
    """Matrices of `calib/<frame>.txt` as float64 arrays (3x4, R0_rect 3x3)."""
    mats = {}
    for line in (KITTI / "calib" / f"{frame}.txt").read_text().splitlines():
        if ":" in line:
            key, values = line.split(":", 1)
            numbers = np.array(values.split(), dtype=np.float64)
            mats[key] = numbers.reshape(3, 3) if key == "R0_rect" else numbers.reshape(3, 4)
    return mats


def homogeneous(mat: np.ndarray) -> np.ndarray:
    """A 3x3 or 3x4 matrix padded to 4x4."""
    out = np.eye(4)
    out[: mat.shape[0], : mat.shape[1]] = mat
    return out


def lidar_to_cam(frame: str) -> np.ndarray:
    """4x4 LiDAR -> rectified camera: R0_rect @ Tr_velo_to_cam."""
    calib = read_calib(frame)
    return homogeneous(calib["R0_rect"]) @ homogeneous(calib["Tr_velo_to_cam"])


def read_labels(frame: str) -> tuple[list[str], np.ndarray]:
    """Object types and camera boxes `[N, 7]` (x, y, z, l, h, w, ry) of `label_2/<frame>.txt`."""
    types, boxes = [], []
    for line in (KITTI / "label_2" / f"{frame}.txt").read_text().splitlines():
        fields = line.split()
        if not fields:
            continue
        h, w, length = (float(v) for v in fields[8:11])
        x, y, z = (float(v) for v in fields[11:14])
        types.append(fields[0])
        boxes.append([x, y, z, length, h, w, float(fields[14])])
    return types, np.array(boxes, dtype=np.float64).reshape(-1, 7)


def read_scan(frame: str) -> np.ndarray:
    """Velodyne points `[N, 4]` (x, y, z, reflectance)."""
    return np.fromfile(KITTI / "velodyne" / f"{frame}.bin", dtype=np.float32).reshape(-1, 4)
