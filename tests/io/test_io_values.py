"""Helpers shared by the readers, and the one atomic-write path every writer of pc3d.io uses."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from pc3d.io.boxes import BoxFile, write_box_file
from pc3d.io.kitti import read_kitti_labels, write_kitti_labels
from pc3d.io.points import write_point_file
from pc3d.io.values import first_non_finite, is_number

LABELS = Path(__file__).resolve().parents[1] / "data" / "kitti" / "training" / "label_2" / "000001.txt"


def test_first_non_finite_and_is_number() -> None:
    assert first_non_finite(np.zeros((3, 4))) is None
    assert first_non_finite(np.zeros((0, 4))) is None
    values = np.zeros((3, 4))
    values[2, 1], values[1, 3] = np.inf, np.nan
    assert first_non_finite(values) == (1, 3)  # row-major order
    assert first_non_finite(np.array([1.0, np.nan])) == (1,)
    assert [is_number(t) for t in ("1e-3", "-7", "nan", "x", "", "1,5")] == [
        True,
        True,
        True,
        False,
        False,
        False,
    ]


@pytest.mark.parametrize("writer", ["points", "boxes", "labels"])
def test_writers_replace_files_atomically_with_the_usual_permissions(tmp_path: Path, writer: str) -> None:
    previous = os.umask(0o022)
    try:
        if writer == "points":
            path = write_point_file(tmp_path / "sub" / "cloud.pcd", np.ones((4, 4), np.float32))
        elif writer == "boxes":
            path = write_box_file(
                tmp_path / "sub" / "boxes.json", BoxFile(np.ones((2, 7), np.float32), "lidar")
            )
        else:
            path = write_kitti_labels(tmp_path / "sub" / "000001.txt", read_kitti_labels(LABELS))
    finally:
        os.umask(previous)
    # pc3d.io.atomic gives 0o666 & ~umask (a temporary file of its own would be 0o600) ...
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    # ... and leaves no temporary file behind.
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
