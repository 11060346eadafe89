"""The one rule for what a file holds (points or boxes), `.npy` included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pc3d.errors import FormatError
from pc3d.io import file_kind
from pc3d.io.boxes import read_box_file, save_boxes
from pc3d.io.points import read_point_file, write_point_file


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("scan.bin", "points"),
        ("scan.PCD", "points"),
        ("mesh.ply", "points"),
        ("boxes.json", "boxes"),
        ("boxes.csv", "boxes"),
        ("label.txt", "boxes"),
    ],
)
def test_extension_decides_without_reading(tmp_path: Path, name: str, kind: str) -> None:
    assert file_kind(tmp_path / name) == kind  # the file need not exist
    assert file_kind(tmp_path / name, kind) == kind


def test_npy_by_shape_and_what(tmp_path: Path) -> None:
    cloud = write_point_file(tmp_path / "cloud.npy", np.ones((5, 4), np.float32))
    assert file_kind(cloud) == "points"
    read_point_file(cloud)  # and the points reader agrees
    structured = tmp_path / "structured.npy"
    np.save(
        structured,
        np.zeros(
            3,
            dtype=[
                ("x", "f4"),
                ("y", "f4"),
                ("z", "f4"),
                ("ring", "u2"),
                ("a", "f4"),
                ("b", "f4"),
                ("c", "f4"),
                ("d", "f4"),
            ],
        ),
    )
    assert file_kind(structured) == "points"
    boxes = save_boxes(tmp_path / "boxes.npy", np.ones((2, 7), np.float32), mode="lidar")
    with pytest.raises(FormatError) as err:
        file_kind(boxes)
    message = str(err.value)
    assert str(boxes) in message and "(2, 7)" in message and "--what boxes" in message
    assert file_kind(boxes, "boxes") == "boxes" and len(read_box_file(boxes)) == 2
    assert file_kind(boxes, "points") == "points"  # [N, 7] points (e.g. x y z + 4 features)


def test_npy_holding_neither_and_bad_arguments(tmp_path: Path) -> None:
    flat = tmp_path / "flat.npy"
    np.save(flat, np.zeros(6, np.float32))
    with pytest.raises(FormatError, match=r"flat\.npy: a \.npy array of float32 \(6,\) holds neither"):
        file_kind(flat)
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"not numpy")
    with pytest.raises(FormatError, match=r"junk\.npy: not a readable \.npy array"):
        file_kind(junk)
    with pytest.raises(FileNotFoundError):
        file_kind(tmp_path / "missing.npy")
    with pytest.raises(FormatError, match=r"\.json file does not hold points; points files are \.bin"):
        file_kind(tmp_path / "b.json", "points")
    with pytest.raises(FormatError, match=r"unknown extension '\.las'"):
        file_kind(tmp_path / "x.las")
    with pytest.raises(ValueError, match="what must be one of auto, points, boxes"):
        file_kind(tmp_path / "x.bin", "cloud")


def test_pc3d_io_exports_every_public_name_lazily() -> None:
    import subprocess
    import sys

    import pc3d.io

    for name in pc3d.io.__all__:
        assert getattr(pc3d.io, name) is not None, name
    # Importing the package, its atomic/JSON helpers or file_kind loads neither numpy nor torch.
    code = (
        "import sys, pc3d.io, pc3d.io.atomic, pc3d.io.jsonio, pc3d.io.file_kinds; "
        "print(sorted(m for m in ('numpy', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
