"""One frame of a KITTI object `training` (or `testing`) folder: its scan, calibration, labels
and image, found by frame id."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pc3d.errors import FormatError
from pc3d.io.kitti.calib import KittiCalib, read_kitti_calib
from pc3d.io.kitti.labels import KittiLabels, read_kitti_labels
from pc3d.io.points import NanPolicy, PointCloudData, read_point_file

__all__ = ["KittiFrame", "load_kitti_frame", "read_png_size"]


def read_png_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """`(width, height)` of a PNG image, from its header (no image library needed).

    Raises:
        FormatError: the file is not a PNG image.
    """
    path = Path(path)
    with path.open("rb") as handle:
        head = handle.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise FormatError(f"{path}: not a PNG image")
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


@dataclass(frozen=True)
class KittiFrame:
    """One KITTI `training` (or `testing`) frame: its files and what they hold.

    Attributes:
        frame_id: e.g. `"000001"`.
        root: the `training` folder.
        points: the Velodyne scan (`x, y, z, intensity`).
        calib: its calibration.
        labels: its labels, or None when the folder has no `label_2` file for it.
        image_path: `image_2/<frame>.png` if it exists, else None.
    """

    frame_id: str
    root: Path
    points: PointCloudData
    calib: KittiCalib
    labels: KittiLabels | None
    image_path: Path | None

    @property
    def image_size(self) -> tuple[int, int] | None:
        """`(width, height)` of the frame's image when it is there."""
        return read_png_size(self.image_path) if self.image_path is not None else None


def load_kitti_frame(
    root: str | os.PathLike[str],
    frame_id: str | int,
    label_dtype: Any = np.float32,
    nan_policy: NanPolicy = "drop",
) -> KittiFrame:
    """Read `velodyne/`, `calib/`, `label_2/` (and find `image_2/`) for one frame of `root`.

    Args:
        root: a KITTI `training` folder.
        frame_id: an int (`1` -> `"000001"`) or the file stem.
        label_dtype: dtype of the label columns (float64 keeps the file's decimals, as the
            evaluation needs).
        nan_policy: what to do with scan points whose x, y or z is not finite (see
            `pc3d.io.points.read_point_file`).

    Returns:
        The frame.

    Raises:
        FileNotFoundError: `root`, the scan or the calibration is missing (the message lists
            the frames that have a scan).
        FormatError: a malformed file.
    """
    root = Path(root)
    stem = f"{frame_id:06d}" if isinstance(frame_id, int) else str(frame_id)
    if not root.is_dir():
        raise FileNotFoundError(f"KITTI folder {root} does not exist")
    velodyne = root / "velodyne" / f"{stem}.bin"
    calib_path = root / "calib" / f"{stem}.txt"
    for needed in (velodyne, calib_path):
        if not needed.is_file():
            available = sorted(p.stem for p in (root / "velodyne").glob("*.bin"))
            raise FileNotFoundError(
                f"frame {stem}: {needed} does not exist (frames with a scan in {root}: "
                f"{', '.join(available) or 'none'})"
            )
    label_path = root / "label_2" / f"{stem}.txt"
    image_path = root / "image_2" / f"{stem}.png"
    return KittiFrame(
        frame_id=stem,
        root=root,
        points=read_point_file(velodyne, num_features=4, nan_policy=nan_policy),
        calib=read_kitti_calib(calib_path),
        labels=read_kitti_labels(label_path, dtype=label_dtype) if label_path.is_file() else None,
        image_path=image_path if image_path.is_file() else None,
    )
